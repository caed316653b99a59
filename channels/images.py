"""Fetching an article's images, once, the same way for every channel.

An image reference is one of three things, and nothing else: an http(s) URL
(streamed, and abandoned as soon as it passes the size limit, so a huge file
never fills memory), an absolute local path (the article parser has already
confined it to the article's folder), or a media store reference
`media/<sha256>.<ext>` that `ChannelContext.read_media` resolves. Other
schemes (`file:`, `ftp:`, `data:`) and relative paths are refused, so an
article cannot make a worker read arbitrary places.

The type is decided from the bytes' magic numbers, never from the server's
header or the file name alone: platforms reject by real type, and a page of
HTML served as `image/png` should fail here, with a clear reason, not there.

Failures are classified like any delivery failure: `PermanentError` for
what retrying cannot fix (too large, not an allowed type, refused
reference, missing, 4xx), `RetryableError` for network trouble and 5xx.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import requests

from channels.base import ChannelContext
from channels.http import request
from publisher.domain.errors import NotFound, OutcomeUnknownError, PermanentError, RetryableError

JPEG = "image/jpeg"
PNG = "image/png"
GIF = "image/gif"
WEBP = "image/webp"
BMP = "image/bmp"

EXTENSIONS = {JPEG: ".jpg", PNG: ".png", GIF: ".gif", WEBP: ".webp", BMP: ".bmp"}
_CHUNK = 64 * 1024
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Image:
    """Image bytes whose `content_type` was sniffed from the bytes themselves.

    `filename` always ends with the extension of that type, because some
    platforms (WeChat) judge an upload by its file name.
    """

    data: bytes
    content_type: str
    filename: str


def sniff_type(data: bytes) -> str | None:
    """The image type the magic numbers say, or None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if data.startswith(b"BM") and len(data) >= 26:
        return BMP
    return None


def fetch_image(
    ref: str,
    context: ChannelContext,
    *,
    max_bytes: int,
    allowed_types: frozenset[str],
    timeout: float = 10.0,
) -> Image:
    """The image `ref` points at, checked against `max_bytes` and `allowed_types`."""
    if ref.startswith(("http://", "https://")):
        data, name = _download(ref, max_bytes=max_bytes, timeout=timeout)
    elif ref.startswith("media/"):
        data, name = _from_media_store(ref, context)
    elif ref.startswith("/") and "://" not in ref:
        data, name = _from_file(Path(ref), max_bytes)
    else:
        raise PermanentError(
            f"image {_describe(ref)}: only http(s) URLs, absolute file paths "
            "and media/ references are accepted"
        )
    return _checked(data, name, max_bytes=max_bytes, allowed_types=allowed_types)


def _checked(data: bytes, name: str, *, max_bytes: int, allowed_types: frozenset[str]) -> Image:
    if len(data) > max_bytes:
        raise PermanentError(f"image {name}: {len(data):,} bytes; the limit is {max_bytes:,}")
    kind = sniff_type(data)
    if kind is None:
        raise PermanentError(f"image {name}: the file is not an image")
    if kind not in allowed_types:
        accepted = ", ".join(sorted(EXTENSIONS.get(t, t).lstrip(".") for t in allowed_types))
        raise PermanentError(f"image {name}: {kind} is not accepted here (only {accepted})")
    return Image(data=data, content_type=kind, filename=_filename(name, kind))


def _download(url: str, *, max_bytes: int, timeout: float) -> tuple[bytes, str]:
    """Stream the body, giving up once it passes `max_bytes` or the total `timeout`."""
    name = _url_name(url)
    what = f"download image {name}"
    deadline = time.monotonic() + timeout
    with requests.Session() as session:
        try:
            response = request(session, "GET", url, timeout=timeout, what=what, stream=True)
        except OutcomeUnknownError as exc:  # a GET changes nothing: plain retry
            raise RetryableError(exc.reason) from None
        with response:
            if response.status_code >= 400:
                raise PermanentError(
                    f"{what}: HTTP {response.status_code}", http_status=response.status_code
                )
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise PermanentError(
                    f"image {name}: {int(declared):,} bytes; the limit is {max_bytes:,}"
                )
            return _read_capped(response, what, max_bytes, deadline), name


def _read_capped(response: requests.Response, what: str, max_bytes: int, deadline: float) -> bytes:
    body = bytearray()
    try:
        for chunk in response.iter_content(_CHUNK):
            body += chunk
            if len(body) > max_bytes:
                raise PermanentError(f"{what}: larger than the limit of {max_bytes:,} bytes")
            if time.monotonic() > deadline:
                raise RetryableError(f"{what}: too slow, gave up")
    except requests.RequestException as exc:
        raise RetryableError(
            f"{what}: connection failed while reading ({type(exc).__name__})"
        ) from None
    return bytes(body)


def _from_file(path: Path, max_bytes: int) -> tuple[bytes, str]:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise PermanentError(f"image {path.name}: {size:,} bytes; the limit is {max_bytes:,}")
        return path.read_bytes(), path.name
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise PermanentError(f"image {path.name}: the file does not exist") from None
    except OSError as exc:
        raise PermanentError(f"image {path.name}: cannot read it ({exc.strerror})") from None


def _from_media_store(ref: str, context: ChannelContext) -> tuple[bytes, str]:
    parts = PurePosixPath(ref).parts
    if ".." in parts or len(parts) != 2:
        raise PermanentError(f"image {_describe(ref)}: not a media store reference")
    if context.read_media is None:
        raise PermanentError(f"image {parts[1]}: no media store is available here")
    try:
        data, _declared_type = context.read_media(ref)
    except (NotFound, KeyError, FileNotFoundError):
        raise PermanentError(f"image {parts[1]}: not in the media store") from None
    return data, parts[1]


def _url_name(url: str) -> str:
    """The last path segment, for reasons and file names; never the query (it may hold keys)."""
    segment = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return segment[:80] or "image"


def _describe(ref: str) -> str:
    scheme = ref.split(":", 1)[0] if ":" in ref[:12] else ""
    return f"with scheme {scheme!r}" if scheme else repr(ref[:60])


def _filename(name: str, kind: str) -> str:
    stem = _SAFE_NAME.sub("-", PurePosixPath(name).stem).strip("-.")[:60] or "image"
    return stem + EXTENSIONS.get(kind, "")
