"""From synthesised pieces to the episode's MP3: pauses, encoding, ID3 tags, duration.

Podcast apps expect a small constant-bitrate MP3 with its tags: mono at
64–96 kbit/s (speech needs no more), ID3v2 with the title, the newsroom as
artist, the date and the cover, so the episode still says what it is once
downloaded. The duration put in the feed is measured from the finished
file, the way apps measure it, not estimated.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass

import lameenc
from mutagen.id3 import APIC, ID3, TALB, TDRC, TIT2, TLAN, TPE1, TXXX, ID3NoHeaderError
from mutagen.mp3 import MP3, HeaderNotFoundError

from channels.voice.engines import Pcm
from publisher.domain.errors import PermanentError

MIN_BITRATE = 64
MAX_BITRATE = 96


@dataclass(frozen=True)
class EpisodeTags:
    title: str
    artist: str  # the newsroom
    date: str | None  # ISO 8601, as much of it as ID3 TDRC takes
    language: str | None = None  # ISO 639-2 (TLAN), e.g. "chi", "eng"
    guid: str | None = None  # makes two episodes with the same words different files
    cover: bytes | None = None
    cover_type: str = "image/jpeg"


def assemble(pieces: Iterable[tuple[Pcm, float]]) -> Pcm:
    """The pieces in order, each followed by its pause in silence; one sample rate."""
    out = bytearray()
    rate = 0
    for pcm, pause in pieces:
        if rate and pcm.rate != rate:
            raise PermanentError(
                f"the engine changed its sample rate mid-episode ({rate} → {pcm.rate} Hz)"
            )
        rate = pcm.rate
        out += pcm.samples
        out += bytes(2 * int(pause * rate))
    if not rate:
        raise PermanentError("there is nothing to read aloud")
    return Pcm(bytes(out), rate)


def encode_mp3(pcm: Pcm, bitrate: int) -> bytes:
    """Constant-bitrate mono MP3 at LAME's standard quality (5): quality 2 takes twice
    the CPU with no difference a listener hears in speech."""
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(bitrate)
    encoder.set_in_sample_rate(pcm.rate)
    encoder.set_channels(1)
    encoder.set_quality(5)
    return bytes(encoder.encode(pcm.samples) + encoder.flush())


def tag_mp3(mp3: bytes, tags: EpisodeTags) -> bytes:
    """`mp3` with an ID3v2.4 tag in front."""
    buffer = io.BytesIO(mp3)
    id3 = ID3()
    id3.add(TIT2(encoding=3, text=tags.title))
    id3.add(TPE1(encoding=3, text=tags.artist))
    id3.add(TALB(encoding=3, text=tags.artist))
    if tags.date:
        id3.add(TDRC(encoding=3, text=tags.date))
    if tags.language:
        id3.add(TLAN(encoding=3, text=tags.language))
    if tags.guid:
        id3.add(TXXX(encoding=3, desc="guid", text=tags.guid))
    if tags.cover:
        id3.add(APIC(encoding=3, mime=tags.cover_type, type=3, desc="Cover", data=tags.cover))
    id3.save(buffer, v2_version=4)
    return buffer.getvalue()


def measure_seconds(mp3: bytes) -> float:
    """The playing time of an MP3 as players compute it (frames, not file size)."""
    try:
        info = MP3(io.BytesIO(mp3)).info
    except (HeaderNotFoundError, ID3NoHeaderError) as exc:
        raise PermanentError(f"the encoded audio is not a readable MP3: {exc}") from None
    if info is None:
        raise PermanentError("the encoded audio is not a readable MP3")
    return float(info.length)


#: ISO 639-1 → ISO 639-2/B for ID3's TLAN, for the languages we read.
ID3_LANGUAGES = {"zh": "chi", "en": "eng", "yue": "chi", "fr": "fre", "de": "ger", "es": "spa"}
