"""The HTTP API: editors publish and watch deliveries, followers read the feeds.

`create_app(runtime)` builds the FastAPI app around one `Runtime`; nothing
here holds state of its own beyond that. Every error is JSON of one shape,
`{"error": {"field": ..., "problem": ...}}`, so a client can show an editor
exactly what to fix. Mutating calls need `Authorization: Bearer <token>`
with a token from `settings.api_tokens`; the token's *name* is what the
attempt log records as the actor. Reads are open unless
`settings.read_requires_token`; the feeds, covers and `/healthz` are always
open (feed readers and load balancers carry no tokens).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated, Any, Literal

import redis
from fastapi import Depends, FastAPI, Path, Query, Request, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import and_, case, exists, func, select, text

from channels.feed import FeedChannel
from publisher.delivery import publishing, websub
from publisher.domain.article import MAX_FILE_BYTES, Article, parse_article
from publisher.domain.errors import InputError, NotFound
from publisher.domain.i18n import Phrase
from publisher.domain.states import SETTLED, Kind, State
from publisher.store import Enqueue, Store
from publisher.store.models import ArticleRow, ArticleVersionRow, AttemptRow, DeliveryRow
from publisher.web.auth import Editor, editor
from publisher.web.dashboard import dashboard_router
from publisher.web.errors import (
    ApiError,
    BodyLimit,
    documented_errors,
    install_error_handlers,
)
from publisher.web.params import (
    ARTICLE_ID,
    FILENAME,
    HTTP_URL,
    MAX_DB_INT,
    MEDIA_ID,
    NAME,
    ArticleId,
    DeliveryId,
)
from publisher.worker.celery_app import all_queues
from publisher.worker.runtime import Runtime

#: The largest request body accepted: anything the CLI accepts as a file.
MAX_BODY_BYTES = MAX_FILE_BYTES
#: Attempt durations, in seconds, for the /metrics histogram.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: How long /healthz waits for each part before calling it down.
HEALTH_TIMEOUT = 3.0
#: Seconds after a feed build before its Last-Modified is sent (see _dated_once_settled).
DATE_SETTLES_AFTER = 2.0
#: Outcomes a worker writes; editors' entries in the log ("retry" by someone,
#: "cancelled") carry the editor's name as actor and are not attempts.
WORKER_OUTCOMES = ("delivered", "retry", "failed")
#: Kombu keeps one Redis list per priority step; unprioritised tasks use step 0.
PRIORITY_STEPS = (0, 3, 6, 9)
PRIORITY_SEP = "\x06\x16"


# -- what goes over the wire -------------------------------------------------


class ArticleIn(BaseModel):
    """An article as an editor posts it; `publisher.domain.article.parse_article` has the
    final word (sanitizing, limits, time zones) and names the field at fault."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [{"required": ["body_html"]}, {"required": ["body_markdown"]}],
            "examples": [
                {
                    "id": "2026-11-20-skills-contest",
                    "url": "https://news.example.org/2026/11/20/skills-contest",
                    "title": "Skills contest opens in Shanghai",
                    "body_markdown": "More than **2,000** contestants ...",
                    "tags": ["skills", "youth"],
                    "published_at": "2026-11-20T08:00:00+08:00",
                }
            ],
        },
    )

    id: str = Field(pattern=ARTICLE_ID, description="stable id; re-posting it is an update")
    url: str = Field(
        description="the article's absolute http(s) URL on the site",
        json_schema_extra={"pattern": HTTP_URL},
    )
    title: str
    body_html: str | None = Field(None, description="give this or body_markdown")
    body_markdown: str | None = None
    summary: str | None = None
    author: str | None = None
    source: str | None = None
    tags: list[str] | str | None = None
    cover_image: str | None = Field(
        None, description="an http(s) URL", json_schema_extra={"pattern": HTTP_URL}
    )
    language: str | None = Field(None, description="a language tag such as 'en' or 'zh-CN'")
    published_at: datetime | None = Field(
        None, description="ISO 8601; without a UTC offset it is read in `timezone`"
    )
    publish_at: datetime | None = Field(
        None,
        description=(
            "deliver at this time instead of now; without a UTC offset it is read in "
            "`timezone`, and a time a daylight-saving change skips or repeats is refused"
        ),
    )
    timezone: str | None = Field(
        None,
        description="IANA zone for times without an offset (default: the newsroom's zone)",
        examples=["Asia/Shanghai", "America/New_York"],
    )
    channels: list[str] | str | None = Field(
        None, description="only these channels (default: every configured channel)"
    )

    def parse(self, default_timezone: str | None = None) -> Article:
        return parse_article(self.model_dump(exclude_unset=True), default_timezone=default_timezone)


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    started_at: datetime
    duration_ms: int
    outcome: str = Field(description="delivered, retry, failed; or an editor's retry/cancelled")
    http_status: int | None
    platform_code: str | None
    message: str | None
    actor: str | None = Field(description="the editor (API token name) for editors' actions")


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    article_id: str
    article_version: int
    channel: str
    channel_type: str
    kind: Kind = Field(description="publish, correction (a follow-up or republish) or retract")
    state: State
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None = Field(description="when the next attempt is due")
    publish_at: datetime | None
    last_error: str | None
    last_code: str | None
    remote_id: str | None
    remote_url: str | None = Field(description="where followers read it")
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


class DeliveryDetail(DeliveryOut):
    log: list[AttemptOut] = Field(description="every attempt and editor action, oldest first")


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    total: int
    limit: int
    offset: int


class PublishOut(BaseModel):
    id: str
    version: int
    created: bool = Field(description="the article was new")
    changed: bool = Field(description="a new version was stored (False: same content again)")
    rescheduled: bool = Field(
        False, description="same content, another publish_at: waiting deliveries were moved"
    )
    deliveries: list[DeliveryOut]


class ArticleDetail(BaseModel):
    id: str
    version: int
    created_at: datetime
    updated_at: datetime
    published_at: datetime
    retracted_at: datetime | None
    actor: str | None
    article: Article
    deliveries: list[DeliveryDetail]


class DeliveryBrief(BaseModel):
    id: int
    channel: str
    kind: Kind
    state: State


class ArticleSummary(BaseModel):
    id: str
    version: int
    title: str | None
    url: str | None
    created_at: datetime
    updated_at: datetime
    retracted_at: datetime | None
    deliveries: list[DeliveryBrief]


class ArticlePage(BaseModel):
    items: list[ArticleSummary]
    total: int
    limit: int
    offset: int


class BulkRetryOut(BaseModel):
    retried: list[int]
    skipped: list[int] = Field(description="changed state meanwhile, so left alone")


class ChannelPreview(BaseModel):
    type: str
    payload: dict[str, Any]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(description="each part: 'ok' or what is wrong")


# -- errors ----------------------------------------------------------------------


# -- reads the store does not offer (candidates for moving into Store) -----------


def _utc(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InputError(field, "is out of range") from None


def _delivery_filters(
    states: Sequence[State] | None,
    channel: str | None,
    since: datetime | None,
    until: datetime | None,
    article_id: str | None = None,
) -> list[Any]:
    where: list[Any] = []
    if states:
        where.append(DeliveryRow.state.in_([str(s) for s in states]))
    if channel:
        where.append(DeliveryRow.channel == channel)
    if since is not None:
        where.append(DeliveryRow.updated_at >= since)
    if until is not None:
        where.append(DeliveryRow.updated_at < until)
    if article_id:
        where.append(DeliveryRow.article_id == article_id)
    return where


def list_deliveries(
    store: Store, where: list[Any], limit: int, offset: int
) -> tuple[list[DeliveryRow], int]:
    with store.session() as session:
        total = session.scalar(select(func.count()).select_from(DeliveryRow).where(*where)) or 0
        rows = session.scalars(
            select(DeliveryRow)
            .where(*where)
            .order_by(DeliveryRow.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return list(rows), int(total)


def list_articles(
    store: Store,
    *,
    states: Sequence[State] | None,
    channel: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[tuple[ArticleRow, str | None, str | None]], int]:
    where: list[Any] = []
    if since is not None:
        where.append(ArticleRow.created_at >= since)
    if until is not None:
        where.append(ArticleRow.created_at < until)
    if states or channel:
        matching = _delivery_filters(states, channel, None, None)
        where.append(exists().where(DeliveryRow.article_id == ArticleRow.id, *matching))
    title = ArticleVersionRow.data["title"].as_string()
    url = ArticleVersionRow.data["url"].as_string()
    with store.session() as session:
        total = session.scalar(select(func.count()).select_from(ArticleRow).where(*where)) or 0
        rows = session.execute(
            select(ArticleRow, title, url)
            .join(
                ArticleVersionRow,
                and_(
                    ArticleVersionRow.article_id == ArticleRow.id,
                    ArticleVersionRow.version == ArticleRow.current_version,
                ),
            )
            .where(*where)
            .order_by(ArticleRow.created_at.desc(), ArticleRow.id)
            .limit(limit)
            .offset(offset)
        ).all()
        return [(row, t, u) for row, t, u in rows], int(total)


def delivery_ids_in(store: Store, state: State, channel: str | None) -> list[int]:
    query = select(DeliveryRow.id).where(DeliveryRow.state == str(state)).order_by(DeliveryRow.id)
    if channel:
        query = query.where(DeliveryRow.channel == channel)
    with store.session() as session:
        return list(session.scalars(query))


# -- building responses ------------------------------------------------------------


def delivery_out(row: DeliveryRow) -> DeliveryOut:
    out = DeliveryOut.model_validate(row)
    if row.state in SETTLED:  # a stale due time would read as "will try again"
        out.next_attempt_at = None
    return out


def delivery_detail(row: DeliveryRow, log: Iterable[AttemptRow]) -> DeliveryDetail:
    return DeliveryDetail(
        **delivery_out(row).model_dump(),
        log=[AttemptOut.model_validate(a) for a in log],
    )


# -- feeds and media: conditional GETs ----------------------------------------------


def _etag_matches(header: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 §13.1.2): a GET may use it."""
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in header.split(","))


def _dated_once_settled(built_at: datetime) -> datetime | None:
    """A feed document's Last-Modified, or None while the document is young.

    Dates have whole seconds, and two builds within one second would carry the
    same one: a client that compares dates (libcurl does, even on a 200, so
    newsboat and many readers do) would then keep the older document. So the
    date is only given once a later build must fall in a later second (RFC 9110
    §8.8.2.2); until then the ETag alone validates.
    """
    if datetime.now(UTC) - built_at < timedelta(seconds=DATE_SETTLES_AFTER):
        return None
    return built_at


def _not_modified(request: Request, etag: str, modified: datetime | None) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:  # takes precedence over If-Modified-Since
        return _etag_matches(if_none_match, etag)
    since = request.headers.get("if-modified-since")
    if since and modified is not None:
        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError, IndexError):
            return False
        if when is None or when.tzinfo is None:
            return False
        return modified.replace(microsecond=0) <= when
    return False


def _conditional(
    request: Request,
    body: bytes,
    content_type: str,
    etag: str,
    modified: datetime | None,
    headers: dict[str, str],
) -> Response:
    headers = {"ETag": etag, **headers}
    if modified is not None:
        headers["Last-Modified"] = format_datetime(modified.astimezone(UTC), usegmt=True)
    if _not_modified(request, etag, modified):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=content_type, headers=headers)


# -- metrics ------------------------------------------------------------------------


class StoreCollector:
    """Prometheus metrics read at scrape time from the store and the broker, so
    every API on every machine reports the same numbers."""

    def __init__(self, runtime: Runtime, broker: redis.Redis) -> None:
        self.runtime = runtime
        self.broker = broker  # a client with timeouts: a scrape must not hang

    def collect(self) -> Iterator[Metric]:
        store = self.runtime.store
        with store.session() as session:
            counts = session.execute(
                select(DeliveryRow.channel, DeliveryRow.state, func.count()).group_by(
                    DeliveryRow.channel, DeliveryRow.state
                )
            ).all()
            durations = session.execute(self._duration_query()).all()
            retries = session.execute(
                select(
                    DeliveryRow.channel,
                    AttemptRow.actor.is_(None),
                    func.count(),
                )
                .join(DeliveryRow, DeliveryRow.id == AttemptRow.delivery_id)
                .where(AttemptRow.outcome == "retry")
                .group_by(DeliveryRow.channel, AttemptRow.actor.is_(None))
            ).all()

        deliveries = GaugeMetricFamily(
            "publisher_deliveries", "Deliveries by channel and state.", labels=["channel", "state"]
        )
        seen = {(channel, state) for channel, state, _ in counts}
        for channel, state, n in counts:
            deliveries.add_metric([channel, state], n)
        for channel in self.runtime.settings.channels:  # zeros, so rates have a baseline
            for state in State:
                if (channel, state.value) not in seen:
                    deliveries.add_metric([channel, state.value], 0)
        yield deliveries

        histogram = HistogramMetricFamily(
            "publisher_attempt_duration_seconds",
            "Duration of delivery attempts, by channel and outcome.",
            labels=["channel", "outcome"],
        )
        for channel, outcome, total_ms, count, *cumulative in durations:
            buckets = [
                (str(b), int(c or 0)) for b, c in zip(DURATION_BUCKETS, cumulative, strict=True)
            ]
            buckets.append(("+Inf", int(count)))
            histogram.add_metric([channel, outcome], buckets, float(total_ms or 0) / 1000)
        yield histogram

        counter = CounterMetricFamily(
            "publisher_retries",
            "Retries: automatic (a retryable failure) or by an editor.",
            labels=["channel", "by"],
        )
        for channel, automatic, n in retries:
            counter.add_metric([channel, "automatic" if automatic else "editor"], n)
        yield counter

        yield from self._broker()

    @staticmethod
    def _duration_query() -> Any:
        ms = AttemptRow.duration_ms
        return (
            select(
                DeliveryRow.channel,
                AttemptRow.outcome,
                func.sum(ms),
                func.count(),
                *(func.sum(case((ms <= b * 1000, 1), else_=0)) for b in DURATION_BUCKETS),
            )
            .join(DeliveryRow, DeliveryRow.id == AttemptRow.delivery_id)
            .where(AttemptRow.outcome.in_(WORKER_OUTCOMES), AttemptRow.actor.is_(None))
            .group_by(DeliveryRow.channel, AttemptRow.outcome)
        )

    def _broker(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("publisher_broker_up", "1 if Redis answered this scrape.")
        depth = GaugeMetricFamily(
            "publisher_queue_depth", "Tasks waiting in each Celery queue.", labels=["queue"]
        )
        prefix = self.runtime.settings.redis_prefix + "celery:"
        try:
            with self.broker.pipeline(transaction=False) as pipe:
                queues = all_queues()
                for queue in queues:
                    for step in PRIORITY_STEPS:
                        pipe.llen(prefix + queue + (f"{PRIORITY_SEP}{step}" if step else ""))
                sizes = pipe.execute()
        except (redis.RedisError, OSError):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        per_queue = len(PRIORITY_STEPS)
        for i, queue in enumerate(queues):
            depth.add_metric([queue], sum(sizes[i * per_queue : (i + 1) * per_queue]))
        yield depth


# -- health -------------------------------------------------------------------------


async def _check(probe: Callable[[], object], timeout: float) -> str:
    try:
        await asyncio.wait_for(asyncio.to_thread(probe), timeout)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except Exception as exc:  # any failure is the answer; never show URLs or passwords
        return f"unavailable ({type(exc).__name__})"
    return "ok"


# -- the app ------------------------------------------------------------------------


def create_app(runtime: Runtime, *, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The API around `runtime`. The caller owns the runtime (and closes it)."""
    settings = runtime.settings
    store = runtime.store
    app = FastAPI(
        title="publisher",
        version="0.1.0",
        description=(
            "One article in, every channel out, every delivery tracked. "
            "Mutating calls need `Authorization: Bearer <token>`."
        ),
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    app.state.runtime = runtime

    read_dependencies = [Depends(editor)] if settings.read_requires_token else []
    read_errors = documented_errors(401) if settings.read_requires_token else {}

    probe_redis = redis.Redis.from_url(
        runtime.location.client_url, socket_timeout=HEALTH_TIMEOUT,
        socket_connect_timeout=HEALTH_TIMEOUT,
    )  # fmt: skip
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(runtime, probe_redis))

    # -- articles ---------------------------------------------------------------

    @app.post(
        "/api/articles",
        status_code=202,
        response_model=PublishOut,
        responses=documented_errors(401, 413, 422, 503),
        tags=["articles"],
        summary="Publish an article, or update it",
    )
    def post_article(body: ArticleIn, actor: Editor) -> PublishOut:
        """Stores the article and one delivery per channel, then queues them.

        The same id with the same content again changes nothing (`changed`
        is false); changed content is a new version, delivered as an update
        where the channel supports one.
        """
        result = runtime.publish(body.parse(settings.timezone), actor=actor)
        _, _, deliveries = store.article(result.article_id)
        return PublishOut(
            id=result.article_id,
            version=result.version,
            created=result.created,
            changed=result.changed,
            rescheduled=result.rescheduled,
            deliveries=[delivery_out(d) for d in deliveries],
        )

    @app.get(
        "/api/articles",
        response_model=ArticlePage,
        responses={**read_errors, **documented_errors(422, 503)},
        dependencies=read_dependencies,
        tags=["articles"],
        summary="Recent articles, newest first",
    )
    def get_articles(
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
    ) -> ArticlePage:
        rows, total = list_articles(
            store, states=state, channel=channel,
            since=_utc(since, "since"), until=_utc(until, "until"), limit=limit, offset=offset,
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
        return ArticlePage(items=items, total=total, limit=limit, offset=offset)

    @app.get(
        "/api/articles/{article_id}",
        response_model=ArticleDetail,
        responses={**read_errors, **documented_errors(404, 422, 503)},
        dependencies=read_dependencies,
        tags=["articles"],
        summary="One article, each delivery and its attempt log",
    )
    def get_article(article_id: ArticleId) -> ArticleDetail:
        return article_detail(article_id)

    @app.delete(
        "/api/articles/{article_id}",
        status_code=202,
        response_model=ArticleDetail,
        responses=documented_errors(401, 404, 422, 503),
        tags=["articles"],
        summary="Retract an article from every channel",
    )
    def retract_article(article_id: ArticleId, actor: Editor) -> ArticleDetail:
        """Deliveries that have not gone out are cancelled. Each delivered post gets a
        removal delivery of its own (kind `retract`), retried and tracked like any
        other; a channel that cannot remove posts gets a failed removal saying so.
        Retracting again changes nothing."""
        runtime.retract(article_id, actor=actor)
        return article_detail(article_id)

    def article_detail(article_id: str) -> ArticleDetail:
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

    # -- deliveries -------------------------------------------------------------

    @app.get(
        "/api/deliveries",
        response_model=DeliveryPage,
        responses={**read_errors, **documented_errors(422, 503)},
        dependencies=read_dependencies,
        tags=["deliveries"],
        summary="Deliveries, newest first",
    )
    def get_deliveries(
        state: Annotated[list[State] | None, Query(description="repeatable")] = None,
        channel: Annotated[str | None, Query(pattern=NAME, max_length=64)] = None,
        article_id: Annotated[str | None, Query(pattern=ARTICLE_ID, max_length=128)] = None,
        since: Annotated[
            AwareDatetime | None, Query(description="last changed at or after this time")
        ] = None,
        until: Annotated[
            AwareDatetime | None, Query(description="last changed before this time")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
    ) -> DeliveryPage:
        where = _delivery_filters(
            state, channel, _utc(since, "since"), _utc(until, "until"), article_id
        )
        rows, total = list_deliveries(store, where, limit, offset)
        return DeliveryPage(
            items=[delivery_out(d) for d in rows], total=total, limit=limit, offset=offset
        )

    @app.get(
        "/api/deliveries/{delivery_id}",
        response_model=DeliveryDetail,
        responses={**read_errors, **documented_errors(404, 422, 503)},
        dependencies=read_dependencies,
        tags=["deliveries"],
        summary="One delivery with its attempt log",
    )
    def get_delivery(delivery_id: DeliveryId) -> DeliveryDetail:
        return delivery_detail(store.delivery(delivery_id), store.attempts(delivery_id))

    @app.post(
        "/api/deliveries/retry",
        response_model=BulkRetryOut,
        responses=documented_errors(401, 422, 503),
        tags=["deliveries"],
        summary="Retry every delivery in a state (failed by default)",
    )
    def retry_all(
        actor: Editor,
        state: Annotated[
            Literal["failed", "cancelled", "retrying"], Query(description="which to retry")
        ] = "failed",
        channel: Annotated[str | None, Query(pattern=NAME, max_length=64)] = None,
    ) -> BulkRetryOut:
        retried: list[Enqueue] = []
        skipped: list[int] = []
        for delivery_id in delivery_ids_in(store, State(state), channel):
            try:
                retried.append(store.retry(delivery_id, actor=actor))
            except (InputError, NotFound):  # it moved on since we listed it
                skipped.append(delivery_id)
        runtime.dispatcher.enqueue(retried)
        return BulkRetryOut(retried=[e.delivery_id for e in retried], skipped=skipped)

    @app.post(
        "/api/deliveries/{delivery_id}/retry",
        response_model=DeliveryOut,
        responses=documented_errors(401, 404, 409, 422, 503),
        tags=["deliveries"],
        summary="Retry a failed, cancelled or waiting delivery now, with fresh attempts",
    )
    def retry_one(delivery_id: DeliveryId, actor: Editor) -> DeliveryOut:
        try:
            queued = store.retry(delivery_id, actor=actor)
        except InputError as exc:
            raise ApiError(409, "delivery_id", exc.problem) from None
        runtime.dispatcher.enqueue([queued])
        return delivery_out(store.delivery(delivery_id))

    @app.post(
        "/api/deliveries/{delivery_id}/cancel",
        response_model=DeliveryOut,
        responses=documented_errors(401, 404, 409, 422, 503),
        tags=["deliveries"],
        summary="Cancel a delivery that has not been sent",
    )
    def cancel_one(delivery_id: DeliveryId, actor: Editor) -> DeliveryOut:
        try:
            store.cancel(delivery_id, actor=actor)
        except InputError as exc:
            raise ApiError(409, "delivery_id", exc.problem) from None
        return delivery_out(store.delivery(delivery_id))

    # -- preview ----------------------------------------------------------------

    def preview(body: ArticleIn) -> dict[str, ChannelPreview]:
        """Each channel's formatted output for this article; nothing is stored or sent."""
        article = body.parse(settings.timezone)
        channels = publishing.select_channels(runtime.channels, article.channels)
        payloads = publishing.preview(article, channels)
        return {
            name: ChannelPreview(type=runtime.channels[name].type_name, payload=payload)
            for name, payload in payloads.items()
        }

    for path in ("/api/preview", "/api/articles/preview"):
        app.post(
            path,
            response_model=dict[str, ChannelPreview],
            responses={**read_errors, **documented_errors(413, 422)},
            dependencies=read_dependencies,
            tags=["articles"],
            summary="Preview each channel's output",
            operation_id="preview" if path == "/api/preview" else "preview_under_articles",
        )(preview)

    # -- what followers read ------------------------------------------------------

    feed_types: dict[str, Any] = {
        "application/rss+xml": {},
        "application/atom+xml": {},
        "application/feed+json": {},
    }

    @app.get(
        "/feeds/{filename}",
        response_class=Response,
        responses={
            200: {"description": "the feed document", "content": feed_types},
            304: {"description": "not modified since the ETag or date given"},
            **documented_errors(404, 422, 503),
        },
        tags=["feeds"],
        summary="A feed document: rss.xml, atom.xml or app.json by default",
    )
    def get_feed(
        request: Request,
        filename: Annotated[
            str,
            Path(pattern=FILENAME, max_length=128, examples=["rss.xml", "atom.xml", "app.json"]),
        ],
    ) -> Response:
        document = store.feed_document(filename)
        if document is None:
            owner = _feed_owner(runtime, filename)
            if owner is None:
                raise ApiError(
                    404, "filename", Phrase("there is no feed document {name!r}", name=filename)
                )
            runtime.rebuild_feed(owner.name)  # first request before any delivery
            document = store.feed_document(filename)
            if document is None:
                raise ApiError(
                    404, "filename", Phrase("{name!r} could not be built", name=filename)
                )
        headers = {"Cache-Control": "no-cache"}
        owner = _feed_owner(runtime, filename)
        if settings.feeds.hub_url and owner is not None:
            # WebSub discovery; the hub also refuses to push a topic without it.
            headers["Link"] = websub.link_header(settings.feeds.hub_url, owner.feed_url(filename))
        return _conditional(
            request, document.body, document.content_type, document.etag,
            _dated_once_settled(document.built_at), headers,
        )  # fmt: skip

    @app.get(
        "/media/{media_id}",
        response_class=Response,
        responses={
            200: {"description": "the image", "content": {"image/*": {}}},
            304: {"description": "not modified"},
            **documented_errors(404, 422, 503),
        },
        tags=["feeds"],
        summary="A cover image kept in the store",
    )
    def get_media(
        request: Request, media_id: Annotated[str, Path(pattern=MEDIA_ID, max_length=80)]
    ) -> Response:
        data, content_type = store.read_media(f"media/{media_id}")
        # Media ids are content hashes: the bytes behind one never change.
        etag = '"' + media_id.split(".", 1)[0][:32] + '"'
        headers = {
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        }
        return _conditional(request, data, content_type, etag, None, headers)

    # -- operators ----------------------------------------------------------------

    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "a part is down; `checks` says which"}},
        tags=["operations"],
        summary="Is the database and the broker reachable",
    )
    async def healthz(response: Response) -> Health:
        def database() -> None:
            with store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        checks = dict(
            zip(
                ("database", "broker"),
                await asyncio.gather(
                    _check(database, HEALTH_TIMEOUT), _check(probe_redis.ping, HEALTH_TIMEOUT)
                ),
                strict=True,
            )
        )
        healthy = all(v == "ok" for v in checks.values())
        response.status_code = 200 if healthy else 503
        return Health(status="ok" if healthy else "unavailable", checks=checks)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"description": "Prometheus text exposition", "content": {"text/plain": {}}},
            **read_errors,
            **documented_errors(503),
        },
        dependencies=read_dependencies,
        tags=["operations"],
        summary="Prometheus metrics",
    )
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(dashboard_router(runtime))
    return app


def _feed_owner(runtime: Runtime, filename: str) -> FeedChannel | None:
    for channel in runtime.channels.values():
        if isinstance(channel, FeedChannel) and filename in channel.filenames():
            return channel
    return None
