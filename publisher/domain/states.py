"""The delivery state machine: the only place that says which moves are legal.

```
(new row) → scheduled / pending, or failed (a correction or removal the
            platform cannot make, born failed so that it is reported),
            or awaiting_approval (a writer's article under `[newsroom] approval`)
awaiting_approval → scheduled / pending   (an editor approved it)
awaiting_approval → cancelled             (an editor rejected it)
scheduled / pending / retrying / failed / cancelled → awaiting_approval
                                          (a writer's new version, not yet out)
scheduled → pending → sending → delivered
scheduled → sending        (claimed by its countdown task the moment it is due)
scheduled / pending → scheduled / pending (re-posted: another publish_at, a new version)
                       sending → sending   (a lease taken over from a dead worker)
                       sending → retrying → sending
                       sending → held → sending   (waiting for its slot: rate limit, quiet
                                                   hours, spacing; no attempt spent)
                       sending → failed        (attempts exhausted, permanent error)
                       sending → pending   (delivered, but the article changed meanwhile)
any unfinished state → cancelled (retracted or cancelled by an editor)
failed / cancelled / retrying → pending (an editor's retry)
delivered / failed / cancelled / retrying / held → pending / scheduled (a new version)
```

Notifications keep a smaller ledger with the same states (no scheduled, no
cancelled) and obey the same table. `publisher.store.transitions.move` is
the one function that performs a move, as a compare-and-set against this
table; nothing else writes a state.
"""

from __future__ import annotations

from enum import StrEnum

from publisher.domain.i18n import N_


class State(StrEnum):
    SCHEDULED = "scheduled"
    PENDING = "pending"
    SENDING = "sending"
    RETRYING = "retrying"
    #: Waiting for a slot on its account (a rate-limit budget, the platform's own
    #: rate-limit answer, quiet hours, spacing): not a failure, no attempt spent.
    HELD = "held"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    AWAITING_APPROVAL = "awaiting_approval"  # a writer's article, until an editor approves


class Kind(StrEnum):
    """What a delivery does on its channel. One row per (article, channel, kind)."""

    PUBLISH = "publish"  # the article itself (re-sent in place for an EDIT correction)
    CORRECTION = "correction"  # a follow-up post or the republished article
    RETRACT = "retract"  # removing what was delivered


#: What editors read for a state, a kind or an attempt's outcome is the stored value
#: translated (the value is the msgid), so screens translate and JSON keeps the value.
#: Listed here so the catalogue has every one of them.
WORDS = (
    N_("scheduled"), N_("pending"), N_("sending"), N_("retrying"), N_("delivered"),
    N_("failed"), N_("cancelled"), N_("held"), N_("publish"), N_("correction"),
    N_("retract"), N_("retry"), N_("deferred"),
    N_("awaiting_approval"), N_("approved"), N_("rejected"), N_("awaiting"),
    N_("editor"), N_("writer"),
)  # fmt: skip


class Approval(StrEnum):
    """Where a writer's version stands under `[newsroom] approval` (None: none asked)."""

    AWAITING = "awaiting"
    APPROVED = "approved"
    REJECTED = "rejected"


class Role(StrEnum):
    """An API token's role under `[newsroom] approval`; a token without one is an editor."""

    EDITOR = "editor"
    WRITER = "writer"


class Correction(StrEnum):
    """What a channel does when a delivered article is corrected."""

    EDIT = "edit"  # change the delivered post in place (`update`)
    FOLLOW_UP = "follow_up"  # a new, short post that links the original (`format_correction`)
    REPUBLISH = "republish"  # remove the original, publish the corrected article
    NONE = "none"  # the platform cannot: the correction is reported as failed, with why


#: A writer's new version waits for an editor from any state it has not gone out in.
_RESUBMIT = frozenset({State.AWAITING_APPROVAL})

TRANSITIONS: dict[State, frozenset[State]] = {
    State.SCHEDULED: frozenset({State.SCHEDULED, State.PENDING, State.SENDING, State.CANCELLED})
    | _RESUBMIT,
    State.PENDING: frozenset({State.PENDING, State.SCHEDULED, State.SENDING, State.CANCELLED})
    | _RESUBMIT,
    State.SENDING: frozenset(
        {State.DELIVERED, State.RETRYING, State.FAILED, State.SENDING, State.PENDING}
        | {State.CANCELLED, State.HELD}
    ),
    State.HELD: frozenset({State.SENDING, State.CANCELLED, State.PENDING, State.SCHEDULED})
    | _RESUBMIT,
    State.RETRYING: frozenset({State.SENDING, State.CANCELLED, State.PENDING, State.SCHEDULED})
    | _RESUBMIT,
    State.DELIVERED: frozenset({State.PENDING, State.SCHEDULED}),
    State.FAILED: frozenset({State.PENDING, State.SCHEDULED}) | _RESUBMIT,
    State.CANCELLED: frozenset({State.PENDING, State.SCHEDULED}) | _RESUBMIT,
    # Approved (to its time, or now), rejected (cancelled), or a new version again.
    State.AWAITING_APPROVAL: frozenset(
        {State.SCHEDULED, State.PENDING, State.CANCELLED, State.AWAITING_APPROVAL}
    ),
}
#: The states a row may be inserted in.
INITIAL = frozenset({State.SCHEDULED, State.PENDING, State.FAILED, State.AWAITING_APPROVAL})

#: States a worker may claim (`sending` once its lease has expired, `scheduled` once due).
CLAIMABLE = (State.PENDING, State.RETRYING, State.HELD, State.SENDING, State.SCHEDULED)
#: States in which nothing more will happen without an editor.
SETTLED = frozenset({State.DELIVERED, State.FAILED, State.CANCELLED})
#: States an editor's retry may restart.
RETRIABLE = frozenset({State.FAILED, State.CANCELLED, State.RETRYING})
CANCELLABLE = frozenset(
    {State.SCHEDULED, State.PENDING, State.RETRYING, State.HELD, State.AWAITING_APPROVAL}
)


def sources_of(target: State) -> tuple[State, ...]:
    """Every state that may move to `target`, for compare-and-set WHERE clauses."""
    return tuple(s for s, targets in TRANSITIONS.items() if target in targets)


def is_legal(source: State | str | None, target: State | str) -> bool:
    """Whether the table allows `source → target`; `source` None is a new row."""
    target = State(target)
    if source is None:
        return target in INITIAL
    return target in TRANSITIONS[State(source)]
