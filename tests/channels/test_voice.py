"""The voice channel's parts: the script, the engines, the MP3 and its tags.

Audio is checked the way a listener would notice a fault: it must decode, last
about as long as its text takes to say in that language, and be speech
(loud words with quiet gaps), neither silence nor noise.
"""

from __future__ import annotations

import io
import math
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from mutagen.id3 import ID3

from channels import build_channel
from channels.base import ChannelContext
from channels.feed import FeedItem
from channels.voice import VoiceChannel
from channels.voice.audio import assemble, encode_mp3, measure_seconds
from channels.voice.engines import EspeakEngine, HttpEngine, Pcm, PiperEngine
from channels.voice.script import build_script, estimate_seconds, script_text, speakable
from publisher.config.settings import ChannelConfig, Settings
from publisher.domain.article import load_article_file, parse_article
from publisher.domain.errors import ConfigError, PermanentError, ReauthRequiredError, RetryableError
from publisher.domain.text import grapheme_length, sentences
from publisher.store import Store
from publisher.store.documents import delete_media_rows
from sandbox import speech
from sandbox.server import BackgroundServer
from tests.channels.speech_checks import listen, looks_like_speech
from tests.conftest import SAMPLES

ENGLISH = SAMPLES / "digital-talent.json"
MANDARIN = SAMPLES / "skills-contest.md"


def article(body: str, **extra: Any) -> Any:
    return parse_article(
        {"id": "a-1", "url": "https://news.example.org/a.html", "title": "Headline", **extra,
         "body_html": body}
    )  # fmt: skip


# -- the script ---------------------------------------------------------------------


def test_sentences_split_at_cjk_and_ascii_ends_but_not_inside_numbers_or_urls() -> None:
    assert sentences("大赛开幕。职工同台竞技！“以赛促学。”更多见 https://a.org/x.y 吧") == [
        "大赛开幕。", "职工同台竞技！", "“以赛促学。”", "更多见 https://a.org/x.y 吧",
    ]  # fmt: skip
    assert sentences('GDP grew 41.5% to 50.2 trillion. "Good." Next? Yes') == [
        "GDP grew 41.5% to 50.2 trillion.", '"Good."', "Next?", "Yes",
    ]  # fmt: skip


def test_script_reads_title_then_body_naturally_and_never_a_url() -> None:
    body = (
        "<h2>Section</h2><p>See https://example.org/a or <a href='https://e.org'>our site</a>."
        "</p><ul><li>first</li><li>second</li></ul><blockquote><p>Quoted words</p></blockquote>"
        "<table><tr><td>a</td></tr><tr><td>b</td></tr></table><pre><code>x = 1</code></pre>"
        "<figure><img src='https://e.org/i.jpg' alt='alt text'><figcaption>A caption</figcaption>"
        "</figure><p>Mail desk@example.org 😀</p>"
    )
    texts = [p.text for p in build_script(article(body), "en")]
    assert texts == [
        "Headline.", "Section.", "See or our site.", "first.", "second.", "Quote:",
        "Quoted words.", "End of quote.",
        "The article has a table here, with 2 rows; see the text version.",
        "A code listing is left out here.", "A caption.", "Mail.",
    ]  # fmt: skip
    assert all("http" not in t and "@" not in t for t in texts)


def test_mandarin_script_numbers_and_pauses() -> None:
    pieces = build_script(article("<p>2024年GDP增长5.2%。</p>", language="zh-CN"), "zh-CN")
    assert [p.text for p in pieces] == ["Headline。", "二〇二四年GDP增长百分之5.2。"]
    assert pieces[0].pause > pieces[1].pause > 0
    assert speakable("2024-04-22 and 2024-2026", "en") == "22 April 2024 and 2024 to 2026"
    spoken = "二〇二四年4月22日发布，二〇二四年至二〇二六年"
    assert speakable("2024-04-22发布，2024-2026年", "zh") == spoken


def test_long_sentences_are_chunked_at_clause_breaks() -> None:
    long = "，".join(["职工们在数字技能大赛中同台竞技"] * 40) + "。"
    pieces = build_script(article(f"<p>{long}</p>", language="zh"), "zh")
    assert len(pieces) > 2 and all(grapheme_length(p.text) <= 300 for p in pieces)
    assert "".join(p.text for p in pieces[1:]).replace("，", "") == long.replace("，", "")


def test_estimate_is_close_to_what_espeak_reads() -> None:
    for path in (ENGLISH, MANDARIN):
        item = load_article_file(path)
        pieces = build_script(item, item.language or "en")
        engine = EspeakEngine(ChannelConfig(name="v", type="voice"))
        voice = engine.voice_for(item.language or "en")
        heard = assemble((engine.synthesize(p.text, voice), p.pause) for p in pieces).seconds
        assert 0.75 < estimate_seconds(pieces, item.language or "en") / heard < 1.33


# -- the engines --------------------------------------------------------------------


SPOKEN = {
    "en": ("The State Council released a plan today to train one million digital workers.",
           (9.0, 20.0)),  # graphemes per second
    "zh": ("国务院今天发布了行动方案，计划培养一百万名数字人才。", (2.5, 7.0)),
}  # fmt: skip


def to_mp3(pcm: Pcm) -> bytes:
    return encode_mp3(assemble([(pcm, 0.3)]), 64)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_espeak_speaks_each_language_for_as_long_as_its_text(language: str) -> None:
    text, (slow, fast) = SPOKEN[language]
    engine = EspeakEngine(ChannelConfig(name="v", type="voice"))
    heard = listen(to_mp3(engine.synthesize(text, engine.voice_for(language))))
    letters = grapheme_length(text.replace(" ", ""))
    assert letters / fast < heard.seconds < letters / slow + 0.5
    assert looks_like_speech(heard), heard


def test_piper_speaks_english_and_refuses_mandarin() -> None:
    engine = PiperEngine(ChannelConfig(name="v", type="voice", engine="piper"))
    text, (slow, fast) = SPOKEN["en"]
    heard = listen(to_mp3(engine.synthesize(text, engine.voice_for("en-US"))))
    assert len(text.replace(" ", "")) / fast < heard.seconds < len(text) / slow
    assert looks_like_speech(heard), heard
    with pytest.raises(PermanentError, match="English only"):
        engine.voice_for("zh-CN")


def test_silence_and_noise_are_not_speech() -> None:
    silence = Pcm(bytes(2 * 22050 * 2), 22050)
    noise = Pcm(
        b"".join(struct.pack("<h", (i * 7919) % 40000 - 20000) for i in range(44100)), 22050
    )
    assert not looks_like_speech(listen(to_mp3(silence)))
    assert not looks_like_speech(listen(to_mp3(noise)))


def test_espeak_without_a_voice_for_the_language_is_permanent() -> None:
    with pytest.raises(PermanentError, match="no voice for the article's language 'tlh'"):
        EspeakEngine(ChannelConfig(name="v", type="voice")).voice_for("tlh")


@pytest.fixture(scope="module")
def speech_service() -> Iterator[str]:
    with BackgroundServer(speech.create_app()) as server:
        yield server.url


def http_engine(url: str, **options: Any) -> HttpEngine:
    config = ChannelConfig(
        name="v", type="voice", engine="http", base_url=url, api_key_env="TEST_SPEECH_KEY",
        timeout=10, **options,
    )  # fmt: skip
    return HttpEngine(config)


def test_http_engine_speaks_through_the_sandbox_service(
    speech_service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SPEECH_KEY", speech.DEFAULT_KEY)
    engine = http_engine(speech_service)
    for language in ("en", "zh"):
        text, (slow, fast) = SPOKEN[language]
        heard = listen(to_mp3(engine.synthesize(text, engine.voice_for(language))))
        letters = grapheme_length(text.replace(" ", ""))
        assert letters / fast < heard.seconds < letters / slow + 0.5
        assert looks_like_speech(heard)


def test_http_engine_failures_are_classified(
    speech_service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SPEECH_KEY", "wrong")
    with pytest.raises(ReauthRequiredError, match="refused the key"):
        http_engine(speech_service).synthesize("Hello.", "alloy")
    monkeypatch.setenv("TEST_SPEECH_KEY", speech.DEFAULT_KEY)
    with pytest.raises(PermanentError, match="Invalid voice 'robot'"):
        http_engine(speech_service, voice="robot").synthesize("Hello.", "robot")
    fault = {"path": "/v1/audio/speech", "mode": "http", "status": 503}
    requests.post(f"{speech_service}/_control/faults", json=fault, timeout=5).raise_for_status()
    with pytest.raises(RetryableError, match="HTTP 503"):
        http_engine(speech_service).synthesize("Hello.", "alloy")
    with pytest.raises(RetryableError, match="could not connect"):
        http_engine("http://127.0.0.1:9").synthesize("Hello.", "alloy")
    monkeypatch.delenv("TEST_SPEECH_KEY")
    with pytest.raises(PermanentError, match="TEST_SPEECH_KEY"):
        http_engine(speech_service).synthesize("Hello.", "alloy")


# -- the channel: configuration, the episode file ------------------------------------


@pytest.fixture
def voice_site(
    make_settings: Callable[..., Settings], tmp_path: Any
) -> Iterator[tuple[VoiceChannel, Store]]:
    settings = make_settings({"voice": {"type": "voice", "owner_email": "pod@news.example.org"}})
    store = Store(f"sqlite:///{tmp_path / 'voice.db'}")
    store.migrate()
    context = ChannelContext(settings, read_media=store.read_media, save_media=store.save_media)
    channel = build_channel(settings.channels["voice"], context)
    assert isinstance(channel, VoiceChannel)
    yield channel, store
    store.dispose()


def test_static_mistakes_stop_the_matrix_loading(make_settings: Callable[..., Settings]) -> None:
    for table, problem in (
        ({"engine": "espek"}, "unknown speech engine 'espek'"),
        ({"bitrate": 128}, "outside 64–96"),
        ({"engine": "http"}, "needs base_url"),
        ({"explicit": "no"}, "true or false"),
    ):
        settings = make_settings({"voice": {"type": "voice", **table}})
        with pytest.raises(ConfigError, match=problem):
            build_channel(settings.channels["voice"], ChannelContext(settings))


def test_preview_payload_shows_the_script_and_its_estimate(
    voice_site: tuple[VoiceChannel, Store],
) -> None:
    channel, _ = voice_site
    payload = channel.format(load_article_file(MANDARIN))
    script = payload["episode"]["script"]
    assert script[0][0] == "全国数字技能大赛决赛开幕，三百余名职工同台竞技。"
    assert payload["episode"]["language"] == "zh-CN" and payload["episode"]["engine"] == "espeak"
    assert 30 < payload["estimated_seconds"] < 90


@pytest.mark.parametrize("path", [ENGLISH, MANDARIN], ids=["en", "zh"])
def test_episode_mp3_is_tagged_speech_of_the_right_length(
    voice_site: tuple[VoiceChannel, Store], path: Any
) -> None:
    channel, store = voice_site
    item = load_article_file(path)
    payload = channel.format(item)
    manifest_ref, manifest = channel.episode_files(payload["episode"])
    mp3, kind = store.read_media(manifest["audio"])
    assert kind == "audio/mpeg" and len(mp3) == manifest["bytes"]
    heard = listen(mp3)
    assert looks_like_speech(heard), heard
    assert math.isclose(heard.seconds, manifest["seconds"], abs_tol=0.1)
    assert math.isclose(measure_seconds(mp3), manifest["seconds"], abs_tol=0.01)
    assert 0.75 < payload["estimated_seconds"] / heard.seconds < 1.33
    tags = ID3(io.BytesIO(mp3))
    assert tags["TIT2"].text == [item.title]
    assert tags["TPE1"].text == ["Test Daily"]
    assert str(tags["TDRC"].text[0]) == item.published_at.date().isoformat()  # type: ignore[union-attr]
    assert bool(tags.getall("APIC")) == (item.cover_image is not None)
    transcript, _ = store.read_media(manifest["transcript"])
    assert transcript.decode() == script_text(build_script(item, item.language or "en"))
    # A second build finds the episode: no new synthesis, the same files.
    assert channel.episode_files(payload["episode"]) == (manifest_ref, manifest)
    assert channel.item_files(FeedItem(payload, datetime.now(UTC))) == (
        manifest["audio"], manifest["transcript"], manifest_ref,
    )  # fmt: skip


def test_missing_engine_package_fails_the_delivery_with_a_readable_reason(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings({"voice": {"type": "voice", "engine": "piper"}})
    program = (
        "import sys; sys.modules['piper'] = None\n"  # as on a machine without the extra
        "from channels import build_channel\n"
        "from channels.base import ChannelContext\n"
        "from publisher.config.settings import Settings\n"
        "settings = Settings.load()\n"
        "channel = build_channel(settings.channels['voice'], ChannelContext(settings))\n"
        "channel.engine.synthesize('Hello.', channel.engine.voice_for('en'))\n"
    )
    env = {**os.environ, "PUBLISHER_CONFIG": str(settings.config_path)}
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "PermanentError: the piper engine is not installed: pip install 'publisher[piper]'" in (
        done.stderr
    )


def test_store_keeps_and_removes_media(store: Store) -> None:
    ref = store.save_media(b"ID3 audio", "audio/mpeg", ".mp3")
    named = store.save_media(b"{}", "application/json", ".json", name="a" * 64)
    assert store.save_media(b"{changed}", "application/json", ".json", name="a" * 64) == named
    assert store.read_media(named) == (b"{}", "application/json")  # the first write stays
    with store.session() as session, session.begin():  # what a rebuild does for dropped items
        delete_media_rows(session, [ref, named, "media/" + "b" * 64])
    for gone in (ref, named):
        with pytest.raises(Exception, match="not in the store"):
            store.read_media(gone)
