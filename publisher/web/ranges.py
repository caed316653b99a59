"""Byte ranges (RFC 9110 §14): podcast apps and media players seek with them.

One range a request: `bytes=a-b`, `bytes=a-` and the suffix `bytes=-n`. A
header this server does not serve (another unit, several ranges, bad syntax)
is ignored, as RFC 9110 §14.2 allows, and the whole representation is sent;
a range that starts past the end is refused (416), so a client learns the
length from `Content-Range: bytes */length`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

_SPEC = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE | re.ASCII)


class RangeNotSatisfiable(Exception):
    """The range asked for lies wholly outside the representation."""


@dataclass(frozen=True)
class ByteRange:
    """Bytes `start` to `end`, both included, as Content-Range counts them."""

    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    def content_range(self, length: int) -> str:
        return f"bytes {self.start}-{self.end}/{length}"

    def of(self, body: bytes) -> bytes:
        return body[self.start : self.end + 1]


def requested_range(header: str, length: int) -> ByteRange | None:
    """The one range to send of `length` bytes, or None to send them all.

    Raises RangeNotSatisfiable for a range that starts at or past the end, or
    a suffix of zero bytes.
    """
    match = _SPEC.match(header)
    if match is None:  # another unit, several ranges, or not a range at all
        return None
    first, last = match.groups()
    try:
        if not first:  # suffix: the last n bytes
            if not last:
                return None  # "bytes=-" is no range
            suffix = int(last)
            if suffix == 0:
                raise RangeNotSatisfiable
            if length == 0:
                return None  # nothing to cut: the empty representation, whole
            return ByteRange(max(0, length - suffix), length - 1)
        start = int(first)
        end = int(last) if last else length - 1
    except ValueError:  # more digits than int() reads: not a range we serve
        return None
    if last and end < start:
        return None  # invalid, so ignored (RFC 9110 §14.1.1)
    if start >= length:
        raise RangeNotSatisfiable
    return ByteRange(start, min(end, length - 1))


def if_range_holds(header: str, etag: str, modified: datetime | None) -> bool:
    """Whether an If-Range validator still names this representation (RFC 9110
    §13.1.5): an entity tag compared strongly, or a date equal to Last-Modified.
    When it does not, the client's partial copy is stale and gets the whole."""
    value = header.strip()
    if value.startswith(('"', "W/")):
        return not value.startswith("W/") and value == etag and not etag.startswith("W/")
    if modified is None:
        return False
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return False
    if when is None or when.tzinfo is None:
        return False
    return modified.replace(microsecond=0) == when
