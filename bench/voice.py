"""What the voice edition costs: audio seconds per CPU-second, and publish → episode in feed.

    python bench/voice.py [--repeat 3] [--redis embedded|URL]

1. Synthesis speed, for each engine and language it reads (espeak: Mandarin
   and English; piper: English; http: the speech sandbox, itself espeak, over
   loopback), on the demo samples' scripts as the channel builds them:
   seconds of audio per CPU-second of this process (the http sandbox runs in
   a thread here, so its CPU is counted too), for synthesis alone and for
   the whole episode (synthesis, pauses, MP3 encoding, ID3 tags).
2. Publish → episode in the podcast document: a real `publisher worker
   --beat` (Celery, Redis, SQLite), each sample published in turn; the time
   from just before `Runtime.publish` until `feeds/podcast.xml` on disk holds
   the episode's guid with an enclosure (median and max over `--repeat`
   publications of new article ids).
3. Retract → episode gone: from just before `Runtime.retract` until the
   podcast document on disk no longer holds the guid and the episode's MP3
   is deleted from the store (what /media/ serves), for each of those
   publications.

Everything lives in a temp dir (and a Redis key prefix of its own, removed
at the end, when `--redis` names a server).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels.voice.audio import EpisodeTags, assemble, encode_mp3, tag_mp3
from channels.voice.engines import EspeakEngine, HttpEngine, PiperEngine, SpeechEngine
from channels.voice.script import build_script
from publisher.config.settings import ChannelConfig, Settings
from publisher.coord.broker import EmbeddedRedis
from publisher.domain.article import Article, load_article_file
from publisher.domain.errors import NotFound
from publisher.worker.runtime import Runtime
from sandbox import speech
from sandbox.server import BackgroundServer

SAMPLES = Path(__file__).resolve().parent.parent / "publisher" / "local" / "demo_samples"
LANGUAGES = {"en": SAMPLES / "digital-talent.json", "zh": SAMPLES / "skills-contest.md"}


def speed(engine: SpeechEngine, item: Article, language: str) -> dict[str, float]:
    pieces = build_script(item, language)
    voice = engine.voice_for(language)
    engine.synthesize("Warm up.", voice)  # model loading is not synthesis
    cpu = time.process_time()
    pcm = assemble((engine.synthesize(p.text, voice), p.pause) for p in pieces)
    synth_cpu = time.process_time() - cpu
    tag_mp3(encode_mp3(pcm, 64), EpisodeTags(title=item.title, artist="bench", date=None))
    episode_cpu = time.process_time() - cpu
    return {
        "audio_s": pcm.seconds,
        "synth_cpu_s": synth_cpu,
        "episode_cpu_s": episode_cpu,
        "synth_x": pcm.seconds / synth_cpu,
        "episode_x": pcm.seconds / episode_cpu,
    }


def synthesis_table() -> list[tuple[str, str, dict[str, float]]]:
    rows = []
    base = ChannelConfig(name="bench", type="voice")
    with BackgroundServer(speech.create_app()) as server:
        os.environ["BENCH_SPEECH_KEY"] = speech.DEFAULT_KEY
        http = HttpEngine(
            ChannelConfig.model_validate(
                {"name": "bench", "type": "voice", "engine": "http", "base_url": server.url,
                 "api_key_env": "BENCH_SPEECH_KEY", "timeout": 60}
            )
        )  # fmt: skip
        engines: list[tuple[SpeechEngine, tuple[str, ...]]] = [
            (EspeakEngine(base), ("zh", "en")),
            (PiperEngine(base), ("en",)),
            (http, ("zh", "en")),
        ]
        for engine, languages in engines:
            for language in languages:
                item = load_article_file(LANGUAGES[language])
                rows.append((engine.name, language, speed(engine, item, language)))
    return rows


def publish_to_feed(
    repeat: int, redis_url: str | None
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-voice-"))
    matrix = tmp / "matrix.toml"
    matrix.write_text(
        '[feeds]\ntitle = "Bench Daily"\nhome_page_url = "https://news.example.org/"\n'
        '[channels.voice]\ntype = "voice"\n',
        encoding="utf-8",
    )
    prefix = f"bench-voice-{uuid.uuid4().hex[:8]}:"
    env = {
        **os.environ, "PUBLISHER_CONFIG": str(matrix), "PUBLISHER_DATA_DIR": str(tmp / "var"),
        "PUBLISHER_REDIS_PREFIX": prefix,
    }  # fmt: skip
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    settings = Settings.load(env)
    embedded = EmbeddedRedis(settings.data_dir)
    started_redis = settings.embedded_redis and embedded.ensure_running()
    runtime = Runtime(settings)
    runtime.store.migrate()
    log = (tmp / "worker.log").open("ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "publisher", "worker", "--beat", "--concurrency", "2"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    times: dict[str, list[float]] = {lang: [] for lang in LANGUAGES}
    removals: dict[str, list[float]] = {lang: [] for lang in LANGUAGES}
    voice = runtime.feed_channel("voice")
    try:
        for n in range(repeat):
            for language, path in LANGUAGES.items():
                item = load_article_file(path).model_copy(update={"id": f"bench-{language}-{n}"})
                payload = voice.format(item)
                started = time.monotonic()
                runtime.publish(item)
                times[language].append(
                    wait_for_episode(settings, payload["guid"], started) - started
                )
                # As published: a local cover is stored first, so the payload names it anew.
                (row,) = runtime.store.deliveries(article_ids=[item.id])
                audio = voice.item_audio(row.payload)
                assert audio is not None, row
                started = time.monotonic()
                runtime.retract(item.id)
                gone = wait_for_removal(runtime, payload["guid"], audio, started)
                removals[language].append(gone - started)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
        runtime.close()
        if started_redis:
            embedded.stop()
        if redis_url:
            client = redis.Redis.from_url(redis_url)
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)
    return times, removals


def wait_for_removal(runtime: Runtime, guid: str, audio: str, started: float) -> float:
    document = runtime.settings.feeds_dir / "podcast.xml"
    needle = f">{guid}</guid>".encode()
    while time.monotonic() - started < 60:
        if needle not in document.read_bytes():
            try:
                runtime.store.read_media(audio)
            except NotFound:
                return time.monotonic()
        time.sleep(0.02)
    raise SystemExit(f"episode {guid} or its audio {audio} still there after 60 s")


def wait_for_episode(settings: Settings, guid: str, started: float, timeout: float = 120) -> float:
    document = settings.feeds_dir / "podcast.xml"
    needle = f">{guid}</guid>".encode()
    while time.monotonic() - started < timeout:
        body = document.read_bytes() if document.exists() else b""
        if needle in body and b"<enclosure" in body.split(needle, 1)[1].split(b"</item>", 1)[0]:
            return time.monotonic()
        time.sleep(0.02)
    raise SystemExit(f"episode {guid} not in {document} after {timeout} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis", default="embedded", help="embedded, or a redis:// URL")
    args = parser.parse_args(argv)
    print("engine  lang  audio s  synth CPU s  audio s / CPU s (synthesis)  (whole episode)")
    for engine, language, r in synthesis_table():
        print(
            f"{engine:7} {language:5} {r['audio_s']:7.1f}  {r['synth_cpu_s']:11.3f}  "
            f"{r['synth_x']:27.0f}  {r['episode_x']:15.0f}"
        )
    redis_url = None if args.redis == "embedded" else args.redis
    times, removals = publish_to_feed(args.repeat, redis_url)
    for what, measured in (
        ("publish -> episode in feeds/podcast.xml", times),
        ("retract -> episode out of podcast.xml and its MP3 deleted", removals),
    ):
        print(f"{what} ({args.repeat} publications each):")
        for language, values in measured.items():
            print(
                f"  {language}: median {statistics.median(values) * 1000:.0f} ms, "
                f"max {max(values) * 1000:.0f} ms"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
