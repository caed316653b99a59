"""Per-channel copy through the HTTP API: the 422 an editor gets, what preview says of
overrides and alt text, and the counter's endpoint counting as the publish check does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.web.test_api import Api, article, error_of, make_api  # noqa: F401 - fixture

FITS = "字" * 129  # + a space and the link (10 字) = 140 字 on Weibo
MATRIX = {
    "site": {"type": "rss", "utm": {"source": "site", "campaign": "{id}"}},
    "weibo": {"type": "weibo", "base_url": "http://127.0.0.1:9", "access_token_env": "NONE"},
    "wechat": {"type": "wechat", "base_url": "http://127.0.0.1:9", "appid_env": "NONE",
               "secret_env": "NONE"},
}  # fmt: skip


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:  # noqa: F811
    return make_api(worker=False, channels=MATRIX)


@pytest.mark.parametrize(
    ("overrides", "field", "problem"),
    [
        ({"weibo": {"text": FITS + "字"}}, "overrides.weibo.text",
         "is 141 字 (with the article link); the limit is 140 字"),
        ({"wechat": {"title": "标" * 33}}, "overrides.wechat.title",
         "is 33 字; the limit is 32 字"),
        ({"weibo": {"digest": "x"}}, "overrides.weibo.digest",
         "a weibo channel takes no 'digest' override (it takes: text)"),
        ({"mastodon": {"text": "x"}}, "overrides.mastodon",
         "no such channel (configured: site, wechat, weibo)"),
    ],
)  # fmt: skip
def test_an_override_the_channel_refuses_is_a_422_and_nothing_is_stored(
    api: Api, overrides: dict[str, Any], field: str, problem: str
) -> None:
    for path in ("/api/articles", "/api/preview"):
        response = api.post(path, json=article("c1", overrides=overrides))
        assert response.status_code == 422, response.text
        assert error_of(response) == {"field": field, "problem": problem}
    assert api.get("/api/articles/api-c1").status_code == 404


def test_a_correction_may_change_the_overrides(api: Api) -> None:
    first = api.post("/api/articles", json=article("c2", overrides={"weibo": {"text": "一"}}))
    again = api.post("/api/articles", json=article("c2", overrides={"weibo": {"text": "一"}}))
    changed = api.post("/api/articles", json=article("c2", overrides={"weibo": {"text": "二"}}))
    assert [r.status_code for r in (first, again, changed)] == [202, 202, 202]
    assert (again.json()["changed"], changed.json()["changed"]) == (False, True)
    assert changed.json()["version"] == 2


def test_preview_says_which_text_came_from_an_override_and_warns_of_missing_alt(
    api: Api,
) -> None:
    body = article(
        "c3", cover_image="https://news.example.org/c.jpg",
        body_html='<p>Text.</p><img src="https://news.example.org/i.jpg">',
        overrides={"weibo": {"text": FITS}, "site": {"summary": "For readers."}},
    )  # fmt: skip
    response = api.post("/api/preview", json=body)
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["weibo"]["overridden"] == ["text"]
    assert shown["weibo"]["payload"]["status"] == f"{FITS} https://news.example.org/ac3"
    assert shown["weibo"]["counts"] == [{
        "key": "text", "used": 140, "limit": 140, "unit": "字", "counts": "with the article link",
        "fits": True,
    }]  # fmt: skip
    assert shown["site"]["overridden"] == ["summary"]
    assert shown["site"]["payload"]["url"] == (
        "https://news.example.org/ac3?utm_source=site&utm_campaign=api-c3"
    )
    assert shown["wechat"]["overridden"] == [] and shown["wechat"]["counts"] == []
    assert shown["wechat"]["warnings"] == [
        "the cover has no cover_alt: screen readers get nothing for it",
        "body image https://news.example.org/i.jpg has no alt text",
    ]
    with_alt = {**body, "cover_alt": "A robot", "body_html": '<img src="x.jpg" alt="A hall">'}
    assert api.post("/api/preview", json=with_alt).json()["site"]["warnings"] == []


def test_the_counter_endpoint_counts_as_the_publish_check_does(api: Api) -> None:
    response = api.post("/api/overrides/count", json={
        "id": "api-c4", "url": "https://news.example.org/ac4",
        "overrides": {"weibo": {"text": FITS + "字"}, "wechat": {"title": "标题", "x": "y"},
                      "nope": {"text": "z"}},
    })  # fmt: skip
    assert response.status_code == 200, response.text
    counts = response.json()
    assert counts["weibo"] == [{
        "key": "text", "used": 141, "limit": 140, "unit": "字", "counts": "with the article link",
        "fits": False, "problem": "is 141 字 (with the article link); the limit is 140 字",
    }]  # fmt: skip
    title, unknown = counts["wechat"]
    assert (title["key"], title["used"], title["fits"]) == ("title", 2, True)
    assert unknown["fits"] is False and "takes no 'x' override" in unknown["problem"]
    assert counts["nope"][0]["problem"].startswith("no such channel")
    # Before the form has a url, the link is counted at the weight of any short link.
    short = api.post("/api/overrides/count", json={"overrides": {"weibo": {"text": FITS}}})
    assert short.json()["weibo"][0]["used"] == 140
