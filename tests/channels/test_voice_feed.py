"""The podcast as followers get it: the document, the served audio, corrections and
retractions, through the same engine, store and feed rebuild as every feed channel."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import feedparser
import pytest
import requests
from lxml import etree
from PIL import Image

from channels import build_channel
from channels.base import ChannelContext
from channels.feed import ATOM_NS
from channels.voice import VoiceChannel
from channels.voice.podcast import podcast_guid
from publisher.config.settings import Settings
from publisher.delivery import feeds, publishing
from publisher.domain.article import load_article_file
from publisher.domain.states import Kind, State
from publisher.local.cluster import Stack
from publisher.local.demo import export_episodes
from publisher.store import Store
from publisher.web.api import create_app
from sandbox import speech
from sandbox.server import BackgroundServer
from tests.channels.podcast_rules import ITUNES, PODCAST, problems
from tests.channels.speech_checks import listen, looks_like_speech
from tests.conftest import SAMPLES
from tests.delivery.test_websub import PingRecorder, recorder  # noqa: F401 - fixture
from tests.worker.test_worker import make_stack  # noqa: F401 - fixture

ENGLISH, MANDARIN = "2024-04-22-digital-talent", "2026-11-20-skills-contest"
VOICE = {
    "type": "voice",
    "owner_email": "podcast@news.example.org",
    "category": "News",
    "subcategory": "Daily News",
    "explicit": False,
}


def deliver_due(stack: Stack) -> None:
    """What the workers do, in this process: a feed delivery (publish, correction or
    removal) is delivered by the rebuild that makes its document live."""
    runtime = stack.runtime
    for name in ("voice", "site"):
        assert runtime.rebuild_feed(name) == 1
    waiting = runtime.store.deliveries(states=[State.PENDING, State.RETRYING, State.FAILED])
    assert waiting == [], waiting


def media_path(url: str) -> str:
    """`https://host/media/<id>` → `/media/<id>`, to ask the API on loopback."""
    return "/" + url.split("/", 3)[3]


def podcast(stack: Stack) -> Any:
    return feedparser.parse((stack.settings.feeds_dir / "podcast.xml").read_bytes())


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:  # noqa: F811
    built = make_stack({"voice": VOICE, "site": {"type": "rss"}})
    for name in ("digital-talent.json", "skills-contest.md"):
        built.runtime.publish(load_article_file(SAMPLES / name))
    deliver_due(built)
    return built


def test_podcast_document_read_back_by_feedparser(stack: Stack) -> None:
    feed = podcast(stack)
    assert not feed.bozo, feed.bozo_exception
    url = f"{stack.settings.public_url}/feeds/podcast.xml"
    # feedparser maps only "yes" to True ("false", like "no", becomes None): read the text too.
    assert feed.feed.itunes_explicit is None
    channel_xml = etree.fromstring((stack.settings.feeds_dir / "podcast.xml").read_bytes())[0]
    assert channel_xml.findtext(f"{ITUNES}explicit") == "false"
    assert channel_xml.findtext(f"{PODCAST}locked") == "yes"
    assert feed.feed.podcast_guid == podcast_guid(url)
    assert feed.feed.podcast_guid == str(
        uuid.uuid5(
            uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6"), "127.0.0.1:8000/feeds/podcast.xml"
        )
    )
    assert feed.feed.podcast_locked == {"owner": "podcast@news.example.org"}
    assert feed.feed.itunes_type == "episodic"
    assert feed.feed.author_detail.email == "podcast@news.example.org"
    assert [t.term for t in feed.feed.tags] == ["News", "Daily News"]
    art, kind = stack.runtime.store.read_media(feed.feed.image.href.split("/", 3)[3])
    with Image.open(io.BytesIO(art)) as image:
        assert image.size == (3000, 3000) and image.mode == "RGB" and kind == "image/jpeg"
    by_title = {e.title: e for e in feed.entries}
    assert len(by_title) == 2
    channel = stack.runtime.channels["voice"]
    assert isinstance(channel, VoiceChannel)
    for row in stack.runtime.store.deliveries(channel="voice"):
        entry = next(e for e in feed.entries if e.id == row.payload["guid"])
        (enclosure,) = entry.enclosures
        mp3, _ = stack.runtime.store.read_media(enclosure.href.split("/", 3)[3])
        assert enclosure.type == "audio/mpeg" and int(enclosure.length) == len(mp3)
        assert channel.item_audio(row.payload) == "media/" + enclosure.href.rsplit("/", 1)[1]
        heard = listen(mp3)
        assert looks_like_speech(heard)
        assert abs(int(entry.itunes_duration) - heard.seconds) <= 1
        transcript = entry["podcast_transcript"]
        assert transcript["type"] == "text/plain" and transcript["url"].endswith(".txt")
        assert row.payload["episode"]["script"][0][0].rstrip("。.") in (
            stack.runtime.store.read_media(transcript["url"].split("/", 3)[3])[0].decode()
        )


def test_podcast_document_meets_the_w3c_rss_and_itunes_rules(stack: Stack) -> None:
    body = (stack.settings.feeds_dir / "podcast.xml").read_bytes()
    assert problems(body) == []
    # The checker does catch what feedgen's own podcast extension writes, and more.
    broken = body.replace(b"<itunes:explicit>false<", b"<itunes:explicit>no<")
    found = problems(broken.replace(b'length="', b'length="-', 1))
    assert found[0] == "InvalidTrueFalse: itunes:explicit 'no'"
    assert len(found) == 2 and found[1].startswith("InvalidIntegerAttribute: enclosure length")


def test_episode_is_served_with_head_and_byte_ranges(stack: Stack) -> None:
    entry = podcast(stack).entries[0]
    (enclosure,) = entry.enclosures
    size = int(enclosure.length)
    with BackgroundServer(create_app(stack.runtime)) as server:
        url = server.url + "/media/" + enclosure.href.rsplit("/", 1)[1]
        head = requests.head(url, timeout=10)
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["Content-Length"]) == size
        assert head.headers["Accept-Ranges"] == "bytes" and head.headers["ETag"]
        whole = requests.get(url, timeout=10).content
        part = requests.get(url, headers={"Range": "bytes=0-1023"}, timeout=10)
        assert part.status_code == 206 and part.content == whole[:1024]
        assert part.headers["Content-Range"] == f"bytes 0-1023/{size}"
        assert int(part.headers["Content-Length"]) == 1024
        tail = requests.get(url, headers={"Range": "bytes=-100"}, timeout=10)
        assert tail.status_code == 206 and tail.content == whole[-100:]
        # RFC 9110 §14.2: range handling is defined for GET only; HEAD ignores Range.
        ranged_head = requests.head(url, headers={"Range": "bytes=0-1023"}, timeout=10)
        assert ranged_head.status_code == 200
        assert int(ranged_head.headers["Content-Length"]) == size
        outside = requests.get(url, headers={"Range": f"bytes={size}-"}, timeout=10)
        assert outside.status_code == 416 and outside.headers["Content-Range"] == f"bytes */{size}"
        stale = {"Range": "bytes=0-9", "If-Range": '"not-this-one"'}
        assert requests.get(url, headers=stale, timeout=10).status_code == 200
        etag = {"If-None-Match": head.headers["ETag"]}
        assert requests.get(url, headers=etag, timeout=10).status_code == 304
        served = requests.get(server.url + "/feeds/podcast.xml", timeout=10)
        assert served.status_code == 200 and b"<podcast:guid>" in served.content


def test_correction_resynthesises_with_a_new_enclosure_and_the_same_guid(stack: Stack) -> None:
    before = next(e for e in podcast(stack).entries if "Digital" in e.title)
    old = [media_path(before.enclosures[0].href), media_path(before.podcast_transcript["url"])]
    corrected = load_article_file(SAMPLES / "digital-talent.json").model_copy(
        update={"title": "Corrected: More High-level Digital Talents"}
    )
    with BackgroundServer(create_app(stack.runtime)) as server:
        assert stack.runtime.publish(corrected).changed
        # Until the corrected episode is live, the document followers have still
        # points at the old audio: it must still answer.
        for path in old:
            assert requests.head(server.url + path, timeout=10).status_code == 200
        deliver_due(stack)
        after = next(e for e in podcast(stack).entries if "Corrected" in e.title)
        assert after.id == before.id
        assert after.enclosures[0].href != before.enclosures[0].href
        assert after.updated_parsed > before.updated_parsed
        for path in old:  # the wrong words are not served any more
            assert requests.get(server.url + path, timeout=10).status_code == 404
        new = requests.get(server.url + media_path(after.enclosures[0].href), timeout=10)
        assert new.status_code == 200 and new.headers["Content-Type"] == "audio/mpeg"
        assert b"Corrected: More High-level" in new.content  # the ID3 title
        assert int(after.enclosures[0].length) == len(new.content)
    # The other episode kept its files; a second build deletes nothing more.
    other = next(e for e in podcast(stack).entries if e.id != before.id)
    stack.runtime.store.read_media(media_path(other.enclosures[0].href)[1:])
    channel = stack.runtime.feed_channel("voice")
    assert feeds.rebuild_feed(stack.settings, stack.runtime.store, channel).discarded == []


def test_retraction_removes_the_episode_and_its_files(stack: Stack) -> None:
    entry = next(e for e in podcast(stack).entries if "Digital" not in e.title)
    audio = media_path(entry.enclosures[0].href)
    files = [audio, media_path(entry.podcast_transcript["url"])]
    channel = stack.runtime.channels["voice"]
    assert isinstance(channel, VoiceChannel)
    # The demo's copies for listening without the API: they go with the episode.
    copies = export_episodes(stack.runtime, [ENGLISH, MANDARIN], channel)
    assert sorted(p.name for p in copies) == sorted(
        e.enclosures[0].href.rsplit("/", 1)[1] for e in podcast(stack).entries
    )
    with BackgroundServer(create_app(stack.runtime)) as server:
        assert requests.get(server.url + audio, timeout=10).status_code == 200
        removals = stack.runtime.retract(MANDARIN)
        assert len(removals) == 2  # the podcast and the site's feed
        deliver_due(stack)
        rows = {(d.channel, d.kind): d.state for d in stack.runtime.store.deliveries()}
        assert rows[("voice", Kind.RETRACT)] == State.DELIVERED
        served = requests.get(server.url + "/feeds/podcast.xml", timeout=10).content
        assert [e.title for e in feedparser.parse(served).entries] == [
            load_article_file(SAMPLES / "digital-talent.json").title
        ]
        assert entry.id.encode() not in served and audio.encode() not in served
        for path in files:
            assert requests.get(server.url + path, timeout=10).status_code == 404
            with pytest.raises(Exception, match="not in the store"):
                stack.runtime.store.read_media(path[1:])
    assert [p.exists() for p in copies if p.name == audio.rsplit("/", 1)[1]] == [False]
    assert [p.exists() for p in copies if p.name != audio.rsplit("/", 1)[1]] == [True]


def test_published_through_a_worker_the_episode_is_live_when_delivered(
    make_stack: Callable[..., Stack],  # noqa: F811
) -> None:
    stack = make_stack({"voice": VOICE})
    stack.start_worker()
    stack.runtime.publish(load_article_file(SAMPLES / "skills-contest.md"))
    stack.wait_settled([MANDARIN], timeout=90)
    (row,) = stack.runtime.store.deliveries(article_ids=[MANDARIN])
    assert row.state == State.DELIVERED, row.last_error
    stack.wait_until(lambda: not stack.runtime.store.feed_changed_since_build("voice"), 30)
    (entry,) = podcast(stack).entries
    assert entry.id == row.payload["guid"]
    # Delivered by the build that made the document live: the receipt is the document.
    assert row.remote_url is not None and row.remote_url.endswith("/feeds/podcast.xml")
    assert "/media/" in entry.enclosures[0].href and entry.enclosures[0].href.endswith(".mp3")
    audio = media_path(entry.enclosures[0].href)[1:]

    # Retracted through the worker too: the removal's rebuild takes the audio with it.
    stack.runtime.retract(MANDARIN)
    stack.wait_settled([MANDARIN], timeout=60)
    removal = next(d for d in stack.runtime.store.deliveries(article_ids=[MANDARIN])
                   if d.kind == Kind.RETRACT)  # fmt: skip
    assert removal.state == State.DELIVERED, removal.last_error
    assert podcast(stack).entries == []
    with pytest.raises(Exception, match="not in the store"):
        stack.runtime.store.read_media(audio)


def test_podcast_advertises_the_websub_hub_and_a_rebuild_pings_it(
    make_settings: Callable[..., Settings],
    recorder: tuple[PingRecorder, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    hub, hub_url = recorder
    settings = make_settings({"voice": VOICE}, feeds={"hub_url": hub_url})
    store = Store(f"sqlite:///{tmp_path / 'hub.db'}")
    store.migrate()
    context = ChannelContext(settings, read_media=store.read_media, save_media=store.save_media)
    channel = build_channel(settings.channels["voice"], context)
    assert isinstance(channel, VoiceChannel)
    try:
        publishing.publish(
            load_article_file(SAMPLES / "skills-contest.md"), store, {"voice": channel}
        )
        built = feeds.rebuild_feed(settings, store, channel)
        (document,) = built.documents
        live = store.feed_document("podcast.xml")
        assert built.kept and live is not None and live.body == document.body
    finally:
        store.dispose()
    topic = f"{settings.public_url}/feeds/podcast.xml"
    links = etree.fromstring(document.body).findall(f"channel/{{{ATOM_NS}}}link")
    assert [(link.get("rel"), link.get("href")) for link in links] == [
        ("self", topic), ("hub", hub_url),
    ]  # fmt: skip
    assert problems(document.body) == []  # still valid RSS with the hub link
    assert [p.form for p in hub.pings] == [
        {"hub.mode": "publish", "hub.url": topic, "hub.topic": topic}
    ]
    assert len(feedparser.parse(document.body).entries) == 1


def test_a_speech_service_down_for_now_retries_the_episode_and_a_misconfigured_one_fails(
    make_stack: Callable[..., Stack],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_SPEECH_KEY", speech.DEFAULT_KEY)
    with BackgroundServer(speech.create_app()) as service:
        spoken = {"type": "voice", "engine": "http", "base_url": service.url, "backoff_base": 0.05,
                  "api_key_env": "TEST_SPEECH_KEY", "backoff_cap": 0.1}  # fmt: skip
        stack = make_stack({"voice": spoken})
        # Twice: the build renders the whole set, then the item alone, before it gives up.
        fault = {"path": "/v1/audio/speech", "mode": "http", "status": 503, "count": 2}
        requests.post(f"{service.url}/_control/faults", json=fault, timeout=5).raise_for_status()
        stack.runtime.publish(load_article_file(SAMPLES / "skills-contest.md"))
        stack.runtime.rebuild_feed("voice")
        (row,) = stack.runtime.store.deliveries(article_ids=[MANDARIN])
        # Not failed: retried like a send, after the channel's backoff.
        assert row.state == State.RETRYING, row.last_error
        assert "HTTP 503" in (row.last_error or "") and row.attempts == 1
        assert [a.outcome for a in stack.runtime.store.attempts(row.id)] == ["retry"]
        assert podcast(stack).entries == []
        stack.wait_until(lambda: stack.runtime.store.collect_due(requeue_after=0) != [], 5)
        stack.runtime.rebuild_feed("voice")
        (row,) = stack.runtime.store.deliveries(article_ids=[MANDARIN])
        assert row.state == State.DELIVERED and row.attempts == 2
        assert [e.id for e in podcast(stack).entries] == [row.payload["guid"]]

        # A key the service refuses is a person's job: failed at once, saying why.
        monkeypatch.setenv("TEST_SPEECH_KEY", "wrong")
        stack.runtime.publish(
            load_article_file(SAMPLES / "digital-talent.json").model_copy(update={"id": "en-2"})
        )
        stack.runtime.rebuild_feed("voice")
        (failed,) = stack.runtime.store.deliveries(article_ids=["en-2"])
        assert failed.state == State.FAILED and failed.attempts == 1
        assert "refused the key" in (failed.last_error or ""), failed.last_error
