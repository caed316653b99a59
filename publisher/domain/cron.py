"""Cron expressions in a named time zone: when a recurring job is due.

Five fields, `minute hour day-of-month month day-of-week`, each `*`, a
number, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, or a comma list of
those. Month and weekday names (`jan`, `mon`) are accepted, and weekday 0 and
7 are both Sunday. As in Vixie cron, when both day fields are restricted a
day matching either one matches. `@hourly`, `@daily`, `@weekly`, `@monthly`
and `@yearly` are shorthands.

A schedule is read in wall-clock time in its IANA zone, and each scheduled
time is the one UTC instant it maps to, so a daylight-saving change never
fires a job twice or drops it:

- a wall time the spring change skips (02:30 in New York on the second
  Sunday of March) fires once, shifted forward by the change (03:30 EDT);
- a wall time the autumn change repeats (01:30 on the first Sunday of
  November) fires once, at its first occurrence (01:30 EDT), unless the
  hour field is a wildcard (`0 * * * *`): then it fires in both of the
  repeated hours, as Vixie cron does, so an hourly job stays hourly.

Callers pass `now` in, so tests drive the clock; nothing here sleeps.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SHORTHANDS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
MONTHS = {name.lower(): n for n, name in enumerate(calendar.month_abbr) if name}
WEEKDAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
# A leap day on a weekday fires at least once in 28 years; nothing valid waits longer.
SEARCH_DAYS = 366 * 28


class CronError(ValueError):
    """The expression or the zone is not valid; the message says which part."""


@dataclass(frozen=True)
class _Field:
    values: frozenset[int]
    star: bool  # began with `*`: matters for the day-of-month / day-of-week rule


def _parse_field(
    text: str, name: str, low: int, high: int, names: dict[str, int] | None = None
) -> _Field:
    def number(token: str) -> int:
        token = token.strip().lower()
        if names and token in names:
            return names[token]
        if not token.isdigit():
            raise CronError(f"{name}: {token!r} is not a number")
        value = int(token)
        if not low <= value <= high:
            raise CronError(f"{name}: {value} is outside {low}-{high}")
        return value

    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{name}: empty item in {text!r}")
        span, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{name}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = number(a), number(b)
            if first > last:
                raise CronError(f"{name}: range {span!r} runs backwards")
        else:
            first = number(span)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return _Field(frozenset(values), text.startswith("*"))


class CronSchedule:
    """A five-field cron expression bound to an IANA time zone."""

    def __init__(self, expression: str, timezone: str) -> None:
        self.expression = expression
        self.timezone = timezone
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CronError(
                f"{timezone!r} is not an IANA time zone such as 'Asia/Shanghai'"
            ) from None
        text = SHORTHANDS.get(expression.strip().lower(), expression)
        fields = text.split()
        if len(fields) != 5:
            raise CronError(
                f"{expression!r} must have five fields: minute hour day-of-month month day-of-week"
            )
        self.minutes = _parse_field(fields[0], "minute", 0, 59)
        self.hours = _parse_field(fields[1], "hour", 0, 23)
        self.days = _parse_field(fields[2], "day-of-month", 1, 31)
        self.months = _parse_field(fields[3], "month", 1, 12, MONTHS)
        weekdays = _parse_field(fields[4], "day-of-week", 0, 7, WEEKDAYS)
        self.weekdays = _Field(frozenset(d % 7 for d in weekdays.values), weekdays.star)
        self._times = sorted((h, m) for h in self.hours.values for m in self.minutes.values)
        if not self._can_fire():
            raise CronError(f"{expression!r} never fires (no such day in the months it names)")

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, {self.timezone!r})"

    def previous(self, now: datetime) -> datetime | None:
        """The latest scheduled instant at or before `now` (UTC), or None."""
        return self._search(now, backwards=True)

    def next_after(self, now: datetime) -> datetime | None:
        """The earliest scheduled instant strictly after `now` (UTC), or None."""
        return self._search(now, backwards=False)

    def between(self, start: datetime, end: datetime) -> list[datetime]:
        """Every scheduled instant in (start, end], oldest first."""
        found: list[datetime] = []
        at = start
        while (nxt := self.next_after(at)) is not None and nxt <= end:
            found.append(nxt)
            at = nxt
        return found

    # -- internals -----------------------------------------------------------

    def _can_fire(self) -> bool:
        if self.days.star or not self.weekdays.star:
            return True
        return any(
            day <= calendar.monthrange(2024, month)[1]  # 2024: February has 29 days
            for month in self.months.values
            for day in self.days.values
        )

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months.values:
            return False
        in_month = day.day in self.days.values
        in_week = (day.weekday() + 1) % 7 in self.weekdays.values
        if self.days.star and self.weekdays.star:
            return True
        if self.days.star:
            return in_week
        if self.weekdays.star:
            return in_month
        return in_month or in_week

    def _instants(self, day: date) -> list[datetime]:
        """The UTC instants this schedule fires at on one local date, sorted.

        `fold=0` picks the first of a repeated wall time, and for a skipped
        one the offset from before the change, which moves it forward by the
        size of the gap; the set removes a shifted time that lands on a real
        one. `fold=1` adds the second of a repeated time for wildcard hours.
        """
        if not self._day_matches(day):
            return []
        folds = (0, 1) if self.hours.star else (0,)
        return sorted(
            {
                datetime(
                    day.year, day.month, day.day, h, m, tzinfo=self.zone, fold=fold
                ).astimezone(UTC)
                for h, m in self._times
                for fold in folds
            }
        )

    def _dates(self, start: date, backwards: bool) -> Iterator[date]:
        step = timedelta(days=-1 if backwards else 1)
        day = start
        for _ in range(SEARCH_DAYS):
            yield day
            try:
                day += step
            except OverflowError:
                return

    def _search(self, now: datetime, *, backwards: bool) -> datetime | None:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        now = now.astimezone(UTC)
        local_day = now.astimezone(self.zone).date()
        # A time shifted by a spring change can cross into the neighbouring
        # local date, so start one day out and look one day past the first hit.
        start = local_day + timedelta(days=1 if backwards else -1)
        best: datetime | None = None
        extra = 1
        for day in self._dates(start, backwards):
            for instant in self._instants(day):
                if backwards and instant <= now and (best is None or instant > best):
                    best = instant
                if not backwards and instant > now and (best is None or instant < best):
                    best = instant
            if best is not None:
                if extra == 0:
                    break
                extra -= 1
        return best
