"""The newsroom's language over HTTP: the API's `problem` texts and the dashboard.

A 422 answer says its `problem` in the language `Accept-Language` asks for
(English by default, `[newsroom] locale` when the reader asks for nothing we
have) and keeps `field` machine-readable. The dashboard, in a real chromium,
follows the browser's language, shows dates in the newsroom's zone and locale,
and keeps the editor's pick of language in the tab. It leaves
`test-output/dashboard-zh-CN.png`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.web.test_api import AS_DESK, DESK, Api, article, error_of, make_api  # noqa: F401
from tests.web.test_dashboard import CHANNELS, CHROMIUM, CHROMIUM_ARGS, SETTLE, story

REPO = Path(__file__).parents[2]
SCREENSHOT = REPO / "test-output" / "dashboard-zh-CN.png"
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_a_422_speaks_the_readers_language_and_keeps_the_field(
    make_api: Callable[..., Api],  # noqa: F811
) -> None:
    api = make_api(worker=False)
    bad = article("lang", url="ftp://example.org/x")
    english = error_of(api.post("/api/articles", json=bad))
    chinese_response = api.post(
        "/api/articles", json=bad, headers={**AS_DESK, "Accept-Language": "zh-CN,zh;q=0.9"}
    )
    assert chinese_response.status_code == 422
    chinese = error_of(chinese_response)
    assert english == {
        "field": "url",
        "problem": "'ftp://example.org/x' is not an absolute http(s) URL",
    }
    assert chinese == {"field": "url", "problem": "'ftp://example.org/x' 不是完整的 http(s) URL"}
    assert chinese_response.headers["Content-Language"] == "zh-CN"
    assert "Accept-Language" in chinese_response.headers["Vary"]

    # A constant problem, pydantic's own words, and a 401 all follow the header.
    zh = {"Accept-Language": "zh-CN"}
    missing = api.post(
        "/api/articles", json={**article("m"), "title": ""}, headers={**AS_DESK, **zh}
    )
    assert error_of(missing) == {"field": "title", "problem": "必填"}
    unknown = api.post(
        "/api/articles", json={**article("u"), "colour": "red"}, headers={**AS_DESK, **zh}
    )
    assert error_of(unknown) == {"field": "colour", "problem": "不是稿件字段"}
    anonymous = api.post("/api/articles", json=article("a"), headers=zh)
    assert anonymous.status_code == 401
    assert error_of(anonymous) == {"field": "Authorization", "problem": "必填"}
    assert api.get("/api/articles").json()["total"] == 0  # nothing stored from a rejection

    # A 404 and a 409 from the store: their messages, and a state inside one, in Chinese.
    absent = api.get("/api/articles/nope", headers=zh)
    assert absent.status_code == 404
    assert error_of(absent) == {"field": None, "problem": "稿件 'nope' 不存在"}
    posted = api.post("/api/articles", json=article("s"), headers={**AS_DESK, **zh}).json()
    pending = posted["deliveries"][0]["id"]
    refused = api.post(f"/api/deliveries/{pending}/retry", headers={**AS_DESK, **zh})
    assert refused.status_code == 409
    assert error_of(refused) == {
        "field": "delivery_id",
        "problem": f"投递 {pending} 的状态是“待投递”；只有失败、已取消或重试中的投递才能重试",
    }
    english = error_of(api.post(f"/api/deliveries/{pending}/retry", headers=AS_DESK))
    assert english["problem"].startswith(f"{pending} is pending; only failed")


def test_the_newsroom_locale_is_the_default_and_a_reader_can_still_ask_for_english(
    make_api: Callable[..., Api],  # noqa: F811
) -> None:
    api = make_api(worker=False, PUBLISHER_LOCALE="zh-CN")
    bad = article("n", published_at="2026-11-20T08:00:00")  # no zone: the newsroom has none
    plain = error_of(api.post("/api/articles", json=bad))
    assert plain["field"] == "published_at" and CJK.search(plain["problem"]), plain
    assert "timezone" in plain["problem"]  # the field it points at stays as it is spelled
    asked = error_of(
        api.post("/api/articles", json=bad, headers={**AS_DESK, "Accept-Language": "en"})
    )
    assert asked["problem"].startswith("has no time zone")
    page = api.get("/")
    assert '<html lang="zh-CN">' in page.text and "投递" in page.text
    assert '<html lang="en">' in api.get("/", headers={"Accept-Language": "en-GB"}).text
    assert '<html lang="en">' in api.get("/?lang=en").text


def test_the_page_is_rendered_in_each_language_with_its_words_for_the_script(
    make_api: Callable[..., Api],  # noqa: F811
) -> None:
    api = make_api(worker=False, PUBLISHER_TIMEZONE="Asia/Shanghai")
    english = api.get("/", headers={"Accept-Language": "en-US"})
    chinese = api.get("/", headers={"Accept-Language": "zh-CN"})
    assert english.headers["Content-Language"] == "en" and "Retry all failed" in english.text
    assert chinese.headers["Content-Language"] == "zh-CN"
    assert "重试全部失败投递" in chinese.text and "Retry all failed" not in chinese.text
    data = re.search(r'<script type="application/json" id="i18n">(.*?)</script>', chinese.text)
    assert data is not None
    words = json.loads(data.group(1))
    assert words["locale"] == "zh-CN" and words["zone"] == "Asia/Shanghai"
    assert words["messages"]["delivered"] == "已送达"
    assert (
        words["messages"]["Published {id} (version {version})."]
        == "已发布 {id}（第 {version} 版）。"
    )
    assert "<" not in data.group(1)  # the data block cannot close its own script element


# -- in the browser ----------------------------------------------------------------------


def _browser(playwright: Any, locale: str) -> Any:
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    context = browser.new_context(
        viewport={"width": 1440, "height": 1000}, timezone_id="Europe/London", locale=locale
    )
    return browser, context


@pytest.mark.timeout(240)
def test_an_editor_works_in_chinese_and_picks_english_for_the_tab(
    make_api: Callable[..., Api],  # noqa: F811
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `apt-get install chromium fonts-noto-cjk`")
    sync_api = pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import expect

    # The newsroom is in Shanghai; the browser is in London: dates follow the newsroom.
    api = make_api(PUBLISHER_TIMEZONE="Asia/Shanghai")
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser, context = _browser(playwright, "zh-CN")
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda m: (
                problems.append(f"console: {m.text}")
                if m.type == "error" and "status of 422" not in m.text  # the bad URL, on purpose
                else None
            ),
        )
        try:
            page.goto(api.url + "/")
            expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
            expect(page.locator("#board-heading")).to_have_text("投递")
            expect(page.locator("#grid-head th").first).to_have_text("稿件")
            expect(page.locator("#retry-failed")).to_have_text("重试全部失败投递")
            expect(page.locator("#live")).to_contain_text("实时")
            expect(page.locator("#whoami")).to_have_text("未登录：只读")
            expect(page.locator("#tz")).to_have_text("Asia/Shanghai")

            page.fill("#token", DESK)
            page.click("#token-form button[type=submit]")
            expect(page.locator("#whoami")).to_have_text("当前身份：desk")
            first = story("zh", title="技能大赛开幕")
            for name, value in (
                ("id", first["id"]), ("url", first["url"]), ("title", first["title"]),
                ("body", first["body_markdown"]),
            ):  # fmt: skip
                page.fill(f'#compose-form [name="{name}"]', value)
            # 08:00 typed is 08:00 in the newsroom's zone (UTC+8), not London's.
            page.fill('#compose-form [name="publish_at"]', "2030-01-01T08:00:00")
            expect(page.locator("#publish-button")).to_have_text("定时发布")
            page.click("#publish-button")
            expect(page.locator("#compose-message")).to_have_text("已定时 dash-zh（第 1 版）。")
            stored = api.get("/api/articles/dash-zh").json()["article"]
            assert (
                stored["publish_at"].startswith("2030-01-01T08:00:00")
                and stored["timezone"] == "Asia/Shanghai"
            )
            site = page.locator(
                '#grid-body tr[data-article="dash-zh"] td[data-channel="site"] button'
            )
            expect(site).to_have_text("已定时")
            expect(site).to_have_class(
                re.compile(r"\bstate-scheduled\b")
            )  # classes stay machine words
            site.click()
            expect(page.locator("#detail-heading")).to_have_text(
                re.compile(r"^投递 \d+ · site · 发布$")
            )
            # "2030年1月1日 08:00:00": the newsroom's zone in Chinese, whatever London says.
            expect(page.locator("#detail-facts")).to_contain_text("2030年1月1日 08:00:00")
            page.click("#detail-cancel")
            expect(site).to_have_text("已取消")
            expect(page.locator("#detail-log")).to_contain_text("已取消")

            # A bad field: the API's problem comes back in Chinese, the field in English.
            page.fill('#compose-form [name="publish_at"]', "")
            page.fill('#compose-form [name="id"]', "dash-zh-bad")
            page.fill('#compose-form [name="url"]', "ftp://example.org/x")
            page.click("#publish-button")
            expect(page.locator("#compose-message")).to_have_text(
                "url: 'ftp://example.org/x' 不是完整的 http(s) URL"
            )

            # A delivered article, for the screenshot.
            page.fill('#compose-form [name="id"]', "dash-zh-now")
            page.fill('#compose-form [name="url"]', "https://news.example.org/zh-now")
            page.click("#publish-button")
            expect(page.locator("#compose-message")).to_have_text("已发布 dash-zh-now（第 1 版）。")
            for channel in CHANNELS:
                cell = f'td[data-channel="{channel}"] button'
                now_row = page.locator('#grid-body tr[data-article="dash-zh-now"]')
                expect(now_row.locator(cell)).to_have_text("已送达", timeout=SETTLE)
            height = page.evaluate("document.documentElement.scrollHeight")
            page.set_viewport_size({"width": 1440, "height": height})
            page.wait_for_timeout(300)
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            page.set_viewport_size({"width": 1440, "height": 1000})

            # The editor picks English: the tab keeps it, even at a plain "/".
            page.select_option("#language", "en")
            expect(page.locator("html")).to_have_attribute("lang", "en")
            expect(page.locator("#board-heading")).to_have_text("Deliveries")
            assert page.evaluate("sessionStorage.getItem('publisher.language')") == "en"
            page.goto(api.url + "/")
            expect(page.locator("html")).to_have_attribute("lang", "en")
            expect(page.locator("#retry-failed")).to_have_text("Retry all failed")
            now = page.locator(
                '#grid-body tr[data-article="dash-zh-now"] td[data-channel="site"] button'
            )
            expect(now).to_have_text("delivered")

            # Another tab of the same browser still follows its Accept-Language.
            other = context.new_page()
            other.goto(api.url + "/")
            expect(other.locator("#board-heading")).to_have_text("投递")

            # A British editor's English: "1 Jan 2030, 08:00:00", the newsroom's 08:00.
            british = browser.new_context(timezone_id="Europe/London", locale="en-GB").new_page()
            british.goto(api.url + "/")
            expect(british.locator("html")).to_have_attribute("lang", "en")
            british.locator(
                '#grid-body tr[data-article="dash-zh"] td[data-channel="site"] button'
            ).click()
            expect(british.locator("#detail-facts")).to_contain_text("1 Jan 2030, 08:00:00")
            expect(british.locator("#detail-facts")).to_contain_text("cancelled")
            british.context.close()
        finally:
            context.close()
            browser.close()
    assert problems == [], problems
