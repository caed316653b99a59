"""Log redaction: secrets never reach a log line, at any level, from any library.

WeChat takes its access token in the query string, and at DEBUG urllib3 logs
every URL it requests (`"GET /cgi-bin/draft/add?access_token=... HTTP/1.1"`);
exception texts carry URLs too. A filter on our own loggers would miss
those, and a formatter only covers handlers set up before it. So
`install_log_redaction` replaces the log record factory: every record, from
any logger, is redacted when it is created (only records that pass the
level check are created, so disabled DEBUG costs nothing), before any
handler or formatter sees it. The message, the formatted traceback and the
stack are redacted.

What is redacted: values of credential-like query parameters
(`access_token=`, `secret=`, `token=`, ...), `Bearer` credentials, and every
literal secret the process knows (`remember_secrets`: API tokens and the
values of the variables a matrix names for channel and notification
secrets).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from publisher.config.settings import Settings

MASK = "[redacted]"
_QUERY = re.compile(
    r"(?i)(\b(?:access_token|refresh_token|token|secret|appsecret|client_secret|api_key|"
    r"apikey|password|passwd|sig|signature)=)[^&\s'\"#<>]+"
)
_BEARER = re.compile(r"(?i)(\bBearer\s+)[^\s'\",]+")
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()
_installed = False


def redact(text: str) -> str:
    """`text` with credential values replaced by `MASK`."""
    text = _QUERY.sub(rf"\1{MASK}", text)
    text = _BEARER.sub(rf"\1{MASK}", text)
    if _pattern is not None:
        text = _pattern.sub(MASK, text)
    return text


def remember_secrets(values: Iterable[str]) -> None:
    """Literal secrets to redact wherever they appear (short values are ignored:
    masking "1" everywhere would hide more than it protects)."""
    global _pattern
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= 6)
        if _secrets:
            ordered = sorted(_secrets, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def secrets_of(settings: Settings, env: dict[str, str] | None = None) -> list[str]:
    """Every secret value `settings` points at: API tokens, and the values of the
    environment variables named by `*_env` keys of channels and notifications."""
    env = dict(os.environ) if env is None else env
    values = list(settings.api_tokens)
    for channel in settings.channels.values():
        for key, var in (channel.model_extra or {}).items():
            if key.endswith("_env") and isinstance(var, str) and env.get(var):
                values.append(env[var])
    for target in settings.notifications.values():
        if env.get(target.secret_env):
            values.append(env[target.secret_env])
    return values


def install_log_redaction(settings: Settings | None = None) -> None:
    """Redact every log record this process creates from now on (idempotent)."""
    global _installed
    if settings is not None:
        remember_secrets(secrets_of(settings))
    with _lock:
        if _installed:
            return
        _installed = True
        previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it later as usual
            return record
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = redact(text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    logging.setLogRecordFactory(factory)
