"""WeChat: token, cover, draft, publish, poll; errors as `errcode` in a 200 answer (§1)."""

from __future__ import annotations

import json
from typing import Any

from publisher.domain.errors import (
    AuthExpiredError,
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
from tests.conftest import SAMPLES

SECRET = "contract-wechat-appsecret-9f8e7d6c"
ISSUED = "ACCESS-contract-wechat-token-" + "x" * 40
COVER = str(SAMPLES / "skills-contest.jpg")  # the channel's default_cover
TOKEN, COVER_UPLOAD, DRAFT, SUBMIT, POLL = (
    f"/cgi-bin/{p}"
    for p in (
        "stable_token",
        "material/add_material",
        "draft/add",
        "freepublish/submit",
        "freepublish/get",
    )
)


def errcode(code: int, message: str) -> Answer:
    return Answer(200, {"errcode": code, "errmsg": message})


def sent(platform: ScriptedPlatform) -> dict[str, Any]:
    return {"article": json.loads(platform.requests_to(DRAFT)[-1].body)["articles"][0]}


TABLE = TransportTable(
    type_name="wechat",
    options={
        "base_url": "{url}",
        "appid_env": "CONTRACT_WX_APPID",
        "secret_env": "CONTRACT_WX_SECRET",
        "timeout": 0.5,
        "default_cover": COVER,
        "publish_wait": 1.0,
        "publish_poll_interval": 0.1,
    },
    env={"CONTRACT_WX_APPID": "wx-contract-appid", "CONTRACT_WX_SECRET": SECRET},
    secrets=(SECRET, ISSUED),
    routes={
        TOKEN: Answer(200, {"access_token": ISSUED, "expires_in": 7200}),
        COVER_UPLOAD: Answer(200, {"media_id": "cover-1", "url": "https://mmbiz.example/c1"}),
        DRAFT: Answer(200, {"media_id": "draft-1"}),
        SUBMIT: Answer(200, {"errcode": 0, "errmsg": "ok", "publish_id": "p-1"}),
        POLL: Answer(
            200,
            {
                "publish_id": "p-1",
                "publish_status": 0,
                "article_id": "art-1",
                "article_detail": {
                    "count": 1,
                    "item": [{"idx": 1, "article_url": "https://mp.weixin.qq.com/s/art-1"}],
                },
            },
        ),
    },
    faults=(
        Fault("no answer to the draft", DRAFT, Answer(delay=2.0), OutcomeUnknownError),
        Fault("no answer to the cover upload", COVER_UPLOAD, Answer(delay=2.0), RetryableError),
        Fault("connection refused", TOKEN, None, RetryableError),
        Fault(
            "429 with Retry-After",
            DRAFT,
            Answer(429, headers={"Retry-After": "9"}),
            RateLimitedError,
            http_status=429,
            retry_after=9.0,
        ),
        Fault("HTTP 500", SUBMIT, Answer(500), RetryableError, http_status=500),
        Fault(
            "token expired",
            DRAFT,
            errcode(40001, f"invalid credential, access_token is invalid: {ISSUED}"),
            AuthExpiredError,
            "40001",
        ),
        Fault(
            "wrong app secret, echoed",
            TOKEN,
            errcode(40125, f"invalid appsecret {SECRET}"),
            ReauthRequiredError,
            "40125",
        ),
        Fault(
            "IP not whitelisted",
            TOKEN,
            errcode(40164, "invalid ip 127.0.0.1"),
            ReauthRequiredError,
            "40164",
        ),
        Fault(
            "content refused",
            DRAFT,
            errcode(45166, f"invalid content hint, access_token={ISSUED}"),
            PermanentError,
            "45166",
        ),
        Fault(
            "rate limited code",
            SUBMIT,
            errcode(45011, "api minute-quota reach limit"),
            RateLimitedError,
            "45011",
            retry_after=60.0,
        ),
        Fault(
            "not JSON",
            DRAFT,
            Answer(200, raw=b"<html>gateway</html>", content_type="text/html"),
            RetryableError,
            http_status=200,
        ),
        Fault("no publish_id", SUBMIT, Answer(200, {"errcode": 0, "errmsg": "ok"}), RetryableError),
        Fault("no token in the answer", TOKEN, Answer(200, {"expires_in": 7200}), RetryableError),
    ),
    formats=(
        FormatRow(
            "short story",
            story,
            {
                "article.title": "全国数字技能大赛决赛开幕",
                "article.digest": "三百余名职工同台竞技。",
                "article.content_source_url": STORY_URL,
                "cover_image": "channel:default_cover",  # never a server path in a payload
                "inline_images": [],
            },
        ),
        FormatRow("over-long story", long_story),
    ),
    long_article=long_story,
    sent=sent,
)
