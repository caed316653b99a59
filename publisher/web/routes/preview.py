"""POST /api/preview: each channel's formatted output; nothing stored or sent."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from publisher.delivery import publishing
from publisher.web.context import CurrentRuntime
from publisher.web.errors import documented_errors
from publisher.web.schemas import ArticleIn, ChannelPreview

reads = APIRouter(tags=["articles"])


def preview(body: ArticleIn, runtime: CurrentRuntime) -> dict[str, ChannelPreview]:
    """Each channel's formatted output for this article; nothing is stored or sent."""
    article = body.parse(runtime.settings.timezone)
    channels = publishing.select_channels(runtime.channels, article.channels)
    previews = publishing.preview(article, channels, runtime.channels)
    return {name: ChannelPreview(**asdict(p)) for name, p in previews.items()}


# One handler at both paths, each with its own operation id for generated clients.
for _path, _operation_id in (
    ("/api/preview", "preview"),
    ("/api/articles/preview", "preview_under_articles"),
):
    reads.post(
        _path,
        response_model=dict[str, ChannelPreview],
        responses=documented_errors(413, 422),
        summary="Preview each channel's output",
        operation_id=_operation_id,
    )(preview)
