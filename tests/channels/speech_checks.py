"""Is this MP3 speech? Decoded by miniaudio (dr_mp3), independent of the LAME that made it.

Speech is loud while words are spoken and near-silent between them; silence
is never loud and noise is never quiet. So the checks are on 20 ms frames:
enough of them above a loudness floor, and, between the first and the last
loud frame, enough below a pause ceiling (the gaps between words).
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

import miniaudio

FRAME_SECONDS = 0.02
LOUD_DBFS = -35.0  # a frame of spoken sound
QUIET_DBFS = -50.0  # a frame between words


@dataclass(frozen=True)
class Heard:
    seconds: float
    rms_dbfs: float
    loud_share: float
    quiet_share: float
    sample_rate: int


def listen(mp3: bytes) -> Heard:
    decoded = miniaudio.decode(mp3, output_format=miniaudio.SampleFormat.SIGNED16, nchannels=1)
    samples = array("h", decoded.samples)
    step = int(decoded.sample_rate * FRAME_SECONDS)
    frames = [_dbfs(samples[i : i + step]) for i in range(0, len(samples) - step, step)]
    loud = [i for i, f in enumerate(frames) if f > LOUD_DBFS]
    inside = frames[loud[0] : loud[-1] + 1] if loud else []  # gaps between words only
    return Heard(
        seconds=decoded.duration,
        rms_dbfs=_dbfs(samples),
        loud_share=sum(f > LOUD_DBFS for f in frames) / max(1, len(frames)),
        quiet_share=sum(f < QUIET_DBFS for f in inside) / max(1, len(inside)),
        sample_rate=decoded.sample_rate,
    )


def _dbfs(samples: array[int]) -> float:
    if not samples:
        return -120.0
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    return 20 * math.log10(max(rms, 1e-6) / 32768)


#: Piper samples its voice at random (VITS noise), so its pauses vary from run to
#: run: 4.7 % of the frames of one English sample were quiet, 6 % of another.
#: Noise has none; 2 % still tells the two apart.
PAUSE_SHARE = 0.02


def looks_like_speech(heard: Heard) -> bool:
    return heard.rms_dbfs > -30 and heard.loud_share > 0.3 and heard.quiet_share > PAUSE_SHARE
