"""The JSON webhook: the receiver's own HTTP status is its only error code."""

from __future__ import annotations

import json
from typing import Any

from publisher.domain.article import Article
from publisher.domain.errors import (
    OutcomeUnknownError,
    PermanentError,
    RateLimitedError,
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

TOKEN = "contract-webhook-bearer-3c2d"
HOOK = "/ingest"


def sent(platform: ScriptedPlatform) -> dict[str, Any]:
    return dict(json.loads(platform.requests_to(HOOK)[-1].body))


def whole(article: Article) -> dict[str, Any]:
    """A webhook has no length rule: the receiver gets the article whole."""
    return {"title": article.title, "summary": article.summary, "body_html": article.body_html}


TABLE = TransportTable(
    type_name="webhook",
    options={"base_url": "{url}" + HOOK, "token_env": "CONTRACT_WEBHOOK_TOKEN", "timeout": 0.5},
    env={"CONTRACT_WEBHOOK_TOKEN": TOKEN},
    secrets=(TOKEN,),
    routes={HOOK: Answer(200, {"id": "rcv-1", "url": "https://archive.example/rcv-1"})},
    faults=(
        Fault("no answer in time", HOOK, Answer(delay=2.0), OutcomeUnknownError),
        Fault("connection refused", HOOK, None, RetryableError),
        Fault(
            "429 with Retry-After",
            HOOK,
            Answer(429, headers={"Retry-After": "12"}),
            RateLimitedError,
            http_status=429,
            retry_after=12.0,
        ),
        Fault("HTTP 503", HOOK, Answer(503), RetryableError, http_status=503),
        Fault(
            "credentials refused",
            HOOK,
            Answer(401, {"error": f"bad token {TOKEN}"}),
            PermanentError,
            http_status=401,
        ),
        Fault("forbidden", HOOK, Answer(403), PermanentError, http_status=403),
        Fault(
            "content refused",
            HOOK,
            Answer(422, {"error": "missing field"}),
            PermanentError,
            http_status=422,
        ),
        Fault(
            "not JSON",
            HOOK,
            Answer(200, raw=b"<html>ok</html>", content_type="text/html"),
            RetryableError,
            http_status=200,
        ),
        # A receiver need not answer with a body: the idempotency key is then the id.
        Fault("empty answer", HOOK, Answer(204), None),
    ),
    formats=(
        FormatRow(
            "short story",
            story,
            {
                "id": "contract-1",
                "url": STORY_URL,
                "title": "全国数字技能大赛决赛开幕",
                "tags": ["技能", "职工"],
            },
        ),
        FormatRow("over-long story", long_story),
    ),
    long_article=long_story,
    sent=sent,
    long_expect=whole,
)
