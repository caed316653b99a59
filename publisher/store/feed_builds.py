"""A feed build as one transaction: the documents and the deliveries they complete.

A feed delivery is `delivered` only when the document that holds its item is
live, so the build that makes the document live is what completes it. A
build reads a snapshot (`publisher.store.feed_snapshot.read_feed`), the
delivery layer renders it, and
`commit_feed_build` saves the documents, runs the caller's disk write and
moves every delivery the build covers, all in one transaction: an editor
never sees `delivered` for an item a follower cannot read.

Every move is a compare-and-set against `publisher.domain.states`: the build
first takes the rows it covers (`sending` under the build's id as lease
token, like a worker's claim, and only where a worker could claim them), then
settles exactly the rows it took. Both happen before the commit, so no other
reader ever sees the intermediate `sending`.

The same transaction keeps, on each delivery it settles, the media files its
item holds (`FeedChannel.item_files`, in the row's checkpoint) and deletes the
files the caller says the new document no longer holds: a retracted episode's
audio, or the audio a correction replaced, stops being served at the instant
the document without it goes live, and never before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    String,
    Table,
    bindparam,
    insert,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from publisher.domain.states import State
from publisher.store.core import Store
from publisher.store.documents import delete_media_rows
from publisher.store.feed_snapshot import SNAPSHOT_TIME, FeedSnapshot, waiting_rows
from publisher.store.ledger import CLAIM_TIME, prepare_take, run_take
from publisher.store.models import (
    AttemptRow,
    DeliveryRow,
    FeedDocumentRow,
    UTCDateTime,
)
from publisher.store.records import utcnow
from publisher.store.transitions import PreparedMove, keep, prepare_move

#: How long a build's own hold on the rows it covers lasts if the transaction
#: were somehow left open; it never outlives the commit in practice.
BUILD_LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class BuiltDocument:
    filename: str
    content_type: str
    body: bytes
    items: int


def document_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


_SAVE_DOCUMENT = (
    update(cast(Table, FeedDocumentRow.__table__))
    .where(
        FeedDocumentRow.filename == bindparam("b_filename"),
        FeedDocumentRow.built_at <= bindparam("b_built_at"),
    )
    .values(
        channel=bindparam("b_channel"),
        content_type=bindparam("b_content_type"),
        body=bindparam("b_body"),
        etag=bindparam("b_etag"),
        items=bindparam("b_items"),
        built_at=bindparam("b_built_at"),
    )
)
_BUILD_TOKEN: BindParameter[str] = bindparam("b_token", type_=String())
#: A worker's claim (`prepare_take`) of the rows the build covers, at the version
#: it rendered, under the build's id as lease token.
_TAKE_FOR_BUILD = prepare_take(
    DeliveryRow,
    tuple_(DeliveryRow.id, DeliveryRow.article_version).in_(bindparam("pairs", expanding=True)),
    waiting_rows(CLAIM_TIME),
    [DeliveryRow.attempts],
)


def _settled_by_build(target: State, **values: Any) -> PreparedMove:
    """A row the build took (`sending` under its id) leaves it for `target`, its
    lease gone. Its `updated_at` is the snapshot's time, not now: the sweeper
    calls a feed stale when a delivery changed after its documents' `built_at`,
    and this change is the build itself."""
    released: dict[str, Any] = dict(
        lease_token=None,
        lease_until=None,
        outcome_unknown=0,
        enqueued_at=None,
        next_attempt_at=SNAPSHOT_TIME,
        updated_at=bindparam("b_read_at", type_=UTCDateTime()),
    )
    return prepare_move(
        DeliveryRow, target,
        where=[
            DeliveryRow.id.in_(bindparam("ids", expanding=True)),
            DeliveryRow.lease_token == _BUILD_TOKEN,
        ],
        source=State.SENDING,
        values={**released, **values},
    )  # fmt: skip


#: In the live document: delivered, with the document as the receipt.
_BUILT = _settled_by_build(
    State.DELIVERED, remote_id=_BUILD_TOKEN, remote_url=bindparam("b_url"),
    delivered_at=SNAPSHOT_TIME, last_error=None, last_code=None,
)  # fmt: skip
_REASON: BindParameter[str] = bindparam("b_reason", type_=String())
#: An item that cannot be rendered fails its own delivery, saying why.
_UNRENDERED = _settled_by_build(State.FAILED, last_error=_REASON, last_code="feed")
#: One that cannot be rendered *yet* waits `retrying` until its time.
_NOT_YET = _settled_by_build(
    State.RETRYING, next_attempt_at=bindparam("b_retry_at", type_=UTCDateTime()),
    last_error=_REASON, last_code="feed",
)  # fmt: skip
_INSERT_ATTEMPTS = insert(cast(Table, AttemptRow.__table__))


def commit_feed_build(
    store: Store,
    snapshot: FeedSnapshot,
    documents: Sequence[BuiltDocument],
    *,
    document_url: str,
    failed: Mapping[int, str],
    write: Callable[[], None],
    started_at: datetime,
    files: Mapping[int, Sequence[str]] | None = None,
    discard: Sequence[str] = (),
    retry: Mapping[int, tuple[str, datetime]] | None = None,
) -> bool:
    """Save the documents and settle what they cover, in one transaction; False if stale.

    `failed` maps the delivery id of each waiting item the channel could not
    render to the reason (the document was built without it). `files` maps a
    delivery id to the media files its item holds in these documents (kept on
    the rows this build delivers); `discard` names media files no document
    holds any more, deleted in the same transaction. `retry` maps the waiting
    items that could not be rendered *yet* (a speech service answering 503) to
    the reason and when to try again: they are left out and wait `retrying`,
    like a send that failed for now. `write` puts
    the documents on disk; it runs inside the transaction, after the rows are
    saved and before the commit, so a `delivered` anyone can read implies the
    file is there too (a failed write rolls everything back). A build whose
    snapshot is older than the stored documents' changes nothing: the newer
    build saw everything this one saw.
    """
    now = utcnow()
    covered = [(i.delivery_id, i.version) for i in snapshot.items if i.waiting]
    covered += snapshot.removals + snapshot.crowded_out
    # Published behind newer items in one burst: it went out like the others and
    # scrolled out of the window before any document held it, as it would have a
    # moment later anyway. Said in its attempt log rather than hidden.
    notes = {
        d: f"{document_url} (older than the newest {len(snapshot.items)} items it holds)"
        for d, _ in snapshot.crowded_out
    }
    try:
        with store.session() as session, session.begin():
            if not all(_save_document(session, snapshot, doc) for doc in documents):
                raise _Stale
            _settle_covered(
                session, snapshot, covered, failed, notes, document_url, started_at, now,
                retry or {},
            )  # fmt: skip
            _keep_files(session, snapshot, files or {})
            delete_media_rows(session, discard)
            write()
    except _Stale:
        return False
    return True


class _Stale(Exception):
    """A newer build's documents are stored: roll this one back."""


def _settle_covered(
    session: Session,
    snapshot: FeedSnapshot,
    covered: list[tuple[int, int]],
    reasons: Mapping[int, str],
    notes: Mapping[int, str],
    document_url: str,
    started_at: datetime,
    now: datetime,
    retry: Mapping[int, tuple[str, datetime]],
) -> None:
    """Take the covered rows for this build, then settle exactly those it took."""
    taken = _take_for_build(session, snapshot, covered, now)
    done = [d for d in taken if d not in reasons and d not in retry]
    _settle(session, snapshot, _BUILT, done, now, b_url=document_url)
    for delivery_id in (d for d in taken if d in reasons):
        _settle(session, snapshot, _UNRENDERED, [delivery_id], now, b_reason=reasons[delivery_id])
    for delivery_id in (d for d in taken if d in retry and d not in reasons):
        reason, retry_at = retry[delivery_id]
        _settle(session, snapshot, _NOT_YET, [delivery_id], now,
                b_reason=reason, b_retry_at=retry_at)  # fmt: skip
    messages = {
        d: reasons.get(d) or (retry[d][0] if d in retry else None) or notes.get(d) or document_url
        for d in taken
    }
    _log(session, taken, reasons, messages, started_at, now, retry)


def _keep_files(
    session: Session, snapshot: FeedSnapshot, files: Mapping[int, Sequence[str]]
) -> None:
    """Remember, on each row this build delivered, the files its item now holds: the
    next build that drops or replaces the item knows what to delete."""
    for delivery_id, refs in files.items():
        keep(
            session,
            DeliveryRow,
            State.DELIVERED,
            where=[
                DeliveryRow.id == delivery_id,
                DeliveryRow.remote_id == snapshot.build_id,  # settled by this build
            ],
            values=dict(checkpoint={"files": list(refs)}),
        )


def _save_document(session: Session, snapshot: FeedSnapshot, doc: BuiltDocument) -> bool:
    """Newest snapshot wins, whatever order builds finish in: a conditional UPDATE
    (atomic on SQLite too, where FOR UPDATE means nothing), else the first insert."""
    values = dict(
        channel=snapshot.channel,
        content_type=doc.content_type,
        body=doc.body,
        etag=document_etag(doc.body),
        items=doc.items,
        built_at=snapshot.read_at,
    )
    saved = session.connection().execute(
        _SAVE_DOCUMENT,
        {f"b_{key}": value for key, value in dict(values, filename=doc.filename).items()},
    )
    if saved.rowcount:
        return True
    if session.get(FeedDocumentRow, doc.filename) is not None:
        return False  # a newer build is stored
    session.add(FeedDocumentRow(filename=doc.filename, **values))
    session.flush()
    return True


def _take_for_build(
    session: Session, snapshot: FeedSnapshot, rows: Iterable[tuple[int, int]], now: datetime
) -> dict[int, int]:
    """Claim the covered rows for this build: {delivery id: attempt number}.

    The version must still be the one rendered: a row re-published since the
    snapshot stays waiting for the follow-up build, which renders the new one.
    """
    pairs = list(rows)
    if not pairs:
        return {}
    taken: dict[int, int] = {}
    for chunk in _chunks(pairs, 500):
        _, moved = run_take(
            session, _TAKE_FOR_BUILD, BUILD_LEASE.total_seconds(), now,
            token=snapshot.build_id, pairs=chunk,
        )  # fmt: skip
        taken.update({row.id: row.attempts for row in moved})
    return taken


def _settle(
    session: Session,
    snapshot: FeedSnapshot,
    settled: PreparedMove,
    ids: Sequence[int],
    now: datetime,
    **params: Any,
) -> None:
    for chunk in _chunks(list(ids), 500):
        settled.run(
            session, ids=chunk, b_token=snapshot.build_id, now=now,
            b_read_at=snapshot.read_at, **params,
        )  # fmt: skip


def _log(
    session: Session,
    taken: Mapping[int, int],
    reasons: Mapping[int, str],
    messages: Mapping[int, str],
    started_at: datetime,
    now: datetime,
    retry: Mapping[int, tuple[str, datetime]],
) -> None:
    if not taken:
        return
    duration_ms = max(0, int((now - started_at).total_seconds() * 1000))
    session.connection().execute(
        _INSERT_ATTEMPTS,
        [
            dict(
                delivery_id=delivery_id,
                number=number,
                started_at=started_at,
                duration_ms=duration_ms,
                outcome=_outcome(delivery_id, reasons, retry),
                http_status=None,
                platform_code="feed" if delivery_id in reasons or delivery_id in retry else None,
                message=messages[delivery_id],
                actor=None,
            )
            for delivery_id, number in taken.items()
        ],
    )


def _outcome(delivery_id: int, reasons: Mapping[int, str], retry: Mapping[int, Any]) -> str:
    if delivery_id in reasons:
        return "failed"
    return "retry" if delivery_id in retry else "delivered"


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
