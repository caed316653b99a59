"""/feeds and /media: what followers' readers fetch. Always open: readers carry no token.

Both answer GET and HEAD (HEAD stays out of the schema: it is GET without the
body), with validators and byte ranges (`publisher.web.conditional`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from channels.feed import FeedChannel
from publisher.delivery import websub
from publisher.domain.i18n import Phrase
from publisher.web.conditional import conditional_response, dated_once_settled
from publisher.web.context import CurrentRuntime
from publisher.web.errors import ApiError, documented_errors
from publisher.web.params import FILENAME, MEDIA_ID
from publisher.worker.runtime import Runtime

router = APIRouter(tags=["feeds"])

FEED_TYPES: dict[str, Any] = {
    "application/rss+xml": {},
    "application/atom+xml": {},
    "application/feed+json": {},
}
#: A range request's answer, for the schema.
PARTIAL = {
    "description": "the one byte range asked for with `Range`",
    "headers": {
        "Content-Range": {
            "description": "which bytes, of how many: `bytes 0-1023/48213`",
            "schema": {"type": "string"},
        }
    },
}
#: Media ids are content hashes, so a media URL's bytes never change.
MEDIA_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
}


@router.get(
    "/feeds/{filename}",
    response_class=Response,
    responses={
        200: {"description": "the feed document", "content": FEED_TYPES},
        206: PARTIAL,
        304: {"description": "not modified since the ETag or date given"},
        **documented_errors(404, 416, 422, 503),
    },
    summary="A feed document: rss.xml, atom.xml or app.json by default",
)
@router.head("/feeds/{filename}", include_in_schema=False)
def get_feed(
    request: Request,
    runtime: CurrentRuntime,
    filename: Annotated[
        str,
        Path(pattern=FILENAME, max_length=128, examples=["rss.xml", "atom.xml", "app.json"]),
    ],
) -> Response:
    """HEAD answers the same headers without the body. `Range: bytes=…` (one range)
    gets 206; `If-None-Match` or `If-Modified-Since` on an unchanged document, 304."""
    store = runtime.store
    document = store.feed_document(filename)
    if document is None:
        owner = feed_owner(runtime, filename)
        if owner is None:
            raise ApiError(
                404, "filename", Phrase("there is no feed document {name!r}", name=filename)
            )
        runtime.rebuild_feed(owner.name)  # first request before any delivery
        document = store.feed_document(filename)
        if document is None:
            raise ApiError(404, "filename", Phrase("{name!r} could not be built", name=filename))
    headers = {"Cache-Control": "no-cache"}
    owner = feed_owner(runtime, filename)
    hub_url = runtime.settings.feeds.hub_url
    if hub_url and owner is not None:
        # WebSub discovery; the hub also refuses to push a topic without it.
        headers["Link"] = websub.link_header(hub_url, owner.feed_url(filename))
    return conditional_response(
        request, document.body, document.content_type, document.etag,
        dated_once_settled(document.built_at), headers,
    )  # fmt: skip


@router.get(
    "/media/{media_id}",
    response_class=Response,
    responses={
        200: {"description": "the image", "content": {"image/*": {}}},
        206: PARTIAL,
        304: {"description": "not modified"},
        **documented_errors(404, 416, 422, 503),
    },
    summary="A cover image kept in the store",
)
@router.head("/media/{media_id}", include_in_schema=False)
def get_media(
    request: Request,
    runtime: CurrentRuntime,
    media_id: Annotated[str, Path(pattern=MEDIA_ID, max_length=80)],
) -> Response:
    """Immutable: the id is the content's hash. HEAD, one byte range and the
    validators work as on the feeds."""
    data, content_type = runtime.store.read_media(f"media/{media_id}")
    etag = '"' + media_id.split(".", 1)[0][:32] + '"'
    # The bytes behind an id never change, so the date they were stored is a
    # strong validator from the start (no settling, unlike a feed build).
    stored_at = runtime.store.media_created_at(media_id)
    return conditional_response(request, data, content_type, etag, stored_at, MEDIA_HEADERS)


def feed_owner(runtime: Runtime, filename: str) -> FeedChannel | None:
    """The feed channel that writes `filename`, if any does."""
    for channel in runtime.channels.values():
        if isinstance(channel, FeedChannel) and filename in channel.filenames():
            return channel
    return None
