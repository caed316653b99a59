"""`publisher status`: where deliveries stand, as a table for people or JSON for scripts.

The JSON shape is stable and documented in the README (`status --json`):

    {"deliveries": [<delivery>, ...], "counts": {"<state>": <n>, ...}}

Each delivery has the fields of the API's `DeliveryOut` (`GET /api/deliveries`),
one shape for both, newest first. With an article id the object also has
`"article": {"id", "title", "version"}` and each delivery its attempt `log`.
`--state STATE` keeps the deliveries in that state, across all articles.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from publisher.domain.i18n import _
from publisher.domain.states import State
from publisher.store.models import AttemptRow, DeliveryRow
from publisher.web.schemas import AttemptOut, delivery_out
from publisher.worker.runtime import Runtime

STATE_STYLE = {
    State.SCHEDULED: "blue",
    State.PENDING: "yellow",
    State.SENDING: "cyan",
    State.RETRYING: "magenta",
    State.HELD: "blue",
    State.DELIVERED: "green",
    State.FAILED: "bold red",
    State.CANCELLED: "dim",
    State.AWAITING_APPROVAL: "bold yellow",
}

#: `status --state` with no article id looks this far back.
STATE_LIMIT = 10_000


def state_cell(state: str, delivery_id: int) -> str:
    style = STATE_STYLE.get(State(state), "") if state in State._value2member_map_ else ""
    word = _(state)
    return f"[{style}]{word}[/] #{delivery_id}" if style else f"{word} #{delivery_id}"


def delivery_json(row: DeliveryRow, log: Sequence[AttemptRow] | None = None) -> dict[str, Any]:
    data = delivery_out(row).model_dump(mode="json")
    if log is not None:
        data["log"] = [AttemptOut.model_validate(a).model_dump(mode="json") for a in log]
    return data


def print_json(data: dict[str, Any]) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def status_json(runtime: Runtime, *, limit: int, state: str | None) -> dict[str, Any]:
    store = runtime.store
    if state:
        rows = store.deliveries(states=[state], limit=STATE_LIMIT)
    else:
        ids = [r.id for r in store.recent_articles(limit)]
        rows = store.deliveries(article_ids=ids, limit=STATE_LIMIT) if ids else []
    return {
        "deliveries": [delivery_json(d) for d in rows],
        "counts": dict(sorted(store.counts_by_state().items())),
    }


def article_json(runtime: Runtime, article_id: str, *, state: str | None) -> dict[str, Any]:
    store = runtime.store
    row, article, deliveries = store.article(article_id)
    shown = [d for d in reversed(deliveries) if state is None or d.state == state]
    counts: dict[str, int] = {}
    for d in deliveries:
        counts[d.state] = counts.get(d.state, 0) + 1
    return {
        "article": {"id": row.id, "title": article.title, "version": row.current_version},
        "deliveries": [delivery_json(d, store.attempts(d.id)) for d in shown],
        "counts": dict(sorted(counts.items())),
    }


def print_overview(runtime: Runtime, console: Console, *, limit: int, state: str | None) -> None:
    """One row per recent article, one column per channel: its latest action there."""
    store = runtime.store
    if state:
        print_deliveries(console, store.deliveries(states=[state], limit=STATE_LIMIT), state)
        return
    rows = store.recent_articles(limit)
    channels = list(runtime.settings.channels)
    table = Table(title=_("Deliveries"), show_lines=False)
    # An id is what a person copies into `status ID`: the other columns give
    # way first, so an id that fits the terminal is never cut.
    table.add_column(_("article"), no_wrap=True, min_width=_longest(r.id for r in rows))
    for name in channels:
        table.add_column(name)
    deliveries = store.deliveries(article_ids=[r.id for r in rows], limit=STATE_LIMIT)
    # The latest action on each channel shows: a retraction over a correction over the post.
    by_cell = {(d.article_id, d.channel): d for d in sorted(deliveries, key=lambda d: d.id)}
    for row in rows:
        cells = []
        for name in channels:
            d = by_cell.get((row.id, name))
            cells.append(state_cell(d.state, d.id) if d else "-")
        table.add_row(row.id, *cells)
    console.print(table)
    counts = store.counts_by_state()
    console.print(
        "  ".join(f"{_(state)}: {n}" for state, n in sorted(counts.items())) or _("no deliveries")
    )


def print_deliveries(console: Console, rows: Sequence[DeliveryRow], state: str) -> None:
    table = Table(title=_("Deliveries {state}", state=_(state)), title_justify="left")
    table.add_column(_("id"), no_wrap=True)
    table.add_column(_("article"), no_wrap=True, min_width=_longest(d.article_id for d in rows))
    for column in (_("channel"), _("kind"), _("attempts"), _("last error")):
        table.add_column(column)
    for d in rows:
        table.add_row(
            str(d.id), d.article_id, d.channel, _(d.kind), f"{d.attempts}/{d.max_attempts}",
            d.last_error or "",
        )  # fmt: skip
    console.print(table)
    console.print(_("{n} {state}", n=len(rows), state=_(state)))


def _longest(ids: Iterable[str]) -> int:
    return max((len(i) for i in ids), default=0)


def print_article(
    runtime: Runtime, console: Console, article_id: str, *, detail: bool = False,
    state: str | None = None,
) -> None:  # fmt: skip
    row, article, deliveries = runtime.store.article(article_id)
    deliveries = [d for d in deliveries if state is None or d.state == state]
    table = Table(title=f"{article.title}  (v{row.current_version})", title_justify="left")
    columns = (_("id"), _("channel"), _("kind"), _("state"), _("attempts"), _("where"))
    for column in (*columns, _("last error")):
        table.add_column(column)
    for d in deliveries:
        where = d.remote_url or (
            _("next {time}", time=f"{d.next_attempt_at:%H:%M:%S}")
            if d.next_attempt_at and d.state not in ("delivered", "awaiting_approval")
            else ""
        )
        table.add_row(
            str(d.id),
            d.channel,
            _(d.kind),
            state_cell(d.state, d.id),
            f"{d.attempts}/{d.max_attempts}",
            where,
            d.last_error or "",
        )
    console.print(table)
    version, approval, by = runtime.store.approval(article_id)
    if approval == "awaiting":
        console.print(
            _(
                "version {version} by {name} awaits an editor: publisher approve {id}",
                version=version,
                name=by or "-",
                id=article_id,
            )
        )
    if not detail:
        return
    for d in deliveries:
        log = runtime.store.attempts(d.id)
        if not log:
            continue
        console.print(_("[bold]#{id} {channel}[/] attempt log:", id=d.id, channel=d.channel))
        for a in log:
            code = _(" code {code}", code=a.platform_code) if a.platform_code else ""
            http = f" HTTP {a.http_status}" if a.http_status else ""
            console.print(
                f"  {a.started_at:%Y-%m-%d %H:%M:%S} #{a.number} {_(a.outcome)} "
                f"{a.duration_ms} ms{http}{code} {a.message or ''}",
                markup=False,
                highlight=False,
            )
