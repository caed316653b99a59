"""The delivery state machine: the only place that says which moves are legal.

```
scheduled → pending → sending → delivered
                       sending → retrying → sending
                       sending → failed        (attempts exhausted, permanent error)
any unfinished state → cancelled (retracted or cancelled by an editor)
failed / cancelled → pending (an editor's retry)
delivered → pending (a correction on a channel that updates in place)
```
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    SCHEDULED = "scheduled"
    PENDING = "pending"
    SENDING = "sending"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.SCHEDULED: frozenset({State.PENDING, State.CANCELLED}),
    State.PENDING: frozenset({State.SENDING, State.CANCELLED, State.SCHEDULED}),
    State.SENDING: frozenset(
        {State.DELIVERED, State.RETRYING, State.FAILED, State.SENDING, State.CANCELLED}
    ),
    State.RETRYING: frozenset({State.SENDING, State.CANCELLED, State.PENDING}),
    State.DELIVERED: frozenset({State.PENDING}),
    State.FAILED: frozenset({State.PENDING}),
    State.CANCELLED: frozenset({State.PENDING}),
}

#: States a worker may claim (`sending` only once its lease has expired).
CLAIMABLE = (State.PENDING, State.RETRYING, State.SENDING)
#: States in which nothing more will happen without an editor.
SETTLED = frozenset({State.DELIVERED, State.FAILED, State.CANCELLED})
#: States an editor's retry may restart.
RETRIABLE = frozenset({State.FAILED, State.CANCELLED, State.RETRYING})
CANCELLABLE = frozenset({State.SCHEDULED, State.PENDING, State.RETRYING})


def sources_of(target: State) -> tuple[State, ...]:
    """Every state that may move to `target`, for compare-and-set WHERE clauses."""
    return tuple(s for s, targets in TRANSITIONS.items() if target in targets)
