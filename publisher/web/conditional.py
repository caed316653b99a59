"""Serving what followers fetch, the feeds and the media, as a feed host does.

Feed readers poll; an unchanged document should cost them a 304, not the
whole body. Validators are the document's ETag and, once it can be trusted,
its build time as Last-Modified (see `dated_once_settled`). Crawlers and
podcast directories ask with HEAD; podcast apps and players fetch audio in
byte ranges (`publisher.web.ranges`), resuming with If-Range.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

from fastapi import Request, Response

from publisher.domain.i18n import Phrase
from publisher.web.errors import error_response
from publisher.web.ranges import RangeNotSatisfiable, if_range_holds, requested_range

#: Seconds after a feed build before its Last-Modified is sent (see dated_once_settled).
DATE_SETTLES_AFTER = 2.0


def etag_matches(header: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 §13.1.2): a GET may use it."""
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in header.split(","))


def dated_once_settled(built_at: datetime) -> datetime | None:
    """A feed document's Last-Modified, or None while the document is young.

    Dates have whole seconds, and two builds within one second would carry the
    same one: a client that compares dates (libcurl does, even on a 200, so
    newsboat and many readers do) would then keep the older document. So the
    date is only given once a later build must fall in a later second (RFC 9110
    §8.8.2.2); until then the ETag alone validates.
    """
    if datetime.now(UTC) - built_at < timedelta(seconds=DATE_SETTLES_AFTER):
        return None
    return built_at


def not_modified(request: Request, etag: str, modified: datetime | None) -> bool:
    """Whether the client's copy is current (RFC 9110 §13.2.2 order)."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:  # takes precedence over If-Modified-Since
        return etag_matches(if_none_match, etag)
    since = request.headers.get("if-modified-since")
    if since and modified is not None:
        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError, IndexError):
            return False
        if when is None or when.tzinfo is None:
            return False
        return modified.replace(microsecond=0) <= when
    return False


def conditional_response(
    request: Request,
    body: bytes,
    content_type: str,
    etag: str,
    modified: datetime | None,
    headers: dict[str, str],
) -> Response:
    """`body` with its validators: 304 when the client already holds it, 206 with
    the one byte range a GET asks for (416 past the end), headers alone for HEAD.

    Preconditions come before the range (RFC 9110 §13.2.2), and a range is
    served only while If-Range, when given, still names this representation.
    """
    headers = {"ETag": etag, "Accept-Ranges": "bytes", **headers}
    if modified is not None:
        headers["Last-Modified"] = format_datetime(modified.astimezone(UTC), usegmt=True)
    if not_modified(request, etag, modified):
        return Response(status_code=304, headers=headers)
    status, part = 200, body
    asked = request.headers.get("range")
    if_range = request.headers.get("if-range")
    # Range is defined for GET alone (RFC 9110 §14.2): HEAD describes the whole.
    if (
        asked is not None
        and request.method == "GET"
        and (if_range is None or if_range_holds(if_range, etag, modified))
    ):
        try:
            chosen = requested_range(asked, len(body))
        except RangeNotSatisfiable:
            return _unsatisfiable(len(body))
        if chosen is not None:
            status, part = 206, chosen.of(body)
            headers["Content-Range"] = chosen.content_range(len(body))
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(part))
        return Response(status_code=status, media_type=content_type, headers=headers)
    return Response(part, status_code=status, media_type=content_type, headers=headers)


def _unsatisfiable(length: int) -> Response:
    # Not the representation's caching headers: a cache must not keep this answer.
    problem = Phrase("starts past the end of the {length:,} bytes there are", length=length)
    return error_response(
        416, "Range", problem, {"Content-Range": f"bytes */{length}", "Accept-Ranges": "bytes"}
    )
