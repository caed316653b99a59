"""The editors' dashboard: its routes over HTTP, and the page in a real browser.

The browser test drives Debian's chromium (`/usr/bin/chromium`, from
`apt-get install chromium`) with Playwright from PyPI, against the API and a
real Celery worker on loopback with the machine's Redis: an editor publishes,
watches the cells turn delivered, retries a failed delivery, schedules and
cancels one. It leaves a screenshot in `test-output/dashboard.png`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SAMPLES
from tests.web.test_api import AS_CMS, AS_DESK, DESK, Api, make_api  # noqa: F401 - fixture

REPO = Path(__file__).parents[2]
SCREENSHOT = REPO / "test-output" / "dashboard.png"
CHROMIUM = Path(os.environ.get("PUBLISHER_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SAMPLE = SAMPLES / "digital-talent.json"
HOSTILE_TITLE = '<img src=x onerror=alert(1)> Strike & "pay" </td><script>alert(2)</script>'
CHANNELS = ["site", "app", "hook"]
SETTLE = 60_000  # ms: how long the page may take to show a settled state


@pytest.fixture
def make_board(make_api: Callable[..., Api]) -> Callable[..., Api]:  # noqa: F811
    """The API (with the dashboard) on loopback over feeds and a webhook channel."""
    return make_api


def story(n: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"dash-{n}",
        "url": f"https://news.example.org/{n}",
        "title": f"Story {n}",
        "body_markdown": f"Body of story **{n}**.",
        "published_at": "2026-11-20T08:00:00+08:00",
        **fields,
    }


# -- the routes, without a browser ------------------------------------------------------


def test_page_is_static_escaped_and_locked_down(make_board: Callable[..., Api]) -> None:
    api = make_board(worker=False)
    page = api.get("/", headers=AS_DESK)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert DESK not in page.text and "Bearer" not in page.text  # no token is ever served
    assert "http://" not in page.text.replace("http://www.w3.org", "")  # nothing from elsewhere
    assert "https://" not in page.text.replace('placeholder="https://', "")

    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        assert f"/dashboard/static/{name}?v=" in page.text
        asset = api.get(f"/dashboard/static/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        assert "cdn" not in asset.text.lower() and "//fonts." not in asset.text
        again = api.get(
            f"/dashboard/static/{name}", headers={"If-None-Match": asset.headers["ETag"]}
        )
        assert again.status_code == 304
    missing = api.get("/dashboard/static/other.js")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "name"
    assert api.get("/dashboard/static/..%2Fapi.py").status_code in (404, 422)
    assert not any(
        p.startswith("/dashboard") or p == "/" for p in api.get("/openapi.json").json()["paths"]
    )


def test_config_whoami_payload_and_markdown_source(make_board: Callable[..., Api]) -> None:
    api = make_board(worker=False)
    config = api.get("/dashboard/api/config").json()
    assert [(c["name"], c["type"]) for c in config["channels"]] == [
        ("site", "rss"), ("app", "app_feed"), ("hook", "webhook"),
    ]  # fmt: skip
    assert config["title"] == "Test Daily" and config["read_requires_token"] is False
    assert set(config["retriable"]) == {"failed", "cancelled", "retrying"}
    assert set(config["cancellable"]) == {
        "scheduled", "pending", "retrying", "held", "awaiting_approval",
    }  # fmt: skip
    assert "base_url" not in json.dumps(config)  # columns only, nothing about where they go

    assert api.get("/dashboard/api/whoami").status_code == 401
    assert (
        api.get("/dashboard/api/whoami", headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    assert api.get("/dashboard/api/whoami", headers=AS_CMS).json() == {
        "name": "cms",
        "role": "editor",
    }

    posted = api.post("/api/articles", json=story("p", title="Payload <b>title</b>"))
    hook = next(d for d in posted.json()["deliveries"] if d["channel"] == "hook")
    stored = api.get(f"/dashboard/api/deliveries/{hook['id']}/payload").json()
    previewed = api.post("/api/preview", json=story("p", title="Payload <b>title</b>")).json()
    assert stored["payload"] == previewed["hook"]["payload"]  # what was previewed is sent
    assert (stored["channel"], stored["channel_type"], stored["article_version"]) == (
        "hook", "webhook", 1,
    )  # fmt: skip
    assert api.get("/dashboard/api/deliveries/999999/payload").status_code == 404

    markdown = (SAMPLES / "skills-contest.md").read_text(encoding="utf-8")
    # A JSON body and a token (api.post sends one): a form elsewhere can send neither.
    fields = api.post("/dashboard/api/source", json={"text": markdown}).json()
    assert fields["id"] == "2026-11-20-skills-contest"
    assert datetime.fromisoformat(fields["published_at"]) == datetime(
        2026, 11, 20, 0, 30, tzinfo=UTC
    )
    assert fields["body_markdown"].startswith("11月20日")
    for bad, problem in (
        ("no front matter", "front matter"),
        ("---\n[1, 2]\n---\nbody", "mapping"),
    ):
        response = api.post("/dashboard/api/source", json={"text": bad})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == "source" and problem in response.text
    not_utf8 = api.post(
        "/dashboard/api/source", data=b"\xff\xfe",
        headers={**AS_DESK, "Content-Type": "application/json"},
    )  # fmt: skip
    assert not_utf8.status_code == 422 and "not valid JSON" in not_utf8.text


def test_reads_need_a_token_when_the_api_says_so(make_board: Callable[..., Api]) -> None:
    api = make_board(worker=False, PUBLISHER_READ_REQUIRES_TOKEN="true")
    assert api.get("/").status_code == 200  # the page itself holds nothing
    assert api.get("/dashboard/api/config").status_code == 401
    assert api.get("/dashboard/api/config", headers=AS_DESK).json()["read_requires_token"]
    assert (
        api.post(
            "/dashboard/api/source", json={"text": "---\nid: x\n---\n"}, headers={}
        ).status_code
        == 401
    )


# -- the page, in a browser -------------------------------------------------------------


@pytest.fixture
def browser_page() -> Iterator[Any]:
    """A chromium page, or a skip that says how to get chromium."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: the dashboard browser test needs Debian's chromium "
            "(`apt-get install chromium`; `make test` installs it where apt-get works)"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the dashboard browser test needs `pip install playwright`"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(
            viewport={"width": 1440, "height": 1000}, timezone_id="Asia/Shanghai", locale="en-GB"
        )
        page = context.new_page()
        try:
            yield page
        finally:
            context.close()
            browser.close()


@pytest.mark.timeout(240)
def test_editor_publishes_watches_retries_and_cancels_in_a_browser(
    make_board: Callable[..., Api], browser_page: Any
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    api = make_board()
    problems: list[str] = []  # alert() from a hostile title, script errors, failed loads
    outside: list[str] = []  # anything fetched from somewhere other than the app

    def on_dialog(dialog: Any) -> None:
        if dialog.type == "confirm" and dialog.message.startswith("Withdraw "):
            dialog.accept()  # the retract button asks first
            return
        problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    def on_request(request: Any) -> None:
        if not request.url.startswith((api.url, "data:", "about:")):
            outside.append(request.url)

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", on_console)
    page.on("request", on_request)

    def row(article_id: str) -> Any:
        return page.locator(f'#grid-body tr[data-article="{article_id}"]')

    def cell(article_id: str, channel: str) -> Any:
        return row(article_id).locator(f'td[data-channel="{channel}"] button')

    page.goto(api.url + "/")
    expect(page.locator("#grid-head th")).to_have_count(1 + len(CHANNELS))
    for n, channel in enumerate(CHANNELS, start=1):
        expect(page.locator("#grid-head th").nth(n)).to_contain_text(channel)
    expect(page.locator("#live")).to_contain_text("live")

    # The sample article, pasted as JSON: a preview first, then publishing, which
    # needs the token the editor pastes once.
    sample = SAMPLE.read_text(encoding="utf-8")
    sample_id = json.loads(sample)["id"]
    page.click("#tab-source")
    page.fill("#source-text", sample)
    page.click("#preview-button")
    expect(page.locator("#preview-cards .card")).to_have_count(len(CHANNELS))
    expect(page.locator('#preview-cards .card[data-channel="site"] .post-title')).to_have_text(
        json.loads(sample)["title"]
    )
    page.click("#publish-button")
    expect(page.locator("#compose-message")).to_contain_text("Paste your API token")
    assert api.get("/api/articles").json()["total"] == 0

    page.fill("#token", DESK)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#whoami")).to_have_text("acting as desk")
    assert page.input_value("#token") == ""  # kept in sessionStorage, not on the page
    assert page.evaluate("sessionStorage.getItem('publisher.api-token')") == DESK
    assert DESK not in page.content()

    page.click("#publish-button")
    expect(page.locator("#compose-message")).to_have_text(f"Published {sample_id} (version 1).")
    for channel in CHANNELS:
        expect(cell(sample_id, channel)).to_have_text("delivered", timeout=SETTLE)
        expect(cell(sample_id, channel)).to_have_class(re.compile(r"\bstate-delivered\b"))

    # Scheduled through the fields form (times in the browser's zone), then cancelled.
    page.click("#tab-fields")
    later = story("later")
    for name, value in (
        ("id", later["id"]), ("url", later["url"]), ("title", later["title"]),
        ("body", later["body_markdown"]),
    ):  # fmt: skip
        page.fill(f'#compose-form [name="{name}"]', value)
    page.fill('#compose-form [name="publish_at"]', "2030-01-01T08:00:00")
    page.uncheck('#channel-boxes input[value="app"]')
    expect(page.locator("#publish-button")).to_have_text("Schedule")
    page.click("#publish-button")
    expect(page.locator("#compose-message")).to_have_text("Scheduled dash-later (version 1).")
    expect(cell("dash-later", "site")).to_have_text("scheduled")
    expect(row("dash-later").locator("td.none")).to_have_count(1)  # no app delivery
    stored = api.get("/api/articles/dash-later").json()
    assert datetime.fromisoformat(stored["article"]["publish_at"]) == datetime(
        2030, 1, 1, tzinfo=UTC
    )
    assert stored["article"]["channels"] == ["site", "hook"]
    cell("dash-later", "site").click()
    expect(page.locator("#detail-heading")).to_contain_text("site")
    expect(page.locator("#detail-retry")).to_be_disabled()
    page.click("#detail-cancel")
    expect(cell("dash-later", "site")).to_have_text("cancelled")
    expect(page.locator("#detail-log")).to_contain_text("cancelled")
    expect(page.locator("#detail-log")).to_contain_text("desk")

    # A hostile title, and a webhook that refuses the first delivery.
    api.receiver.fail_next(400)
    page.fill('#compose-form [name="publish_at"]', "")
    page.check('#channel-boxes input[value="app"]')
    page.fill('#compose-form [name="id"]', "dash-hostile")
    page.fill('#compose-form [name="title"]', HOSTILE_TITLE)
    page.fill('#compose-form [name="body"]', "Workers **strike** for pay.")
    page.fill('#compose-form [name="tags"]', "labour, pay")
    page.click("#preview-button")
    expect(page.locator('#preview-cards .card[data-channel="app"] .post-title')).to_have_text(
        HOSTILE_TITLE
    )
    page.click("#publish-button")
    expect(cell("dash-hostile", "hook")).to_have_text("failed", timeout=SETTLE)
    for channel in ("site", "app"):
        expect(cell("dash-hostile", channel)).to_have_text("delivered", timeout=SETTLE)
    expect(row("dash-hostile").locator(".title")).to_have_text(HOSTILE_TITLE)
    assert page.locator("main img, main script").count() == 0

    cell("dash-hostile", "hook").click()
    expect(page.locator("#detail-facts")).to_contain_text("webhook rejected the article (HTTP 400)")
    expect(page.locator("#detail-log tr")).to_have_count(1)
    expect(page.locator("#detail-log tr").first).to_contain_text("failed")
    expect(page.locator("#detail-payload pre.json")).to_contain_text('"tags": [')
    expect(page.locator("#detail-payload .post-title")).to_have_text(HOSTILE_TITLE)
    expect(page.locator("#detail-cancel")).to_be_disabled()
    page.click("#detail-retry")
    expect(cell("dash-hostile", "hook")).to_have_text("delivered", timeout=SETTLE)
    expect(page.locator("#detail-log tr")).to_have_count(3)
    outcomes = page.locator("#detail-log tr td:nth-child(4)").all_inner_texts()
    assert outcomes == ["failed", "retry", "delivered"]
    expect(page.locator("#detail-facts")).to_contain_text("https://archive.example.org/")
    assert len(api.receiver.posts) == 2  # the sample and the retried one; nothing twice

    # Retract it: the feeds take it back, the webhook cannot, and the grid says so.
    page.click("#detail-retract")
    expect(page.locator("#detail-message")).to_contain_text("Retracted")
    for channel in ("site", "app"):
        expect(cell("dash-hostile", channel)).to_have_text("retract: delivered", timeout=SETTLE)
    expect(cell("dash-hostile", "hook")).to_have_text("retract: failed", timeout=SETTLE)
    expect(row("dash-hostile").locator(".meta")).to_contain_text("retracted")

    # Chromium paints sandboxed (out-of-process) preview frames only inside the
    # viewport, so the viewport grows to the whole page for the screenshot.
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 1440, "height": height})
    page.wait_for_timeout(300)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert problems == [], problems
    assert outside == [], outside  # nothing loaded from anywhere but the app


def test_tokens_and_bad_input_are_explained_in_the_browser(
    make_board: Callable[..., Api], browser_page: Any
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    api = make_board(worker=False)
    page.goto(api.url + "/")
    page.fill("#token", "not-a-token")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#whoami")).to_have_text("token not accepted")
    page.fill("#token", DESK)
    page.click("#token-form button[type=submit]")
    page.fill('#compose-form [name="id"]', "dash-bad")
    page.fill('#compose-form [name="url"]', "ftp://example.org/x")
    page.fill('#compose-form [name="title"]', "Bad url")
    page.fill('#compose-form [name="body"]', "Body.")
    page.click("#publish-button")
    expect(page.locator("#compose-message")).to_contain_text("url:")
    expect(page.locator('#compose-form [name="url"]')).to_have_attribute("aria-invalid", "true")
    page.click("#tab-source")
    page.fill(
        "#source-text", "---\nid: md-1\nurl: https://news.example.org/md\ntitle: 标题\n---\n正文"
    )
    page.click("#preview-button")
    expect(page.locator('#preview-cards .card[data-channel="site"] .post-title')).to_have_text(
        "标题"
    )
    page.fill("#source-text", "{broken")
    page.click("#publish-button")
    expect(page.locator("#compose-message")).to_contain_text("source: is not valid JSON")
    assert api.get("/api/articles").json()["total"] == 0
