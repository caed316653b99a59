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
reference, missing, 4xx, an address the fetch guard refuses), `RetryableError`
for network trouble and 5xx.

An image never blocks a story: `fetch_bounded` gives each image a bounded
number of tries across attempts (counted in the checkpoint), after which,
or at once on a permanent error, the channel goes on without it. `fit_image`
re-encodes an image a platform would refuse for its size or type.
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass
from html import unescape
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import requests

from channels.base import ChannelContext, SendAttempt
from channels.http import request
from publisher.domain.errors import (
    DeliveryError,
    NotFound,
    OutcomeUnknownError,
    PermanentError,
    RetryableError,
)
from publisher.net.guard import Allowlist, PublicSession
from publisher.net.reading import ReadFailed, TooLarge, TooSlow, read_capped

JPEG = "image/jpeg"
PNG = "image/png"
GIF = "image/gif"
WEBP = "image/webp"
BMP = "image/bmp"

EXTENSIONS = {JPEG: ".jpg", PNG: ".png", GIF: ".gif", WEBP: ".webp", BMP: ".bmp"}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_IMG_SRC = re.compile(r"<img\b[^>]*?\ssrc=\"([^\"]+)\"", re.I)


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
        allow = Allowlist.of(context.settings.fetch_allow)
        data, name = _download(ref, allow=allow, max_bytes=max_bytes, timeout=timeout)
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


def _download(url: str, *, allow: Allowlist, max_bytes: int, timeout: float) -> tuple[bytes, str]:
    """Stream the body, giving up once it passes `max_bytes` or the total `timeout`.

    The URL came from content, so it goes through the fetch guard: public
    addresses only (or the operator's allowlist), every redirect re-checked.
    """
    name = _url_name(url)
    what = f"download image {name}"
    deadline = time.monotonic() + timeout
    with PublicSession(allow) as session:
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
    """The body by `deadline` (wall clock, however slowly bytes arrive), up to `max_bytes`."""
    try:
        return read_capped(response, max_bytes=max_bytes, deadline=deadline)
    except TooLarge:
        raise PermanentError(f"{what}: larger than the limit of {max_bytes:,} bytes") from None
    except TooSlow:
        raise RetryableError(f"{what}: too slow, gave up") from None
    except ReadFailed:
        raise RetryableError(f"{what}: connection failed while reading") from None


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


def first_image(body_html: str) -> str | None:
    """The first body image a worker may fetch (http(s) or the media store), if any."""
    for src in _IMG_SRC.findall(body_html):
        if src.startswith(("http://", "https://", "media/")):
            return unescape(src)
    return None


#: Where `fetch_bounded` counts each image's failed tries in the checkpoint.
TRIES_KEY = "image_tries"


@dataclass(frozen=True)
class Unavailable:
    """An image that could not be had this time. `final`: stop trying and go on
    without it (a permanent error, or the tries are used up); otherwise the send
    should be retried later, when the image gets another try."""

    error: DeliveryError
    tries: int
    final: bool

    @property
    def reason(self) -> str:
        return self.error.reason


def fetch_bounded(
    ref: str,
    context: ChannelContext,
    attempt: SendAttempt,
    *,
    tries: int,
    max_bytes: int,
    allowed_types: frozenset[str],
    timeout: float = 10.0,
) -> Image | Unavailable:
    """`fetch_image`, or what went wrong, with at most `tries` transient failures per image
    over all attempts of a delivery."""
    try:
        return fetch_image(
            ref, context, max_bytes=max_bytes, allowed_types=allowed_types, timeout=timeout
        )
    except PermanentError as exc:
        return Unavailable(exc, tries=1, final=True)
    except RetryableError as exc:
        counts = dict(attempt.checkpoint.get(TRIES_KEY) or {})
        counts[ref] = int(counts.get(ref, 0)) + 1
        attempt.step(TRIES_KEY, counts)
        return Unavailable(exc, tries=counts[ref], final=counts[ref] >= tries)


def image_name(ref: str) -> str:
    """How the attempt log names an image: its file name, never a query string."""
    if ref.startswith(("http://", "https://")):
        return _url_name(ref)
    return PurePosixPath(ref).name or "image"


def fit_image(image: Image, *, max_bytes: int, allowed_types: frozenset[str]) -> Image:
    """`image` as it is if a platform takes it, else re-encoded (Pillow): converted to
    JPEG when its type is refused, scaled down until it is under `max_bytes`.
    Raises `PermanentError` when the bytes cannot be decoded as an image."""
    if image.content_type in allowed_types and len(image.data) <= max_bytes:
        return image
    from PIL import Image as PILImage  # imported here: only a send that needs it pays

    try:
        with PILImage.open(io.BytesIO(image.data)) as opened:
            opened.seek(0)  # an animated GIF keeps its first frame
            picture = opened.convert("RGB")
    except (OSError, ValueError) as exc:
        raise PermanentError(f"image {image.filename}: cannot be decoded ({exc})") from None
    target = JPEG if JPEG in allowed_types else sorted(allowed_types)[0]
    fmt = {JPEG: "JPEG", PNG: "PNG", GIF: "GIF"}.get(target, "JPEG")
    scale = 1.0
    for _ in range(12):
        size = (max(1, int(picture.width * scale)), max(1, int(picture.height * scale)))
        out = io.BytesIO()
        picture.resize(size).save(out, fmt, **({"quality": 85} if fmt == "JPEG" else {}))
        if out.tell() <= max_bytes:
            stem = image.filename.rsplit(".", 1)[0]
            return Image(data=out.getvalue(), content_type=target, filename=_filename(stem, target))
        scale *= 0.75
    raise PermanentError(f"image {image.filename}: cannot be made smaller than {max_bytes:,} bytes")
