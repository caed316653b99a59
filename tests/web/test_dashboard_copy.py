"""The publish form's per-channel copy in a real browser (Playwright + Debian chromium):
a field per override, a live counter the server counts, 141 字 refused, the override
shown in the preview and stored as written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.web.test_api import DESK, Api, make_api  # noqa: F401 - fixture
from tests.web.test_dashboard import browser_page  # noqa: F401 - fixture

FITS = "字" * 129  # + a space and the link (10 字) = 140 字 on Weibo
MATRIX = {
    "site": {"type": "rss"},
    "weibo": {"type": "weibo", "base_url": "http://127.0.0.1:9", "access_token_env": "NONE",
              "utm": {"source": "weibo", "campaign": "{id}"}},
    "fediverse": {"type": "mastodon", "base_url": "http://127.0.0.1:9",
                  "access_token_env": "NONE"},
}  # fmt: skip


@pytest.mark.timeout(180)
def test_publish_form_counts_overrides_like_the_platform_and_refuses_141(
    make_api: Callable[..., Api],  # noqa: F811
    browser_page: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    api = make_api(worker=False, channels=MATRIX)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(api.url + "/")
    page.fill("#token", DESK)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#whoami")).to_have_text("acting as desk")

    # One field per override each channel type takes (a feed: its summary).
    boxes = page.locator("#override-boxes label.override")
    expect(boxes).to_have_count(5)  # site·summary, weibo·text, fediverse·text/spoiler/visibility
    for name, value in (("id", "dash-copy"), ("url", "https://news.example.org/copy"),
                        ("title", "标题"), ("body", "正文。")):  # fmt: skip
        page.fill(f'#compose-form [name="{name}"]', value)

    weibo = page.locator('#compose-form [name="overrides.weibo.text"]')
    counter = page.locator('#override-boxes .counter[data-channel="weibo"]')
    weibo.fill(FITS)
    expect(counter).to_have_text("140 / 140 字 (with the article link)")
    weibo.fill(FITS + "字")
    expect(counter).to_have_text("141 / 140 字 (with the article link): over by 1")
    expect(counter).to_have_class("counter over")
    expect(weibo).to_have_attribute("aria-invalid", "true")
    page.click("#publish-button")
    expect(page.locator("#compose-message")).to_have_text(
        "overrides.weibo.text: is 141 字 (with the article link); the limit is 140 字"
    )
    assert api.get("/api/articles/dash-copy").status_code == 404  # nothing was sent

    # Mastodon counts every URL as 23, however long: "See " + 23 + a paragraph break + 23.
    toot = page.locator('#compose-form [name="overrides.fediverse.text"]')
    toot.fill("See https://news.example.org/" + "x" * 120)
    expect(page.locator('#override-boxes .counter[data-key="text"][data-channel="fediverse"]')
           ).to_contain_text("52 / 500 characters")  # fmt: skip

    weibo.fill(FITS)
    expect(counter).to_have_text("140 / 140 字 (with the article link)")
    page.select_option('#compose-form [name="overrides.fediverse.visibility"]', "unlisted")
    page.click("#preview-button")
    card = page.locator('#preview-cards .card[data-channel="weibo"]')
    expect(card.locator(".from-override")).to_have_text("text: from overrides.weibo.text")
    expect(card.locator(".post")).to_have_text(
        f"{FITS} https://news.example.org/copy?utm_source=weibo&utm_campaign=dash-copy"
    )
    expect(page.locator('#preview-cards .card[data-channel="site"] .from-override')).to_have_count(
        0
    )

    page.click("#publish-button")
    expect(page.locator("#compose-message")).to_have_text("Published dash-copy (version 1).")
    stored = api.get("/api/articles/dash-copy").json()
    weibo_delivery = next(d for d in stored["deliveries"] if d["channel"] == "weibo")
    payload = api.get(f"/dashboard/api/deliveries/{weibo_delivery['id']}/payload").json()
    assert payload["payload"]["status"].startswith(FITS + " https://news.example.org/copy?")
    toot_delivery = next(d for d in stored["deliveries"] if d["channel"] == "fediverse")
    toot_payload = api.get(f"/dashboard/api/deliveries/{toot_delivery['id']}/payload").json()
    assert toot_payload["payload"]["visibility"] == "unlisted"
    assert problems == []
