"""/api/articles: publish, list, read, approve and retract articles."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from publisher.domain.errors import InputError
from publisher.domain.states import Approval, Kind, State
from publisher.web.access import Reader, reads_restricted, restricted_detail, restricted_summary
from publisher.web.auth import Author, DeskEditor
from publisher.web.context import CurrentRuntime
from publisher.web.errors import ApiError, documented_errors
from publisher.web.params import MAX_DB_INT, NAME, ArticleId, utc_param
from publisher.web.schemas import (
    ApproveIn,
    ArticleDetail,
    ArticleIn,
    ArticlePage,
    ArticleSummary,
    DeliveryBrief,
    PublishOut,
    RejectIn,
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
    summary="Publish an article, or update it (a writer's waits for approval)",
)
def post_article(body: ArticleIn, who: Author, runtime: CurrentRuntime) -> PublishOut:
    """Stores the article and one delivery per channel, then queues them.

    The same id with the same content again changes nothing (`changed`
    is false); changed content is a new version, delivered as an update
    where the channel supports one. Under `[newsroom] approval` a writer's
    article (or new version) waits in `awaiting_approval` until an editor
    approves it; posts already out keep the version last approved meanwhile.
    """
    article = body.parse(runtime.settings.timezone)
    result = runtime.publish(article, actor=who.name, awaiting=who.is_writer)
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
    responses=documented_errors(401, 403, 404, 422, 503),
    summary="Retract an article from every channel",
)
def retract_article(
    article_id: ArticleId, actor: DeskEditor, runtime: CurrentRuntime
) -> ArticleDetail:
    """Deliveries that have not gone out are cancelled. Each delivered post gets a
    removal delivery of its own (kind `retract`), retried and tracked like any
    other; a channel that cannot remove posts gets a failed removal saying so.
    Retracting again changes nothing."""
    runtime.retract(article_id, actor=actor)
    return article_detail(runtime, article_id)


@router.post(
    "/api/articles/{article_id}/approve",
    response_model=ArticleDetail,
    responses=documented_errors(401, 403, 404, 409, 422, 503),
    summary="Approve a writer's article: it goes out at its time, or now",
)
def approve_article(
    article_id: ArticleId,
    actor: DeskEditor,
    runtime: CurrentRuntime,
    body: ApproveIn | None = None,
) -> ArticleDetail:
    """Under `[newsroom] approval`: each delivery awaiting approval becomes
    `scheduled` if its `publish_at` is still ahead (it keeps its time), else
    `pending` and is sent now; posts that were out get the approved version as
    an editor's update would. The approver and the time are in each attempt
    log. `version` guards against approving a version the editor has not read.
    A writer's token gets 403; an article with nothing awaiting gets 409."""
    try:
        runtime.approve(article_id, actor=actor, version=body.version if body else None)
    except InputError as exc:
        raise ApiError(409, exc.field, exc.problem) from None
    return article_detail(runtime, article_id)


@router.post(
    "/api/articles/{article_id}/reject",
    response_model=ArticleDetail,
    responses=documented_errors(401, 403, 404, 409, 422, 503),
    summary="Reject a writer's article, with a reason",
)
def reject_article(
    article_id: ArticleId, body: RejectIn, actor: DeskEditor, runtime: CurrentRuntime
) -> ArticleDetail:
    """Deliveries awaiting approval are cancelled; the reason and the editor are in
    each attempt log. Posts that were out keep the version last approved."""
    try:
        runtime.store.reject(article_id, body.reason, actor=actor, version=body.version)
    except InputError as exc:
        if exc.field == "reason":
            raise
        raise ApiError(409, exc.field, exc.problem) from None
    return article_detail(runtime, article_id)


def article_detail(runtime: Runtime, article_id: str) -> ArticleDetail:
    store = runtime.store
    row, article, deliveries = store.article(article_id)
    _, approval, _ = store.approval(article_id)
    return ArticleDetail(
        id=row.id,
        version=row.current_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        published_at=row.published_at,
        retracted_at=row.retracted_at,
        actor=row.actor,
        article=article,
        approval=Approval(approval) if approval else None,
        deliveries=[delivery_detail(d, store.attempts(d.id)) for d in deliveries],
    )
