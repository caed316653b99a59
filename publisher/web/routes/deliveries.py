"""/api/deliveries: watch deliveries, and retry or cancel them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from publisher.domain.errors import InputError, NotFound
from publisher.domain.states import State
from publisher.store import Enqueue
from publisher.web.access import Reader, reads_restricted, restricted_delivery
from publisher.web.auth import DeskEditor
from publisher.web.context import CurrentRuntime
from publisher.web.errors import ApiError, documented_errors
from publisher.web.params import ARTICLE_ID, MAX_DB_INT, NAME, DeliveryId, utc_param
from publisher.web.schemas import (
    BulkRetryOut,
    DeliveryDetail,
    DeliveryOut,
    DeliveryPage,
    delivery_detail,
    delivery_out,
)

router = APIRouter(tags=["deliveries"])
reads = APIRouter(tags=["deliveries"])


@reads.get(
    "/api/deliveries",
    response_model=DeliveryPage,
    responses=documented_errors(422, 503),
    summary="Deliveries, newest first",
)
def get_deliveries(
    runtime: CurrentRuntime,
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
    who: Reader = None,
) -> DeliveryPage:
    rows, total = runtime.store.delivery_page(
        article_ids=[article_id] if article_id else None, states=state, channel=channel,
        since=utc_param(since, "since"), until=utc_param(until, "until"),
        limit=limit, offset=offset,
    )  # fmt: skip
    items = [delivery_out(d) for d in rows]
    if reads_restricted(runtime.settings, who):  # reasons may map a network: states only
        items = [i.model_copy(update={"last_error": None, "last_code": None}) for i in items]
    return DeliveryPage(items=items, total=total, limit=limit, offset=offset)


@reads.get(
    "/api/deliveries/{delivery_id}",
    response_model=DeliveryDetail,
    responses=documented_errors(404, 422, 503),
    summary="One delivery with its attempt log",
)
def get_delivery(delivery_id: DeliveryId, runtime: CurrentRuntime, who: Reader) -> DeliveryDetail:
    store = runtime.store
    detail = delivery_detail(store.delivery(delivery_id), store.attempts(delivery_id))
    return restricted_delivery(detail) if reads_restricted(runtime.settings, who) else detail


@router.post(
    "/api/deliveries/retry",
    response_model=BulkRetryOut,
    responses=documented_errors(401, 403, 422, 503),
    summary="Retry every delivery in a state (failed by default)",
)
def retry_all(
    actor: DeskEditor,
    runtime: CurrentRuntime,
    state: Annotated[
        Literal["failed", "cancelled", "retrying"], Query(description="which to retry")
    ] = "failed",
    channel: Annotated[str | None, Query(pattern=NAME, max_length=64)] = None,
) -> BulkRetryOut:
    store = runtime.store
    retried: list[Enqueue] = []
    skipped: list[int] = []
    for delivery_id in store.delivery_ids(State(state), channel=channel):
        try:
            retried.append(store.retry(delivery_id, actor=actor))
        except (InputError, NotFound):  # it moved on since we listed it
            skipped.append(delivery_id)
    runtime.dispatcher.enqueue(retried)
    return BulkRetryOut(retried=[e.delivery_id for e in retried], skipped=skipped)


@router.post(
    "/api/deliveries/{delivery_id}/retry",
    response_model=DeliveryOut,
    responses=documented_errors(401, 403, 404, 409, 422, 503),
    summary="Retry a failed, cancelled or waiting delivery now, with fresh attempts",
)
def retry_one(delivery_id: DeliveryId, actor: DeskEditor, runtime: CurrentRuntime) -> DeliveryOut:
    try:
        queued = runtime.store.retry(delivery_id, actor=actor)
    except InputError as exc:
        raise ApiError(409, "delivery_id", exc.problem) from None
    runtime.dispatcher.enqueue([queued])
    return delivery_out(runtime.store.delivery(delivery_id))


@router.post(
    "/api/deliveries/{delivery_id}/cancel",
    response_model=DeliveryOut,
    responses=documented_errors(401, 403, 404, 409, 422, 503),
    summary="Cancel a delivery that has not been sent",
)
def cancel_one(delivery_id: DeliveryId, actor: DeskEditor, runtime: CurrentRuntime) -> DeliveryOut:
    try:
        runtime.store.cancel(delivery_id, actor=actor)
    except InputError as exc:
        raise ApiError(409, "delivery_id", exc.problem) from None
    return delivery_out(runtime.store.delivery(delivery_id))
