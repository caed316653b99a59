"""A drain: one task sends every due delivery of a channel type, in batches.

One task per delivery costs a broker round trip, a claim transaction and an
outcome transaction for each post; at a newsroom's burst that overhead is
most of the work. A drain claims a batch of due rows in one statement
(`Store.claim_due`), makes each attempt exactly as a single delivery's task
would (`DeliveryEngine.attempt`: pacing, holds, the retry decision, checkpoints,
all per row), and records the batch's outcomes in one transaction
(`DeliveryEngine.settle`), over and over while rows are due.

What a drain must not change is what an editor and a follower see:

- **Leases stay per row.** Every claimed row carries the batch's lease token
  and every write is fenced by it, so a drain that is presumed dead cannot
  overwrite a takeover's outcome. A batch is small enough to finish well
  inside the lease, and the drain stops taking batches after `budget`
  seconds (well inside the task's time limit); rows it claimed but did not
  try are given back, their attempt not spent, and its follow-up takes them.
- **Outcomes are visible promptly.** A batch is sized from the last one's
  time per attempt so it takes about `BATCH_SECONDS`, and what was tried is
  recorded at least that often, so a slow platform's posts do not wait in
  `sending` for the rest of a large batch.
- **A killed drain loses nothing.** Its rows stay `sending` until their lease
  ends; the sweeper then hands them to the next drain, which takes them over
  as it would a single delivery's (outcome unknown: the channel reconciles
  before posting again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from publisher.delivery.engine import DeliveryEngine, Tried
from publisher.domain.states import Kind

#: Rows the first claim takes, before the drain knows how fast the platform answers.
FIRST_BATCH = 8
#: Most rows one claim takes (a fast platform's batch).
MAX_BATCH = 32
#: A batch's target duration, and how often tried rows are recorded at least.
BATCH_SECONDS = 0.5
#: How often a drain renews its place among the channel type's running drains.
RENEW_SECONDS = 2.0


@dataclass(frozen=True)
class Drained:
    """What one drain did: rows tried, and whether it stopped with work left."""

    tried: int
    more: bool


def drain_budget(lease_seconds: float) -> float:
    """How long one drain keeps taking batches: a fraction of the lease (the
    task's hard time limit is 0.9 of it, and the last attempt must end inside
    it), at most 20 s so other work on the queue gets a turn."""
    return min(20.0, 0.3 * lease_seconds)


def drain(
    engine: DeliveryEngine,
    channel_type: str,
    *,
    renew: Callable[[], object] = lambda: None,
    budget: float | None = None,
) -> Drained:
    """Send due deliveries of `channel_type` until none is due or `budget` is spent."""
    lease = engine.settings.lease_seconds
    clock = time.monotonic
    deadline = clock() + (drain_budget(lease) if budget is None else budget)
    renewed = clock()
    size, total = FIRST_BATCH, 0
    while clock() <= deadline:
        claims = engine.store.claim_due(channel_type, size, lease)
        if not claims:
            return Drained(total, more=False)
        tried: list[Tried] = []
        began = flushed = clock()
        for index, claim in enumerate(claims):
            if clock() > deadline:
                engine.settle(tried, give_back=claims[index:])
                return Drained(total + len(tried), more=True)
            if clock() - renewed > RENEW_SECONDS:
                renew()
                renewed = clock()
            if claim.kind != Kind.PUBLISH and tried:
                # A correction or a removal reads its article's other posts: record
                # what this batch sent first, so it does not wait on its own batch.
                engine.settle(tried)
                total, tried, flushed = total + len(tried), [], clock()
            tried.append(engine.attempt(claim))
            if clock() - flushed > BATCH_SECONDS:
                engine.settle(tried)
                total, tried, flushed = total + len(tried), [], clock()
        engine.settle(tried)
        total += len(tried)
        per_row = (clock() - began) / len(claims)
        if len(claims) < size:
            return Drained(total, more=False)  # all that was due is done
        size = max(1, min(MAX_BATCH, int(BATCH_SECONDS / max(per_row, 1e-4))))
    return Drained(total, more=True)
