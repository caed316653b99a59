"""The voice edition through the API and the dashboard: the preview read aloud
(`POST /api/preview?audio=`), and a delivered episode played in the delivery detail,
in a real browser (Playwright + Debian chromium, as tests/web/test_dashboard.py)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from mutagen.id3 import ID3

from tests.channels.speech_checks import listen, looks_like_speech
from tests.conftest import SAMPLES
from tests.web.test_api import DESK, Api, make_api  # noqa: F401 - fixture
from tests.web.test_dashboard import browser_page  # noqa: F401 - fixture

VOICE = {"type": "voice", "owner_email": "podcast@news.example.org", "preview_seconds": 120}
MATRIX = {"site": {"type": "rss"}, "voice": VOICE}
ENGLISH = json.loads((SAMPLES / "digital-talent.json").read_text(encoding="utf-8"))
MANDARIN = {
    "id": "voice-zh",
    "url": "https://news.example.org/zh",
    "title": "全国数字技能大赛决赛开幕",
    "body_markdown": "11月20日，第三届全国数字技能大赛决赛在重庆开幕。"
    "来自全国的一千多名选手将在三天内角逐三十多个项目。",
    "language": "zh-CN",
    "published_at": "2026-11-20T08:30:00+08:00",
}


def test_preview_shows_the_script_and_reads_it_aloud_within_its_bound(
    make_api: Callable[..., Api],  # noqa: F811
) -> None:
    api = make_api(worker=False, channels=MATRIX)
    previews = api.post("/api/preview", json=MANDARIN).json()
    payload: dict[str, Any] = previews["voice"]["payload"]
    script = [text for text, _pause in payload["episode"]["script"]]
    assert script[0].startswith("全国数字技能大赛决赛开幕") and "一千多名选手" in "".join(script)
    assert 5 < payload["estimated_seconds"] < 60

    spoken = api.post("/api/preview?audio=voice", json=MANDARIN)
    assert spoken.status_code == 200, spoken.text
    assert spoken.headers["Content-Type"] == "audio/mpeg"
    assert spoken.headers["Cache-Control"] == "no-store"
    heard = listen(spoken.content)
    assert looks_like_speech(heard), heard
    assert 0.6 < payload["estimated_seconds"] / heard.seconds < 1.6
    assert float(spoken.headers["X-Estimated-Seconds"]) == payload["estimated_seconds"]
    assert ID3(io.BytesIO(spoken.content))["TIT2"].text == [MANDARIN["title"]]
    assert api.post("/api/articles/preview?audio=voice", json=MANDARIN).status_code == 200
    # A preview is kept nowhere: no article, no media.
    assert api.get("/api/articles").json()["total"] == 0

    # The English sample reads for about four minutes: more than this channel's
    # `preview_seconds`, refused before any synthesis, in the reader's language.
    assert (
        api.post("/api/preview", json=ENGLISH).json()["voice"]["payload"]["estimated_seconds"] > 120
    )
    long = api.post("/api/preview?audio=voice", json=ENGLISH)
    assert long.status_code == 413
    assert long.json()["error"]["field"] == "audio"
    assert "a preview reads at most 120 s" in long.json()["error"]["problem"]
    chinese = api.post(
        "/api/preview?audio=voice",
        json=ENGLISH,
        headers={"Authorization": "Bearer " + DESK, "Accept-Language": "zh-CN"},
    )
    assert chinese.status_code == 413 and "120" in chinese.json()["error"]["problem"]
    assert "preview" not in chinese.json()["error"]["problem"]

    for name in ("site", "nope"):
        refused = api.post(f"/api/preview?audio={name}", json=MANDARIN)
        assert refused.status_code == 422
        assert refused.json()["error"] == {
            "field": "audio",
            "problem": f"there is no voice channel {name!r}",
        }
    bad = api.post("/api/preview?audio=voice", json={**MANDARIN, "url": "ftp://x"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "url"


@pytest.mark.timeout(180)
def test_dashboard_plays_a_delivered_episode_in_the_browser(
    make_api: Callable[..., Api],  # noqa: F811
    browser_page: Any,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    api = make_api(channels=MATRIX)
    problems: list[str] = []  # script errors, and the CSP refusing the audio would be one
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

    assert api.post("/api/articles", json=MANDARIN).status_code == 202
    detail = api.wait_settled(MANDARIN["id"], timeout=90)
    assert {d["channel"]: d["state"] for d in detail["deliveries"]} == {
        "site": "delivered", "voice": "delivered",
    }  # fmt: skip

    page.goto(api.url + "/")
    expect(page.locator("#grid-head th").nth(2)).to_contain_text("voice")
    voice = page.locator(
        f'#grid-body tr[data-article="{MANDARIN["id"]}"] td[data-channel="voice"] button'
    )
    expect(voice).to_have_text("delivered", timeout=30_000)
    voice.click()
    expect(page.locator("#detail-heading")).to_contain_text("voice")
    player = page.locator("#detail-payload audio#detail-audio")
    expect(player).to_have_count(1)
    expect(player).to_have_attribute("controls", "")
    src = player.get_attribute("src")
    assert src is not None and src.startswith("/media/") and src.endswith(".mp3")
    # The player's source is the episode in the podcast, served as audio.
    served = requests.get(api.url + src, timeout=10)
    assert served.status_code == 200 and served.headers["Content-Type"] == "audio/mpeg"
    assert looks_like_speech(listen(served.content))
    podcast = api.get("/feeds/podcast.xml").content
    assert src.encode() in podcast  # the enclosure URL ends with the same /media/ path
    # The browser itself loads it (the page's Content-Security-Policy allows our media).
    page.wait_for_function(
        "() => { const a = document.getElementById('detail-audio'); "
        "return a && a.readyState >= 1 && a.duration > 1; }",
        timeout=20_000,
    )
    # The card shows the script the engine read, with its estimated length.
    card = page.locator('#detail-payload .card[data-channel="voice"]')
    expect(card.locator(".post-meta").first).to_contain_text("read aloud in about")
    expect(card.locator(".script")).to_contain_text("一千多名选手")

    # The site's delivery has no audio, and neither has a voice removal.
    page.locator(
        f'#grid-body tr[data-article="{MANDARIN["id"]}"] td[data-channel="site"] button'
    ).click()
    expect(page.locator("#detail-heading")).to_contain_text("site")
    expect(page.locator("#detail-audio")).to_have_count(0)
    assert problems == [], problems
