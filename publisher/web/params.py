"""Path and query parameter rules shared by the API's routers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path

from publisher.domain.errors import InputError

ARTICLE_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
NAME = r"^[^\x00-\x1f\x7f]+$"  # channel names: anything printable
FILENAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
MEDIA_ID = r"^[0-9a-f]{64}(\.[^/\x00-\x1f\x7f]*)?$"  # sha256 + the file's suffix
HTTP_URL = r"^https?://[^\s/?#@]+([/?#]\S*)?$"  # documented; parse_article enforces the rule
MAX_DB_INT = 2**31 - 1
DeliveryId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="a delivery id")]
ArticleId = Annotated[str, Path(pattern=ARTICLE_ID, max_length=128, description="an article id")]


def utc_param(value: datetime | None, field: str) -> datetime | None:
    """A query parameter's time in UTC, as the store compares them; a time that
    cannot be moved to UTC (year 1 minus an offset) is the editor's input error."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InputError(field, "is out of range") from None
