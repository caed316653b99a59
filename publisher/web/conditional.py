"""Conditional GETs for what followers fetch: the feeds and the media.

Feed readers poll; an unchanged document should cost them a 304, not the
whole body. Validators are the document's ETag and, once it can be trusted,
its build time as Last-Modified (see `dated_once_settled`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

from fastapi import Request, Response

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
    """`body` with its validators, or 304 when the client already holds it."""
    headers = {"ETag": etag, **headers}
    if modified is not None:
        headers["Last-Modified"] = format_datetime(modified.astimezone(UTC), usegmt=True)
    if not_modified(request, etag, modified):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=content_type, headers=headers)
