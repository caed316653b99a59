"""/api/articles: publish, list, read and retract articles."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from publisher.domain.states import Kind, State
from publisher.web.access import Reader, reads_restricted, restricted_detail, restricted_summary
from publisher.web.auth import Editor
from publisher.web.context import CurrentRuntime
from publisher.web.errors import documented_errors
from publisher.web.params import MAX_DB_INT, NAME, ArticleId, utc_param
from publisher.web.schemas import (
    ArticleDetail,
    ArticleIn,
    ArticlePage,
    ArticleSummary,
    DeliveryBrief,
    PublishOut,
    delivery_detail,
    delivery_out,
)
from publisher.worker.runtime import Runtime

router = APIRouter(tags=["articles"])
reads = APIRouter(tags=["articles"])


@router.post(
    "/api/articles",
    status_code=202,
    response_model=PublishOut,
    responses=documented_errors(401, 413, 422, 503),
    summary="Publish an article, or update it",
)
def post_article(body: ArticleIn, actor: Editor, runtime: CurrentRuntime) -> PublishOut:
    """Stores the article and one delivery per channel, then queues them.

    The same id with the same content again changes nothing (`changed`
    is false); changed content is a new version, delivered as an update
    where the channel supports one.
    """
    result = runtime.publish(body.parse(runtime.settings.timezone), actor=actor)
    _, _, deliveries = runtime.store.article(result.article_id)
    return PublishOut(
        id=result.article_id,
        version=result.version,
        created=result.created,
        changed=result.changed,
        rescheduled=result.rescheduled,
        deliveries=[delivery_out(d) for d in deliveries],
    )


@reads.get(
    "/api/articles",
    response_model=ArticlePage,
    responses=documented_errors(422, 503),
    summary="Recent articles, newest first",
)
def get_articles(
    runtime: CurrentRuntime,
    state: Annotated[
        list[State] | None, Query(description="only articles with a delivery in this state")
    ] = None,
    channel: Annotated[
        str | None,
        Query(pattern=NAME, max_length=64, description="only articles with this channel"),
    ] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="first posted at or after this time")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="first posted before this time")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
    who: Reader = None,
) -> ArticlePage:
    store = runtime.store
    rows, total = store.article_page(
        states=state, channel=channel, since=utc_param(since, "since"),
        until=utc_param(until, "until"), limit=limit, offset=offset,
    )  # fmt: skip
    briefs: dict[str, list[DeliveryBrief]] = {row.id: [] for row, _, _ in rows}
    for d in reversed(store.deliveries(article_ids=list(briefs), limit=100_000)):
        briefs[d.article_id].append(
            DeliveryBrief(id=d.id, channel=d.channel, kind=Kind(d.kind), state=State(d.state))
        )
    items = [
        ArticleSummary(
            id=row.id,
            version=row.current_version,
            title=title,
            url=url,
            created_at=row.created_at,
            updated_at=row.updated_at,
            retracted_at=row.retracted_at,
            deliveries=briefs[row.id],
        )
        for row, title, url in rows
    ]
    if reads_restricted(runtime.settings, who):
        items = [restricted_summary(i) for i in items]
    return ArticlePage(items=items, total=total, limit=limit, offset=offset)


@reads.get(
    "/api/articles/{article_id}",
    response_model=ArticleDetail,
    responses=documented_errors(404, 422, 503),
    summary="One article, each delivery and its attempt log",
)
def get_article(article_id: ArticleId, runtime: CurrentRuntime, who: Reader) -> ArticleDetail:
    detail = article_detail(runtime, article_id)
    return restricted_detail(detail) if reads_restricted(runtime.settings, who) else detail


@router.delete(
    "/api/articles/{article_id}",
    status_code=202,
    response_model=ArticleDetail,
    responses=documented_errors(401, 404, 422, 503),
    summary="Retract an article from every channel",
)
def retract_article(article_id: ArticleId, actor: Editor, runtime: CurrentRuntime) -> ArticleDetail:
    """Deliveries that have not gone out are cancelled. Each delivered post gets a
    removal delivery of its own (kind `retract`), retried and tracked like any
    other; a channel that cannot remove posts gets a failed removal saying so.
    Retracting again changes nothing."""
    runtime.retract(article_id, actor=actor)
    return article_detail(runtime, article_id)


def article_detail(runtime: Runtime, article_id: str) -> ArticleDetail:
    store = runtime.store
    row, article, deliveries = store.article(article_id)
    return ArticleDetail(
        id=row.id,
        version=row.current_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        published_at=row.published_at,
        retracted_at=row.retracted_at,
        actor=row.actor,
        article=article,
        deliveries=[delivery_detail(d, store.attempts(d.id)) for d in deliveries],
    )
