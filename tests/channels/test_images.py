"""`fetch_image` against a real HTTP server on loopback, local files and the media store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Response
from fastapi.responses import StreamingResponse

from channels.base import ChannelContext
from channels.images import GIF, JPEG, PNG, Image, fetch_image
from publisher.config.settings import Settings
from publisher.domain.errors import DeliveryError, NotFound, PermanentError, RetryableError
from sandbox.server import BackgroundServer, free_port
from tests.conftest import SAMPLES

JPEG_BYTES = (SAMPLES / "skills-contest.jpg").read_bytes()
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
GIF_BYTES = b"GIF89a" + b"\x00" * 32
WEB_IMAGES = frozenset({JPEG, PNG})
HUGE = 50 * 1024 * 1024


def image_server_app(sent: dict[str, int]) -> FastAPI:
    """Images, impostors, failures and an endless stream that counts what it sent."""
    app = FastAPI()

    @app.get("/img/photo.jpg")
    def photo() -> Response:
        return Response(JPEG_BYTES, media_type="image/jpeg")

    @app.get("/img/mislabelled")
    def mislabelled() -> Response:  # a PNG the server calls a JPEG: the bytes win
        return Response(PNG_BYTES, media_type="image/jpeg")

    @app.get("/img/anim.gif")
    def gif() -> Response:
        return Response(GIF_BYTES, media_type="image/gif")

    @app.get("/img/page.png")
    def page() -> Response:
        return Response(b"<html>not found</html>", media_type="image/png")

    @app.get("/img/declared-huge.png")
    def declared_huge() -> Response:
        return Response(PNG_BYTES, headers={"Content-Length": str(HUGE)}, media_type="image/png")

    @app.get("/img/endless.png")
    def endless() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield PNG_BYTES
            for _ in range(HUGE // 65536):
                sent["endless"] = sent.get("endless", 0) + 65536
                yield b"\x00" * 65536
                await asyncio.sleep(0)

        return StreamingResponse(chunks(), media_type="image/png")

    @app.get("/img/gone.jpg")
    def gone() -> Response:
        return Response(status_code=404)

    @app.get("/img/forbidden.jpg")
    def forbidden() -> Response:
        return Response(status_code=403)

    @app.get("/img/broken.jpg")
    def broken() -> Response:
        return Response(status_code=503)

    @app.get("/img/slow.jpg")
    async def slow() -> Response:
        await asyncio.sleep(1.0)
        return Response(JPEG_BYTES, media_type="image/jpeg")

    return app


@pytest.fixture(scope="module")
def sent() -> dict[str, int]:
    return {}


@pytest.fixture(scope="module")
def server(sent: dict[str, int]) -> Iterator[BackgroundServer]:
    with BackgroundServer(image_server_app(sent)) as running:
        yield running


@pytest.fixture
def context(make_settings: Callable[..., Settings]) -> ChannelContext:
    store = {"media/" + "a" * 64 + ".png": (PNG_BYTES, "image/png")}

    def read_media(ref: str) -> tuple[bytes, str]:
        if ref not in store:
            raise NotFound(ref)
        return store[ref]

    # The image server is on loopback: the operator's allowlist admits it (tests/net
    # proves that nothing else on loopback is fetched).
    settings = make_settings(PUBLISHER_FETCH_ALLOW="127.0.0.1")
    return ChannelContext(settings=settings, read_media=read_media)


# (path on the image server, max_bytes, expected type and file name, or error class + reason)
HTTP_CASES = [
    ("/img/photo.jpg", 1_000_000, (JPEG, "photo.jpg")),
    ("/img/mislabelled", 1_000_000, (PNG, "mislabelled.png")),
    ("/img/anim.gif", 1_000_000, (PermanentError, "image/gif is not accepted")),
    ("/img/page.png", 1_000_000, (PermanentError, "not an image")),
    ("/img/photo.jpg", 1_000, (PermanentError, "the limit is 1,000")),
    ("/img/declared-huge.png", 1_000_000, (PermanentError, "the limit is 1,000,000")),
    ("/img/endless.png", 1_000_000, (PermanentError, "larger than the limit")),
    ("/img/gone.jpg", 1_000_000, (PermanentError, "HTTP 404")),
    ("/img/forbidden.jpg", 1_000_000, (PermanentError, "HTTP 403")),
    ("/img/broken.jpg", 1_000_000, (RetryableError, "HTTP 503")),
    ("/img/slow.jpg", 1_000_000, (RetryableError, "no answer within")),
]


@pytest.mark.parametrize(
    ("path", "max_bytes", "expected"), HTTP_CASES, ids=[c[0] for c in HTTP_CASES]
)
def test_http_images(
    server: BackgroundServer,
    context: ChannelContext,
    path: str,
    max_bytes: int,
    expected: tuple[object, str],
) -> None:
    url = f"{server.url}{path}?sig=query-secret"
    outcome, detail = expected
    if isinstance(outcome, str):
        image = fetch_image(
            url, context, max_bytes=max_bytes, allowed_types=WEB_IMAGES, timeout=0.5
        )
        assert (image.content_type, image.filename) == (outcome, detail)
        return
    assert isinstance(outcome, type)
    with pytest.raises(DeliveryError) as caught:
        fetch_image(url, context, max_bytes=max_bytes, allowed_types=WEB_IMAGES, timeout=0.5)
    assert type(caught.value) is outcome  # a GET never leaves the outcome "unknown"
    assert detail in caught.value.reason
    assert "query-secret" not in caught.value.reason and "127.0.0.1" not in caught.value.reason


def test_endless_download_stops_soon_after_the_limit(
    server: BackgroundServer, context: ChannelContext, sent: dict[str, int]
) -> None:
    with pytest.raises(PermanentError):
        fetch_image(
            f"{server.url}/img/endless.png", context, max_bytes=200_000, allowed_types=WEB_IMAGES
        )
    assert sent["endless"] < HUGE // 4  # the server was not drained


def test_unreachable_host_is_retryable(context: ChannelContext) -> None:
    url = f"http://127.0.0.1:{free_port()}/img/photo.jpg"
    with pytest.raises(RetryableError, match="could not connect"):
        fetch_image(url, context, max_bytes=1_000_000, allowed_types=WEB_IMAGES, timeout=1.0)


def test_local_file(tmp_path: Path, context: ChannelContext) -> None:
    path = tmp_path / "Cover photo (final).JPG"
    path.write_bytes(JPEG_BYTES)
    image = fetch_image(str(path), context, max_bytes=1_000_000, allowed_types=WEB_IMAGES)
    assert image == Image(JPEG_BYTES, JPEG, "Cover-photo-final.jpg")


@pytest.mark.parametrize(
    ("name", "max_bytes", "reason"),
    [("missing.jpg", 1_000_000, "does not exist"), ("cover.jpg", 100, "the limit is 100")],
)
def test_local_file_problems_are_permanent(
    tmp_path: Path, context: ChannelContext, name: str, max_bytes: int, reason: str
) -> None:
    (tmp_path / "cover.jpg").write_bytes(JPEG_BYTES)
    with pytest.raises(PermanentError, match=reason):
        fetch_image(str(tmp_path / name), context, max_bytes=max_bytes, allowed_types=WEB_IMAGES)


def test_media_store_reference(context: ChannelContext) -> None:
    ref = "media/" + "a" * 64 + ".png"
    image = fetch_image(ref, context, max_bytes=1_000_000, allowed_types=WEB_IMAGES)
    assert (image.content_type, image.data) == (PNG, PNG_BYTES)


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ("media/" + "b" * 64 + ".png", "not in the media store"),
        ("media/../../etc/passwd", "not a media store reference"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("ftp://example.org/a.png", "scheme 'ftp'"),
        ("data:image/png;base64,iVBORw0KGgo=", "scheme 'data'"),
        ("images/relative.png", "only http"),
    ],
)
def test_refused_references(context: ChannelContext, ref: str, reason: str) -> None:
    with pytest.raises(PermanentError, match=reason):
        fetch_image(ref, context, max_bytes=1_000_000, allowed_types=WEB_IMAGES)


def test_allowed_types_can_include_gif(server: BackgroundServer, context: ChannelContext) -> None:
    image = fetch_image(
        f"{server.url}/img/anim.gif", context, max_bytes=1000, allowed_types=WEB_IMAGES | {GIF}
    )
    assert image.filename == "anim.gif"
