"""POST /api/preview: each channel's formatted output; nothing stored or sent.

`?audio=NAME` answers a voice channel's episode as MP3 instead: synthesised in
the request (bounded by the channel's `preview_seconds`), kept nowhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Response

from channels.base import Channel
from channels.feed import FeedChannel
from publisher.delivery import publishing
from publisher.domain.article import Article
from publisher.domain.errors import DeliveryError, InputError, PermanentError
from publisher.domain.i18n import Phrase
from publisher.web.context import CurrentRuntime
from publisher.web.errors import ApiError, documented_errors
from publisher.web.schemas import ArticleIn, ChannelPreview

reads = APIRouter(tags=["articles"])

AUDIO = Query(
    max_length=64,
    description=(
        "the name of a voice channel: answer its episode read aloud (audio/mpeg) "
        "instead of the JSON previews; 413 when the script is longer than the "
        "channel's `preview_seconds` (600 by default)"
    ),
)


def preview(
    body: ArticleIn, runtime: CurrentRuntime, audio: Annotated[str | None, AUDIO] = None
) -> dict[str, ChannelPreview] | Response:
    """Each channel's formatted output for this article; nothing is stored or sent.
    A voice channel's payload holds the script it reads and `estimated_seconds`."""
    article = body.parse(runtime.settings.timezone)
    if audio is not None:
        return spoken(runtime.channels, article, audio)
    channels = publishing.select_channels(runtime.channels, article.channels)
    previews = publishing.preview(article, channels, runtime.channels)
    return {name: ChannelPreview(**asdict(p)) for name, p in previews.items()}


def spoken(configured: Mapping[str, Channel], article: Article, name: str) -> Response:
    """The named channel's episode for `article` as MP3, checked as `publish` would."""
    channel = configured.get(name)
    if not (isinstance(channel, FeedChannel) and channel.speaks):
        raise ApiError(422, "audio", Phrase("there is no voice channel {name!r}", name=name))
    payload = publishing.preview(article, [channel], configured)[name].payload
    try:
        mp3 = channel.speak(payload)
    except InputError as exc:  # too long to read within a request
        raise ApiError(413, exc.field, exc.problem) from None
    except PermanentError as exc:  # the engine is missing or cannot read this language
        raise ApiError(422, "audio", exc.reason) from None
    except DeliveryError as exc:  # the speech service is down or busy: try again
        raise ApiError(503, "audio", exc.reason) from None
    return Response(
        mp3,
        media_type="audio/mpeg",
        headers={
            "Content-Disposition": 'inline; filename="preview.mp3"',
            "Cache-Control": "no-store",
            "X-Estimated-Seconds": str(payload.get("estimated_seconds", "")),
        },
    )


ERRORS = documented_errors(413, 422, 503)
ERRORS[413] = {**ERRORS[413], "description": "request body too large, or (`?audio=`) a "
               "script longer than the channel's `preview_seconds`"}  # fmt: skip
ERRORS[503] = {**ERRORS[503], "description": "the database is unavailable, or (`?audio=`) "
               "the speech service; try again"}  # fmt: skip

# One handler at both paths, each with its own operation id for generated clients.
for _path, _operation_id in (
    ("/api/preview", "preview"),
    ("/api/articles/preview", "preview_under_articles"),
):
    reads.post(
        _path,
        response_model=dict[str, ChannelPreview],
        responses={
            200: {
                "description": "the previews, or with `?audio=` the episode as MP3",
                "content": {"audio/mpeg": {"schema": {"type": "string", "format": "binary"}}},
            },
            **ERRORS,
        },
        summary="Preview each channel's output",
        operation_id=_operation_id,
    )(preview)
