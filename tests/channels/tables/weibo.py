"""Weibo: statuses/share, its error codes in a JSON body with a 4xx status (reference §2)."""

from __future__ import annotations

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

TOKEN = "2.00contract-weibo-token-7Qx"
SHARE = "/2/statuses/share.json"


def weibo_error(status: int, code: int, message: str) -> Answer:
    return Answer(status, {"error": message, "error_code": code, "request": SHARE})


def sent(platform: ScriptedPlatform) -> dict[str, str]:
    return {"status": platform.requests_to(SHARE)[-1].form()["status"]}


TABLE = TransportTable(
    type_name="weibo",
    options={"base_url": "{url}", "access_token_env": "CONTRACT_WEIBO_TOKEN", "timeout": 0.5},
    env={"CONTRACT_WEIBO_TOKEN": TOKEN},
    secrets=(TOKEN,),
    routes={
        SHARE: Answer(200, {"idstr": "4990000000000001", "user": {"idstr": "5001"}}),
        "/2/statuses/user_timeline.json": Answer(200, {"statuses": []}),
    },
    faults=(
        Fault("no answer in time", SHARE, Answer(delay=2.0), OutcomeUnknownError),
        Fault("connection refused", SHARE, None, RetryableError),
        Fault(
            "429 with Retry-After",
            SHARE,
            Answer(429, headers={"Retry-After": "30"}),
            RateLimitedError,
            http_status=429,
            retry_after=30.0,
        ),
        Fault(
            "HTTP 502",
            SHARE,
            Answer(502, raw=b"<html>Bad Gateway</html>"),
            RetryableError,
            http_status=502,
        ),
        Fault(
            "hourly limit code",
            SHARE,
            weibo_error(403, 10023, "User requests out of rate limit!"),
            RateLimitedError,
            "10023",
            403,
            600.0,
        ),
        Fault(
            "expired token",
            SHARE,
            weibo_error(403, 21327, "expired_token"),
            ReauthRequiredError,
            "21327",
            403,
        ),
        Fault(
            "invalid token echoed back",
            SHARE,
            weibo_error(403, 21332, f"invalid_access_token: {TOKEN}"),
            ReauthRequiredError,
            "21332",
            403,
        ),
        Fault(
            "illegal content",
            SHARE,
            weibo_error(400, 20021, "content is illegal!"),
            PermanentError,
            "20021",
            400,
        ),
        Fault(
            "text too long",
            SHARE,
            weibo_error(400, 20012, "Text too long"),
            PermanentError,
            "20012",
            400,
        ),
        Fault(
            "not JSON",
            SHARE,
            Answer(200, raw=b"<html>portal</html>", content_type="text/html"),
            RetryableError,
            http_status=200,
        ),
        Fault("no status id", SHARE, Answer(200, {"created_at": "now"}), PermanentError),
    ),
    formats=(
        FormatRow(
            "short story",
            story,
            {"status": f"【全国数字技能大赛决赛开幕】三百余名职工同台竞技。 {STORY_URL} 技能 职工"},
        ),
        FormatRow(
            "no #topic# survives",
            lambda: story(title="#话题# 大赛", tags=["C#"]),
            {"status": f"【＃话题＃ 大赛】三百余名职工同台竞技。 {STORY_URL} C＃"},
        ),
        FormatRow("over-long story", long_story),
    ),
    long_article=long_story,
    sent=sent,
)
