"""Backoff: exponential with jitter, capped, honouring the platform's own wait."""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based).

    "Equal jitter": half the exponential step is kept, half is random, so
    retries spread out (no thundering herd after an outage) yet still grow.
    A platform's `retry_after` is a floor: retrying earlier only burns quota.
    """
    step = min(cap, base * (2 ** max(0, attempt - 1)))
    draw = (rng or random).uniform(0, step / 2)
    delay = step / 2 + draw
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
