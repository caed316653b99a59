"""Times in articles: IANA zones, wall-clock times read in a zone, and the range a
time must fall in. Daylight-saving gaps and folds are refused with both offsets
named, so an editor never gets a time they did not mean.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from publisher.domain.errors import InputError
from publisher.domain.i18n import Phrase

#: Zone files that mean "whatever this machine is set to", not a place.
MACHINE_ZONES = frozenset({"localtime", "posixrules", "Factory"})


def load_zone(field: str, name: str) -> ZoneInfo:
    """The IANA zone `name`, or an `InputError` naming `field`."""
    problem = Phrase(
        "{name!r} is not an IANA time zone name such as 'Asia/Shanghai' or 'UTC'", name=name[:80]
    )
    if name in MACHINE_ZONES:
        raise InputError(field, problem)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # ValueError: a path, not a key
        raise InputError(field, problem) from None


def parse_time(
    field: str, value: Any, zone: ZoneInfo | None = None, *, zone_field: str = "timezone"
) -> datetime | None:
    """An aware time from ISO 8601 text (or a datetime).

    With a UTC offset (or `Z`) the offset decides. Without one, the time is
    wall-clock time in `zone`; with no zone it is refused, pointing at
    `zone_field` (where the caller takes a zone). The result keeps the offset
    it was given or found; the instant is what the store keeps.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InputError(
                field, Phrase("{value!r} is not an ISO 8601 time", value=value)
            ) from None
    if not isinstance(value, datetime):
        raise InputError(field, "must be an ISO 8601 time with a UTC offset")
    if value.tzinfo is None or value.utcoffset() is None:
        if zone is None:
            raise InputError(
                field,
                Phrase(
                    "has no time zone; add an offset such as +08:00 or Z, "
                    "or give {zone_field} (an IANA name such as Asia/Shanghai)",
                    zone_field=zone_field,
                ),
            )
        try:
            value = local_time(field, value.replace(tzinfo=None), zone)
        except OverflowError:  # a wall time at the edge of year 1 or 9999
            raise InputError(field, OUT_OF_RANGE) from None
    return in_range(field, value)


#: The instants the store, the feeds and every platform can represent.
OUT_OF_RANGE = "is out of range: times must fall between 1970 and 9999 (UTC)"
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def in_range(field: str, value: datetime) -> datetime:
    """`value` if its instant lies in 1970–9999 UTC; else `InputError`, never an
    OverflowError later (converting 9999-12-31T23:59:59-12:00 to UTC overflows)."""
    try:
        instant = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InputError(field, OUT_OF_RANGE) from None
    if not EARLIEST <= instant <= LATEST:
        raise InputError(field, OUT_OF_RANGE)
    return value


def local_time(field: str, wall: datetime, zone: ZoneInfo) -> datetime:
    """Wall-clock time `wall` in `zone`, as an aware time with that moment's fixed offset.

    A time the clocks skip (spring forward) or show twice (fall back) has no
    single meaning: it is refused with both candidate offsets, never guessed.
    """
    earlier = wall.replace(tzinfo=zone, fold=0)
    later = wall.replace(tzinfo=zone, fold=1)
    first, second = earlier.utcoffset(), later.utcoffset()
    if first is None or second is None:  # pragma: no cover - ZoneInfo always answers
        raise InputError(field, f"{zone.key} gives no UTC offset for {wall.isoformat()}")
    shown = wall.isoformat()
    if first != second:
        options = {"earlier": f"{shown}{_offset(first)}", "later": f"{shown}{_offset(second)}"}
        if earlier.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
            raise InputError(
                field,
                Phrase(
                    "{time} does not exist in {zone}: the clocks jump from "
                    "{before} to {after} there; "
                    "give a time outside the gap, or an explicit UTC offset ({earlier} or {later})",
                    time=shown,
                    zone=zone.key,
                    before=_offset(first),
                    after=_offset(second),
                    **options,
                ),
            )
        raise InputError(
            field,
            Phrase(
                "{time} is ambiguous in {zone}: it happens twice as the clocks go back "
                "from {before} to {after}; add the UTC offset you mean ({earlier} or {later})",
                time=shown,
                zone=zone.key,
                before=_offset(first),
                after=_offset(second),
                **options,
            ),
        )
    return wall.replace(tzinfo=timezone(first))


def _offset(delta: timedelta) -> str:
    minutes = int(delta.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"
