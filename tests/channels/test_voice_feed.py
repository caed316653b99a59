"""The podcast as followers get it: the document, the served audio, corrections and
retractions, through the same engine, store and feed rebuild as every feed channel."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any

import feedparser
import pytest
import requests
from lxml import etree
from PIL import Image

from channels.voice import VoiceChannel
from channels.voice.podcast import podcast_guid
from publisher.domain.article import load_article_file
from publisher.domain.states import Kind, State
from publisher.local.cluster import Stack
from publisher.web.api import create_app
from sandbox.server import BackgroundServer
from tests.channels.podcast_rules import ITUNES, PODCAST, problems
from tests.channels.speech_checks import listen, looks_like_speech
from tests.conftest import SAMPLES
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
    """What a worker does for each queued delivery, in this process."""
    runtime = stack.runtime
    for row in runtime.store.deliveries(states=[State.PENDING]):
        assert runtime.engine.deliver(row.id) == "delivered", runtime.store.delivery(row.id)
    runtime.rebuild_feed("voice")


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
        assert channel.episode_audio(row.remote_id) == "media/" + enclosure.href.rsplit("/", 1)[1]
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
    old_audio = "media/" + before.enclosures[0].href.rsplit("/", 1)[1]
    corrected = load_article_file(SAMPLES / "digital-talent.json").model_copy(
        update={"title": "Corrected: More High-level Digital Talents"}
    )
    assert stack.runtime.publish(corrected).changed
    deliver_due(stack)
    after = next(e for e in podcast(stack).entries if "Corrected" in e.title)
    assert after.id == before.id
    assert after.enclosures[0].href != before.enclosures[0].href
    assert after.updated_parsed > before.updated_parsed
    with pytest.raises(Exception, match="not in the store"):
        stack.runtime.store.read_media(old_audio)  # the wrong words are not served any more
    mp3, _ = stack.runtime.store.read_media("media/" + after.enclosures[0].href.rsplit("/", 1)[1])
    assert b"Corrected: More High-level" in mp3  # the ID3 title


def test_retraction_removes_the_episode_and_its_files(stack: Stack) -> None:
    entry = next(e for e in podcast(stack).entries if "Digital" not in e.title)
    audio = "media/" + entry.enclosures[0].href.rsplit("/", 1)[1]
    transcript = entry["podcast_transcript"]["url"].split("/", 3)[3]
    removals = stack.runtime.retract(MANDARIN)
    assert len(removals) == 2  # the podcast and the site's feed
    deliver_due(stack)
    rows = {(d.channel, d.kind): d.state for d in stack.runtime.store.deliveries()}
    assert rows[("voice", Kind.RETRACT)] == State.DELIVERED
    assert [e.title for e in podcast(stack).entries] == [
        load_article_file(SAMPLES / "digital-talent.json").title
    ]
    for ref in (audio, transcript):
        with pytest.raises(Exception, match="not in the store"):
            stack.runtime.store.read_media(ref)


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
