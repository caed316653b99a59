"""What deliveries and notifications share: one ledger discipline, the same
states, leases, claims and sweeps. `model` is either table's class."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, or_
from sqlalchemy.orm import Session

from publisher.domain.states import CLAIMABLE, State
from publisher.store.models import AttemptRow, DeliveryRow
from publisher.store.transitions import move


def claimable(model: Any, now: datetime | ColumnElement[datetime]) -> Any:
    """A worker may take it: pending; retrying or held and due; sending whose lease
    expired (its worker died)."""
    return or_(
        model.state == State.PENDING,
        and_(model.state.in_([State.RETRYING, State.HELD]), model.next_attempt_at <= now),
        and_(model.state == State.SENDING, model.lease_until <= now),
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
    token = secrets.token_hex(8)
    moved = move(
        session, model, State.SENDING,
        where=[which, when], source=CLAIMABLE,
        values=dict(
            lease_token=token,
            lease_until=now + timedelta(seconds=lease_seconds),
            attempts=model.attempts + 1,
            updated_at=now,
            **extra,
        ),
        returning=returning,
    )  # fmt: skip
    return token, moved


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
