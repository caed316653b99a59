"""A stand-in for the newsroom's speech service: an OpenAI-compatible `/v1/audio/speech`.

It really speaks (with the same libespeak-ng as the `espeak` engine), so a
test of the `http` engine gets audio it can measure, not canned bytes. It
reproduces what a client must cope with: the Bearer key (401 with the
OpenAI error shape `{"error": {"message", "type", "code"}}`), the fixed voice
list and the 4,096-character input limit (400), the response formats
`wav` and `mp3` (others 400), and faults from the shared control API
(`/_control/faults`: 429, 5xx, delays). Mandarin or English is chosen from the
text, as the real services do.
"""

from __future__ import annotations

import io
import threading
import wave
from typing import Any

import regex
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from channels.voice.audio import encode_mp3
from channels.voice.engines import SPEECH_PATH, EspeakEngine
from publisher.config.settings import ChannelConfig
from sandbox.faults import FaultInjector, control_router, install_fault_middleware

DEFAULT_KEY = "sandbox-speech-key"
MAX_INPUT = 4096
VOICES = ("alloy", "ash", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer")
_HAN = regex.compile(r"\p{Han}")


class SpeechRequest(BaseModel):
    model: str
    input: str
    voice: str
    response_format: str = "mp3"
    speed: float = 1.0


def error_response(status: int, message: str, code: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse(
        {"error": {"message": message, "type": kind, "code": code}}, status_code=status
    )


def create_app(key: str = DEFAULT_KEY) -> FastAPI:
    app = FastAPI(title="speech sandbox")
    injector = FaultInjector()
    engine = EspeakEngine(ChannelConfig(name="speech-sandbox", type="voice"))
    lock = threading.Lock()
    stats: dict[str, Any] = {"requests": 0, "characters": 0}

    def reset() -> None:
        with lock:
            stats.update(requests=0, characters=0)

    install_fault_middleware(app, injector, lambda code, path: error_response(code, "fault"))
    app.include_router(control_router(injector, lambda: dict(stats), reset))

    @app.post(SPEECH_PATH)
    def speech(body: SpeechRequest, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {key}":
            return error_response(401, "Incorrect API key provided.", "invalid_api_key")
        if body.voice not in VOICES:
            return error_response(400, f"Invalid voice {body.voice!r}.", "invalid_value")
        if not body.input.strip() or len(body.input) > MAX_INPUT:
            return error_response(400, f"input must be 1 to {MAX_INPUT} characters.")
        if body.response_format not in ("wav", "mp3"):
            return error_response(400, f"response_format {body.response_format!r} is not served.")
        with lock:
            stats["requests"] += 1
            stats["characters"] += len(body.input)
        language = "zh" if len(_HAN.findall(body.input)) * 3 > len(body.input) else "en"
        pcm = engine.synthesize(body.input, engine.voice_for(language))
        if body.response_format == "mp3":
            return Response(encode_mp3(pcm, 64), media_type="audio/mpeg")
        out = io.BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(pcm.rate)
            wav.writeframes(pcm.samples)
        return Response(out.getvalue(), media_type="audio/wav")

    return app
