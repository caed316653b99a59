"""What deliveries and notifications share: one ledger discipline, the same
states, leases, claims and sweeps. `model` is either table's class."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Row, String, and_, bindparam, or_
from sqlalchemy.orm import Session

from publisher.domain.states import CLAIMABLE, State
from publisher.store.models import AttemptRow, DeliveryRow, UTCDateTime
from publisher.store.transitions import PreparedMove, prepare_move


def claimable(model: Any, now: datetime | ColumnElement[datetime]) -> Any:
    """A worker may take it: pending; retrying or held and due; sending whose lease
    expired (its worker died)."""
    return or_(
        model.state == State.PENDING,
        and_(model.state.in_([State.RETRYING, State.HELD]), model.next_attempt_at <= now),
        and_(model.state == State.SENDING, model.lease_until <= now),
    )


def claimable_delivery(now: datetime | ColumnElement[datetime]) -> Any:
    """A delivery a worker may take: `claimable`, or scheduled and its time has come."""
    return or_(
        claimable(DeliveryRow, now),
        and_(DeliveryRow.state == State.SCHEDULED, DeliveryRow.publish_at <= now),
    )


def due(model: Any, now: datetime) -> Any:
    """What the sweeper looks at: claimable rows whose time has come."""
    return or_(
        and_(
            model.state.in_([State.PENDING, State.RETRYING, State.HELD]),
            model.next_attempt_at <= now,
        ),
        and_(model.state == State.SENDING, model.lease_until <= now),
    )


def not_enqueued_since(model: Any, stale: datetime) -> Any:
    return or_(model.enqueued_at.is_(None), model.enqueued_at <= stale)


#: The claim's time, in a statement built once (`prepare_take`); a caller's own
#: conditions may use it too.
CLAIM_TIME: BindParameter[datetime] = bindparam("b_claim_time", type_=UTCDateTime())


def take(
    session: Session,
    model: Any,
    which: Any,
    when: Any,
    lease_seconds: float,
    now: datetime,
    returning: Sequence[Any],
    **extra: Any,
) -> tuple[str, list[Row[Any]]]:
    """The claim, one statement: the rows `which` selects (one id, or a drain's
    batch) that are claimable `when`, to sending under one fresh lease token,
    one more attempt each, and the columns the worker needs read back by the
    same UPDATE. A row another worker took first simply does not come back."""
    prepared = prepare_take(model, which, when, returning, **extra)
    return run_take(session, prepared, lease_seconds, now)


def prepare_take(
    model: Any, which: Any, when: Any, returning: Sequence[Any], **extra: Any
) -> PreparedMove:
    """`take` as a statement built once, for a claim made over and over (a
    worker's): `which` and `when` may use bound parameters, `CLAIM_TIME` among
    them, which `run_take` fills in with the rest."""
    return prepare_move(
        model, State.SENDING,
        where=[which, when], source=CLAIMABLE,
        values=dict(
            lease_token=_LEASE_TOKEN,
            lease_until=_LEASE_UNTIL,
            attempts=model.attempts + 1,
            updated_at=CLAIM_TIME,
            **extra,
        ),
        returning=returning,
    )  # fmt: skip


def run_take(
    session: Session,
    prepared: PreparedMove,
    lease_seconds: float,
    now: datetime,
    *,
    token: str | None = None,
    **params: Any,
) -> tuple[str, list[Row[Any]]]:
    """Run a prepared claim under a lease token, fresh unless the caller has its
    own (a feed build's id): (the token, the rows taken)."""
    token = token or secrets.token_hex(8)
    until = now + timedelta(seconds=lease_seconds)
    rows = prepared.run(
        session, b_lease_token=token, b_lease_until=until, b_claim_time=now, **params
    )
    return token, rows


_LEASE_TOKEN: BindParameter[str] = bindparam("b_lease_token", type_=String())
_LEASE_UNTIL: BindParameter[datetime] = bindparam("b_lease_until", type_=UTCDateTime())


def fenced(model: Any, row_id: Any, token: Any) -> list[Any]:
    """The guard of every write by a worker: its row, its lease, still sending."""
    return [model.id == row_id, model.lease_token == token]


def editor_entry(row: DeliveryRow, outcome: str, actor: str | None, now: datetime) -> AttemptRow:
    """Editors' actions go in the attempt log too, so it tells the whole story."""
    return AttemptRow(
        delivery_id=row.id,
        number=row.attempts,
        started_at=now,
        duration_ms=0,
        outcome=outcome,
        message=f"by {actor}" if actor else None,
        actor=actor,
    )
