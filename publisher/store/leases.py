"""The worker's side: claim a delivery under a lease, checkpoint its steps,
record its outcome (delivered, retrying, failed) or hold it for its slot.

A worker owns a delivery only while its lease token matches; every write
here and in `outcomes` is fenced by that token and by the row still being
`sending`, so a worker that was presumed dead and comes back cannot
overwrite the outcome of the one that replaced it. A claim, of one delivery
or of a drain's batch, is one statement, and so is an outcome.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, select

from publisher.domain.states import State
from publisher.store.base import StoreBase
from publisher.store.ledger import CLAIM_TIME, claimable_delivery, fenced, prepare_take, run_take
from publisher.store.models import DeliveryRow
from publisher.store.outcomes import Outcomes
from publisher.store.records import Claim, utcnow
from publisher.store.transitions import PreparedMove, keep

_CLAIM_COLUMNS = (
    DeliveryRow.channel,
    DeliveryRow.channel_type,
    DeliveryRow.article_id,
    DeliveryRow.article_version,
    DeliveryRow.attempts,
    DeliveryRow.max_attempts,
    DeliveryRow.payload,
    DeliveryRow.checkpoint,
    DeliveryRow.outcome_unknown,
    DeliveryRow.kind,
    DeliveryRow.remote_id,
)


def _prepared_claim(which: Any) -> PreparedMove:
    """A worker's claim of the rows `which` selects, built once (it is made for
    every delivery, and building it cost more CPU than running it)."""
    return prepare_take(
        DeliveryRow, which, claimable_delivery(CLAIM_TIME), _CLAIM_COLUMNS,
        # Taking over from a worker that died mid-send: it may have sent.
        outcome_unknown=case(
            (DeliveryRow.state == State.SENDING, 1), else_=DeliveryRow.outcome_unknown
        ),
    )  # fmt: skip


_CLAIM_ONE = _prepared_claim(DeliveryRow.id == bindparam("b_id"))
# A CTE, materialized: PostgreSQL may run a plain sub-select once per row it
# checks, each run skipping the rows the last one locked, and so take more
# than the limit.
_DUE_BATCH = (
    select(DeliveryRow.id)
    .where(DeliveryRow.channel_type == bindparam("b_type"), claimable_delivery(CLAIM_TIME))
    .order_by(DeliveryRow.id)
    .limit(bindparam("b_limit"))
    .with_for_update(skip_locked=True)
    .cte("batch")
    .prefix_with("MATERIALIZED", dialect="postgresql")
)
_CLAIM_DUE = _prepared_claim(DeliveryRow.id.in_(select(_DUE_BATCH.c.id)))


class WorkerSide(StoreBase):
    def claim(
        self, delivery_id: int, lease_seconds: float, now: datetime | None = None
    ) -> Claim | None:
        """Take a delivery for one attempt, or None if it is not ours to take.

        Claimable: pending; retrying or held and due; sending whose lease expired (its
        worker died, so that attempt's outcome is unknown); scheduled whose
        time has come (the countdown task `arm_schedules` queued fires on time,
        without waiting for the sweeper to release it).
        """
        claims = self._take(_CLAIM_ONE, lease_seconds, now or utcnow(), b_id=delivery_id)
        return claims[0] if claims else None

    def claim_due(
        self, channel_type: str, limit: int, lease_seconds: float, now: datetime | None = None
    ) -> list[Claim]:
        """Take up to `limit` claimable deliveries of a channel type, oldest first,
        in one statement: a drain's batch. Each row is claimed as `claim` would
        claim it (its own attempt, the batch's lease token), so every later write
        is fenced per row. Two drains never take the same row: the UPDATE
        re-checks each row's state, and PostgreSQL skips rows another drain's
        claim has locked instead of waiting for them."""
        claims = self._take(
            _CLAIM_DUE, lease_seconds, now or utcnow(), b_type=channel_type, b_limit=limit
        )
        return sorted(claims, key=lambda claim: claim.delivery_id)

    def _take(
        self, prepared: PreparedMove, lease_seconds: float, now: datetime, **params: Any
    ) -> list[Claim]:
        with self.session() as session, session.begin():
            token, rows = run_take(session, prepared, lease_seconds, now, **params)
        return [
            Claim(
                delivery_id=row.id,
                token=token,
                channel=row.channel,
                channel_type=row.channel_type,
                article_id=row.article_id,
                article_version=row.article_version,
                attempt=row.attempts,
                max_attempts=row.max_attempts,
                payload=dict(row.payload or {}),
                checkpoint=dict(row.checkpoint or {}),
                outcome_unknown=bool(row.outcome_unknown),
                kind=row.kind,
                remote_id=row.remote_id,
            )
            for row in rows
        ]

    def save_checkpoint(self, claim: Claim, data: dict[str, Any]) -> bool:
        with self.session() as session, session.begin():
            return keep(
                session, DeliveryRow, State.SENDING,
                where=fenced(DeliveryRow, claim.delivery_id, claim.token),
                values=dict(checkpoint=data, updated_at=utcnow()),
            )  # fmt: skip

    @contextmanager
    def outcomes(self) -> Iterator[Outcomes]:
        """One transaction for outcome writes: one attempt's, or a drain's batch."""
        with self.session() as session, session.begin():
            writes = Outcomes(session)
            yield writes
            writes.finish()

    def record_delivered(self, claim: Claim, **fields: Any) -> bool:
        """`Outcomes.delivered` in a transaction of its own."""
        with self.outcomes() as writes:
            return writes.delivered(claim, **fields)

    def record_failure(self, claim: Claim, **fields: Any) -> list[int] | None:
        """`Outcomes.failure` in a transaction of its own."""
        with self.outcomes() as writes:
            return writes.failure(claim, **fields)

    def hold(self, claim: Claim, **fields: Any) -> bool:
        """`Outcomes.hold` in a transaction of its own."""
        with self.outcomes() as writes:
            return writes.hold(claim, **fields)
