"""Where an idle publish's time goes until every feed document holds it, from the
script's clock and the worker's log: the publish call (store transaction and the
rebuild request), the hand-over to the worker (broker round trip, pool), the
rebuilds themselves (in-task, the slower of the channels), and the rest (the
script seeing the documents: its poll interval and its reads)."""

from __future__ import annotations

import re
import statistics
from datetime import UTC, datetime
from pathlib import Path

EVENT = re.compile(
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO \S+ Task publisher\.rebuild_feed\[[^\]]+\] "
    r"(received|succeeded in ([0-9.e-]+)s)"
)


def rebuild_events(log: Path, start: int) -> list[tuple[float, str, float]]:
    """(epoch seconds, 'received' or 'succeeded', in-task seconds) from byte `start` on.
    The worker logs local time; this machine's is UTC, as the bench assumes."""
    with log.open("rb") as fh:
        fh.seek(start)
        text = fh.read().decode(errors="replace")
    out = []
    for match in EVENT.finditer(text):
        when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
        kind = "received" if match.group(2) == "received" else "succeeded"
        out.append((when.timestamp(), kind, float(match.group(3) or 0)))
    return out


def idle_phases(
    samples: list[tuple[float, float, float]], events: list[tuple[float, str, float]]
) -> dict[str, float]:
    """Medians in ms over the idle articles; `samples` are (before publish, after
    publish, seen in every document) in epoch seconds. Log times have ms resolution."""
    phases: dict[str, list[float]] = {"publish": [], "to worker": [], "rebuild": [], "rest": []}
    for sent, published, seen in samples:
        window = [e for e in events if sent - 0.002 <= e[0] <= seen + 0.002]
        received = [t for t, kind, _ in window if kind == "received"]
        done = [(t, took) for t, kind, took in window if kind == "succeeded"]
        if not received or not done:
            continue
        last, took = max(done)
        phases["publish"].append((published - sent) * 1000)
        phases["to worker"].append(max(0.0, (last - took - published) * 1000))
        phases["rebuild"].append(took * 1000)
        phases["rest"].append(max(0.0, (seen - last) * 1000))
    return {name: statistics.median(v) for name, v in phases.items() if v}
