"""The approval step in the editors' dashboard, in Debian's chromium (see
tests/web/test_dashboard.py): a writer submits from the page and cannot approve;
an editor approves one article, which a real worker then delivers, and rejects
another with a reason. It leaves a screenshot in `test-output/dashboard-approval.png`."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.web.test_api import Api, make_api  # noqa: F401 - fixture
from tests.web.test_approval import APPROVAL, AS_WANDA, CHIEF, TOKENS, WANDA
from tests.web.test_dashboard import SETTLE, browser_page, story  # noqa: F401 - fixture

CHANNELS = ("site", "app", "hook")
SCREENSHOT = Path(__file__).parents[2] / "test-output" / "dashboard-approval.png"


@pytest.mark.timeout(240)
def test_a_writer_submits_and_an_editor_approves_and_rejects_in_a_browser(
    make_api: Callable[..., Api],  # noqa: F811
    browser_page: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    api = make_api(newsroom=APPROVAL, PUBLISHER_API_TOKENS=TOKENS)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

    def cell(article_id: str, channel: str) -> Any:
        return page.locator(
            f'#grid-body tr[data-article="{article_id}"] td[data-channel="{channel}"] button'
        )

    def sign_in(token: str, shown: str) -> None:
        page.fill("#token", token)
        page.click("#token-form button[type=submit]")
        expect(page.locator("#whoami")).to_have_text(shown)

    page.goto(api.url + "/")
    expect(page.locator("#live")).to_contain_text("live")

    # The writer submits from the page: it waits, and the writer cannot approve it.
    sign_in(WANDA, "acting as wanda (writer)")
    w = story("w")
    for name, value in (
        ("id", w["id"]), ("url", w["url"]), ("title", w["title"]), ("body", w["body_markdown"]),
    ):  # fmt: skip
        page.fill(f'#compose-form [name="{name}"]', value)
    page.click("#publish-button")
    expect(page.locator("#compose-message")).to_have_text(
        "Submitted dash-w (version 1): it waits for an editor's approval."
    )
    for channel in CHANNELS:
        expect(cell("dash-w", channel)).to_have_text("awaiting_approval")
        expect(cell("dash-w", channel)).to_have_class(re.compile(r"\bstate-awaitingapproval\b"))
    cell("dash-w", "hook").click()
    expect(page.locator("#detail-approval")).to_be_visible()
    for button in ("retry", "cancel", "retract", "approve", "reject"):
        expect(page.locator(f"#detail-{button}")).to_be_disabled()
    expect(page.locator("#detail-approve")).to_have_attribute("title", "only an editor may do this")
    expect(cell("dash-w", "hook")).to_have_text("awaiting_approval")
    assert api.receiver.requests == []

    # The editor approves it: the worker delivers it everywhere.
    sign_in(CHIEF, "acting as chief")
    cell("dash-w", "hook").click()
    expect(page.locator("#detail-cancel")).to_be_enabled()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    page.click("#detail-approve")
    expect(page.locator("#detail-message")).to_have_text("Approved dash-w (version 1).")
    for channel in CHANNELS:
        expect(cell("dash-w", channel)).to_have_text("delivered", timeout=SETTLE)
    expect(page.locator("#detail-approval")).to_be_hidden()
    expect(page.locator("#detail-log tr")).to_have_count(2)
    outcomes = page.locator("#detail-log tr td:nth-child(4)").all_inner_texts()
    assert outcomes == ["approved", "delivered"]
    expect(page.locator("#detail-log tr").first).to_contain_text("chief")
    assert [p["id"] for p in api.receiver.posts.values()] == ["dash-w"]

    # Another, rejected with a reason (asked for first).
    api.post("/api/articles", json=story("r"), headers=AS_WANDA)
    expect(cell("dash-r", "site")).to_have_text("awaiting_approval")
    cell("dash-r", "site").click()
    page.click("#detail-reject")
    expect(page.locator("#detail-message")).to_have_text("Say why it is rejected first.")
    page.fill("#detail-reason", "The quote needs a source.")
    page.click("#detail-reject")
    expect(page.locator("#detail-message")).to_have_text("Rejected dash-r (version 1).")
    for channel in CHANNELS:
        expect(cell("dash-r", channel)).to_have_text("cancelled")
    expect(page.locator("#detail-log")).to_contain_text(
        "rejected by chief: The quote needs a source."
    )
    assert len(api.receiver.requests) == 1
    assert problems == [], problems
