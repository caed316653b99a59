"""A worker's outcome writes: delivered, failed or retrying, held.

Each is fenced by the claim's lease token and by the row still being
`sending`, so a worker that was presumed dead and comes back cannot overwrite
the outcome of the one that replaced it. They write into a transaction the
caller owns (`WorkerSide.outcomes`): one delivery's attempt commits alone, a
drain's batch (`publisher.delivery.drain`) commits all its outcomes at once,
so a batch costs one commit instead of one per delivery, and a write whose
lease was lost leaves the others in the batch untouched.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Integer,
    String,
    and_,
    bindparam,
    cast,
    column,
    exists,
    func,
    insert,
    select,
)  # fmt: skip
from sqlalchemy.orm import Session

from publisher.domain.states import Kind, State
from publisher.store.ledger import fenced
from publisher.store.models import ArticleRow, AttemptRow, DeliveryRow
from publisher.store.notifications import new_notification
from publisher.store.records import Claim, PlannedNotification, utcnow
from publisher.store.transitions import move, prepare_move


def _mine() -> list[Any]:
    """`fenced`, with the row and the token as bound parameters."""
    return fenced(DeliveryRow, bindparam("b_id"), bindparam("b_token"))


_SETTLED: dict[str, Any] = dict(
    remote_id=bindparam("b_remote_id"),
    remote_url=bindparam("b_remote_url"),
    delivered_at=bindparam("b_now"),
    last_error=None,
    last_code=None,
    outcome_unknown=0,
    lease_token=None,
    lease_until=None,
    next_attempt_at=bindparam("b_now"),
    enqueued_at=None,
    updated_at=bindparam("b_now"),
)
_SAME = DeliveryRow.article_version == bindparam("b_version")
#: Delivered, if the article is still at the version that was sent...
_DELIVERED = prepare_move(
    DeliveryRow, State.DELIVERED, where=[*_mine(), _SAME], source=State.SENDING, values=_SETTLED
)
#: ...else due again at once, with the new version.
_CHANGED = prepare_move(
    DeliveryRow, State.PENDING, where=[*_mine(), ~_SAME], source=State.SENDING, values=_SETTLED
)
#: Many receipts at once (PostgreSQL): the same move, its rows read from one JSON
#: parameter, so a drain's batch is one statement and one round trip.
_RECEIPTS = (
    func.json_to_recordset(cast(bindparam("b_rows", type_=String), JSON))
    .table_valued(
        column("id", Integer), column("token", String), column("version", Integer),
        column("remote_id", String), column("remote_url", String),
    )
    .render_derived(name="receipt", with_types=True)
)  # fmt: skip
_DELIVERED_ALL = prepare_move(
    DeliveryRow, State.DELIVERED,
    where=[*fenced(DeliveryRow, _RECEIPTS.c.id, _RECEIPTS.c.token),
           DeliveryRow.article_version == _RECEIPTS.c.version],
    source=State.SENDING,
    values={**_SETTLED, "remote_id": _RECEIPTS.c.remote_id, "remote_url": _RECEIPTS.c.remote_url},
)  # fmt: skip
#: A claim given back untried: due at once, its attempt not spent.
_GIVEN_BACK = prepare_move(
    DeliveryRow, State.PENDING, where=_mine(), source=State.SENDING,
    values=dict(
        attempts=DeliveryRow.attempts - 1,
        next_attempt_at=bindparam("b_now"),
        lease_token=None,
        lease_until=None,
        enqueued_at=None,
        updated_at=bindparam("b_now"),
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Delivered:
    """One post's receipt, to be recorded (`Outcomes.delivered_all`)."""

    claim: Claim
    remote_id: str
    remote_url: str | None
    started_at: datetime
    duration_ms: int
    actor: str | None = None
    #: What the channel did differently from what was written, named for the log.
    notes: Sequence[str] = ()


class Outcomes:
    """The outcome writes of one transaction; every method returns whether it wrote.

    Attempt-log entries of deliveries are written together, in one INSERT,
    when the transaction is about to commit (`finish`)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._attempts: list[dict[str, Any]] = []

    def finish(self) -> None:
        """Write what is still held back; the caller commits next."""
        if self._attempts:
            self.session.execute(insert(AttemptRow), self._attempts)
            self._attempts = []

    def delivered(
        self,
        claim: Claim,
        *,
        remote_id: str,
        remote_url: str | None,
        started_at: datetime,
        duration_ms: int,
        actor: str | None = None,
        notes: list[str] | None = None,
    ) -> bool:
        """`delivered_all` for one receipt."""
        receipt = Delivered(
            claim, remote_id, remote_url, started_at, duration_ms, actor, tuple(notes or ())
        )
        return self.delivered_all([receipt])[0]

    def delivered_all(self, receipts: Sequence[Delivered]) -> list[bool]:
        """Mark each delivered; where the article changed meanwhile, due again with
        the new version. Returns, in order, whether each was written (False: its
        lease was lost).

        The version check is part of the fenced UPDATE, so a new version written
        while this one was in flight is never marked delivered unseen. The
        attempt's message is where the post lives, followed by the channel's
        notes (e.g. "body image x.jpg left out"), so the log says what was
        delivered differently from what was written.
        """
        if not receipts:
            return []
        now = utcnow()
        params = [
            dict(
                b_id=r.claim.delivery_id, b_token=r.claim.token, b_version=r.claim.article_version,
                b_remote_id=r.remote_id, b_remote_url=r.remote_url, b_now=now,
            )
            for r in receipts
        ]  # fmt: skip
        if self.session.connection().dialect.name == "postgresql":
            moved = {row[0] for row in _DELIVERED_ALL.run(self.session, **_as_rows(params))}
        else:  # SQLite runs in-process: a statement per row costs no round trip
            moved = {p["b_id"] for p in params if _DELIVERED.run(self.session, **p)}
        for p in params:  # the rare row whose article changed while it was sent
            if p["b_id"] not in moved and _CHANGED.run(self.session, **p):
                moved.add(p["b_id"])
        for receipt in receipts:
            if receipt.claim.delivery_id in moved:
                self._attempts.append(_delivered_entry(receipt))
        return [r.claim.delivery_id in moved for r in receipts]

    def failure(
        self,
        claim: Claim,
        *,
        outcome: str,
        reason: str,
        code: str | None,
        http_status: int | None,
        started_at: datetime,
        duration_ms: int,
        retry_at: datetime | None,
        outcome_unknown: bool,
        notifications: Sequence[PlannedNotification] = (),
    ) -> list[int] | None:
        """Log a failed attempt; `retry_at` None means failed for good.

        `notifications` are written in the same transaction (a crash cannot
        keep the failure and lose its notice); their ids are returned for
        enqueueing after commit. None: the lease was lost, nothing written.
        """
        now = utcnow()
        values: dict[str, Any] = dict(
            last_error=reason,
            last_code=code,
            next_attempt_at=retry_at,
            outcome_unknown=1 if outcome_unknown else 0,
            lease_token=None,
            lease_until=None,
            enqueued_at=now if retry_at else None,
            updated_at=now,
        )
        mine = fenced(DeliveryRow, claim.delivery_id, claim.token)
        # A post that was in flight when its article was retracted is not tried
        # again: the retraction already cancelled everything that had not gone out.
        retracted = exists().where(
            ArticleRow.id == DeliveryRow.article_id, ArticleRow.retracted_at.is_not(None)
        )
        posts = DeliveryRow.kind != Kind.RETRACT
        session = self.session
        if retry_at is None:
            moved = move(
                session, DeliveryRow, State.FAILED, where=mine, source=State.SENDING,
                values=values,
            )  # fmt: skip
        else:
            moved = move(
                session, DeliveryRow, State.RETRYING,
                where=[*mine, ~and_(posts, retracted)], source=State.SENDING, values=values,
            ) or move(
                session, DeliveryRow, State.CANCELLED,
                where=[*mine, posts, retracted], source=State.SENDING,
                values={**values, "enqueued_at": None},
            )  # fmt: skip
        if not moved:
            return None
        session.add(
            AttemptRow(
                delivery_id=claim.delivery_id,
                number=claim.attempt,
                started_at=started_at,
                duration_ms=duration_ms,
                outcome=outcome,
                http_status=http_status,
                platform_code=code,
                message=reason,
            )
        )
        rows = [new_notification(claim.delivery_id, plan, now) for plan in notifications]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]

    def hold(self, claim: Claim, *, until: datetime, reason: str, armed: bool = True) -> bool:
        """Hold a claimed delivery until its slot, `until`: not a failure.

        A rate-limit budget, the platform's own rate-limit answer, quiet hours
        and account spacing (`publisher.delivery.pacing`) make a delivery wait,
        never spend it: the claim's attempt is given back, the row waits as
        `held` with `until` as its `next_attempt_at` and `reason` as what the
        editor reads, and the attempt log says why (one entry for one wait, however
        often it is renewed). `armed`: a countdown task
        is enqueued for `until`; False leaves the release to the sweeper, which
        takes it the moment it is due. False if the lease was lost and nothing
        was written.
        """
        now = utcnow()
        session = self.session
        moved = move(
            session, DeliveryRow, State.HELD,
            where=fenced(DeliveryRow, claim.delivery_id, claim.token), source=State.SENDING,
            values=dict(
                attempts=claim.attempt - 1,
                next_attempt_at=until,
                last_error=reason,
                lease_token=None,
                lease_until=None,
                enqueued_at=now if armed else None,
                updated_at=now,
            ),
        )  # fmt: skip
        if not moved:
            return False
        self.finish()  # the attempt log as it stands, to renew a wait's entry in place
        last = session.scalars(
            select(AttemptRow)
            .where(AttemptRow.delivery_id == claim.delivery_id)
            .order_by(AttemptRow.id.desc())
            .limit(1)
        ).first()
        if last is not None and last.outcome == "held" and last.number == claim.attempt - 1:
            # Still waiting, no attempt between: one entry, renewed, says where it
            # stands (a queue that moves back wakes its waiters at their old slots).
            last.started_at, last.message = now, reason
            return True
        session.add(
            AttemptRow(
                delivery_id=claim.delivery_id,
                number=claim.attempt - 1,
                started_at=now,
                duration_ms=0,
                outcome="held",
                message=reason,
            )
        )
        return True

    def release(self, claims: Sequence[Claim]) -> int:
        """Give back claims a drain took but will not try (its time ran out): each
        is due again at once, its attempt not spent. Returns how many were given back."""
        now = utcnow()
        return sum(
            len(_GIVEN_BACK.run(self.session, b_id=c.delivery_id, b_token=c.token, b_now=now))
            for c in claims
        )


def _as_rows(params: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Rows' parameters as `_DELIVERED_ALL` reads them: one JSON array, one time."""
    keys = ("id", "token", "version", "remote_id", "remote_url")
    rows = [{key: p[f"b_{key}"] for key in keys} for p in params]
    return {"b_rows": json.dumps(rows), "b_now": params[0]["b_now"]}


def _delivered_entry(receipt: Delivered) -> dict[str, Any]:
    """The attempt-log entry of a delivered post."""
    return dict(
        delivery_id=receipt.claim.delivery_id,
        number=receipt.claim.attempt,
        started_at=receipt.started_at,
        duration_ms=receipt.duration_ms,
        outcome="delivered",
        message="; ".join(p for p in (receipt.remote_url, *receipt.notes) if p) or None,
        actor=receipt.actor,
        http_status=None,
        platform_code=None,
    )
