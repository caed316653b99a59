"""Mastodon: POST /api/v1/statuses, errors as HTTP status plus {"error": ...}."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from channels.mastodon_length import mastodon_length
from publisher.domain.errors import (
    OutcomeUnknownError,
    PermanentError,
    RateLimitedError,
    ReauthRequiredError,
    RetryableError,
)
from tests.channels.contract import (
    STORY_URL,
    Answer,
    Fault,
    FormatRow,
    ScriptedPlatform,
    TransportTable,
    long_story,
    story,
)

TOKEN = "contract-mastodon-token-5b1e"
STATUSES = "/api/v1/statuses"


def thread_parts_fit(post: Mapping[str, Any]) -> None:
    """Split, not cut: every part within 500, numbered 1/N..N/N, the first the status."""
    parts = post["thread"]
    assert len(parts) > 1 and post["status"] == parts[0]
    for index, part in enumerate(parts, 1):
        assert mastodon_length(part) <= 500 and part.endswith(f" {index}/{len(parts)}")


def sent(platform: ScriptedPlatform) -> dict[str, str]:
    return {"status": json.loads(platform.requests_to(STATUSES)[-1].body)["status"]}


TABLE = TransportTable(
    type_name="mastodon",
    options={
        "base_url": "{url}",
        "access_token_env": "CONTRACT_MASTODON_TOKEN",
        "timeout": 0.5,
        "upload_cover": False,
    },
    env={"CONTRACT_MASTODON_TOKEN": TOKEN},
    secrets=(TOKEN,),
    routes={
        "/api/v2/instance": Answer(200, {"configuration": {"statuses": {"max_characters": 500}}}),
        STATUSES: Answer(200, {"id": "9001", "url": "https://remote.example/@news/9001"}),
    },
    faults=(
        Fault("no answer in time", STATUSES, Answer(delay=2.0), OutcomeUnknownError),
        Fault("connection refused", STATUSES, None, RetryableError),
        Fault(
            "429 with Retry-After",
            STATUSES,
            Answer(429, {"error": "Too many requests"}, headers={"Retry-After": "7"}),
            RateLimitedError,
            http_status=429,
            retry_after=7.0,
        ),
        Fault(
            "HTTP 503",
            STATUSES,
            Answer(503, {"error": "Service Unavailable"}),
            RetryableError,
            http_status=503,
        ),
        Fault(
            "revoked token",
            STATUSES,
            Answer(401, {"error": "The access token is invalid"}),
            ReauthRequiredError,
            http_status=401,
        ),
        Fault(
            "token echoed back",
            STATUSES,
            Answer(401, {"error": f"bad token {TOKEN}"}),
            ReauthRequiredError,
            http_status=401,
        ),
        Fault(
            "no permission",
            STATUSES,
            Answer(403, {"error": "This action is not allowed"}),
            PermanentError,
            http_status=403,
        ),
        Fault(
            "content refused",
            STATUSES,
            Answer(422, {"error": "Validation failed: Text character limit of 500 exceeded"}),
            PermanentError,
            http_status=422,
        ),
        Fault(
            "not JSON",
            STATUSES,
            Answer(200, raw=b"<html>ok</html>", content_type="text/html"),
            RetryableError,
            http_status=200,
        ),
        Fault("no status id", STATUSES, Answer(200, {"content": "<p>posted</p>"}), PermanentError),
    ),
    formats=(
        FormatRow(
            "short story",
            story,
            {
                "status": "\n\n".join(
                    ["全国数字技能大赛决赛开幕", "三百余名职工同台竞技。", STORY_URL, "#技能 #职工"]
                ),
                "language": "zh",
                "visibility": "public",
                "cover": None,
            },
        ),
        FormatRow("over-long story", long_story),
        FormatRow(
            "over-long story as a thread",
            long_story,
            {"visibility": "public", "language": "zh"},
            options={"thread": True},
            check=thread_parts_fit,
        ),
    ),
    long_article=long_story,
    sent=sent,
)
