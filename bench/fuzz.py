"""Fuzz the running API with a token: property-based requests (hypothesis), then SQL checks.

    python bench/fuzz.py [--requests 10000] [--seed 1]

Starts the API on loopback (SQLite store in a temporary data dir, the
machine's Redis for the queue, no worker: deliveries stay pending) and sends
`--requests` requests drawn by hypothesis across the API's inputs: article
JSON with arbitrary Unicode (lone surrogates, U+FFFF, bidi controls, control
characters), wrong types, unknown fields, odd times, query strings, ids, raw
non-JSON bodies and Markdown sources. It then checks, in SQL, that no
article was half stored (an article without its current version, a version
without deliveries, a delivery without its article), and times the hostile
cases of issue 9 one by one. Exit 0 only if no answer was 500 or more, nothing
was half stored and every hostile case was answered within 1 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TOKEN = "fuzz-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE_BUDGET = 1.0

# -- what hypothesis draws --------------------------------------------------------------------

_odd_text = st.text(
    alphabet=st.one_of(
        st.characters(codec=None),  # any code point, lone surrogates included
        st.sampled_from(
            ["\uffff", "\ufffe", "\u202e", "\u2066", "\x00", "\r", "\n", "\t", "<", "&"]
        ),
    ),
    max_size=60,
)
_text = st.one_of(_odd_text, st.sampled_from(["Title", "正文", "https://e.org/a", ""]))
_time = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00",
                     "2026-03-08T02:30:00", "1969-12-31T23:59:59Z", "not a time"]),
)  # fmt: skip
_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _text)
_value = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=4), max_leaves=8)
_url = st.one_of(
    st.sampled_from(["https://news.example.org/a", "http://[::1", "http://127.0.0.1:6379/",
                     "https://e.org/a\r\nX: 1", "javascript:x()", "http://2130706433/"]),
    _text.map(lambda t: "https://news.example.org/" + t),
)  # fmt: skip


@st.composite
def articles(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": draw(st.one_of(st.from_regex(r"\Afz-[a-z0-9]{1,12}\Z"), _text)),
        "url": draw(_url),
        "title": draw(_text),
    }
    if draw(st.booleans()):
        body["body_html"] = draw(_text.map(lambda t: f"<p>{t}</p>"))
    else:
        body["body_markdown"] = draw(_text)
    optional = {
        "summary": _text, "author": _text, "source": _text, "language": _text,
        "tags": st.lists(_text, max_size=35), "cover_image": _url, "published_at": _time,
        "publish_at": _time, "timezone": st.sampled_from(["UTC", "Asia/Shanghai", "Mars/Base"]),
        "channels": st.lists(st.sampled_from(["site", "app", "nope"]), max_size=3),
    }  # fmt: skip
    for name, strategy in optional.items():
        if draw(st.integers(0, 3)) == 0:
            body[name] = draw(strategy)
    if draw(st.integers(0, 9)) == 0:
        body[draw(_text)] = draw(_value)  # unknown or odd field name
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.sampled_from(sorted(body)))] = draw(_value)  # a wrong type
    return body


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json_body: Any = None
    raw: bytes | None = None
    params: dict[str, Any] | None = None
    auth: bool = True


@st.composite
def calls(draw: st.DrawFn) -> Call:
    kind = draw(st.integers(0, 9))
    if kind <= 3:
        return Call("POST", "/api/articles", json_body=draw(articles()))
    if kind == 4:
        return Call("POST", "/api/preview", json_body=draw(articles()), auth=draw(st.booleans()))
    if kind == 5:
        text = draw(st.one_of(_text, _text.map(lambda t: f"---\ntitle: {t}\n---\n{t}\n")))
        return Call("POST", "/dashboard/api/source", json_body={"text": text})
    if kind == 6:
        return Call("POST", "/api/articles", raw=draw(st.binary(max_size=200)))
    if kind == 7:
        return Call("GET", "/api/articles/" + draw(st.from_regex(r"\A[A-Za-z0-9._-]{1,20}\Z")))
    if kind == 8:
        params = {"state": draw(st.sampled_from(["failed", "pending", "bogus"])),
                  "since": draw(_time), "limit": draw(st.integers(-5, 600))}  # fmt: skip
        return Call("GET", "/api/deliveries", params=params, auth=draw(st.booleans()))
    delivery = draw(st.integers(-3, 2**40))
    action = draw(st.sampled_from(["retry", "cancel"]))
    return Call("POST", f"/api/deliveries/{delivery}/{action}")


# -- running -----------------------------------------------------------------------------------


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    slowest: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.statuses.values())


def send(base: str, call: Call, tally: Tally) -> None:
    headers = dict(AUTH) if call.auth else {}
    data: bytes | None = call.raw
    if call.json_body is not None:
        data = json.dumps(call.json_body, ensure_ascii=True, allow_nan=True).encode()
        headers["Content-Type"] = "application/json"
    start = time.monotonic()
    response = requests.request(
        call.method, base + call.path, data=data, params=call.params, headers=headers, timeout=30
    )
    tally.slowest = max(tally.slowest, time.monotonic() - start)
    tally.statuses[response.status_code] += 1
    if response.status_code >= 500:
        tally.server_errors.append(f"{call.method} {call.path} -> {response.status_code}")


def fuzz(base: str, count: int, random_seed: int = 1) -> Tally:
    """`count` hypothesis-drawn requests against the API at `base`."""
    tally = Tally()

    @seed(random_seed)
    @settings(
        max_examples=count, database=None, deadline=None, phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(calls())
    def one(call: Call) -> None:
        send(base, call, tally)

    one()
    return tally


def hostile_cases() -> dict[str, Callable[[str], requests.Response]]:
    """Issue 9's cases, each one request."""
    bomb = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]'] + [
        f"a{n}: &a{n} [" + ",".join([f"*a{n - 1}"] * 10) + "]" for n in range(1, 9)
    ]
    base_article = {"id": "hostile", "url": "https://news.example.org/h", "title": "T"}

    def post(path: str, body: Any, auth: bool = True) -> Callable[[str], requests.Response]:
        payload = json.dumps(body, ensure_ascii=True).encode()
        headers = {**(AUTH if auth else {}), "Content-Type": "application/json"}
        return lambda base: requests.post(base + path, data=payload, headers=headers, timeout=60)

    md = {**base_article}
    return {
        "yaml alias bomb (source)": post(
            "/dashboard/api/source", {"text": "---\n" + "\n".join(bomb) + "\n---\nbody\n"}
        ),
        "20,000 tags (preview)": post(
            "/api/preview", {**base_article, "body_html": "<p>x</p>", "tags": ["t"] * 20_000}
        ),
        "4 MB of tags (articles)": post(
            "/api/articles", {**base_article, "body_html": "<p>x</p>", "tags": ["tag"] * 600_000}
        ),
        "900 KB of [ (preview)": post("/api/preview", {**md, "body_markdown": "[" * 900_000}),
        "250 KB of [ (preview)": post("/api/preview", {**md, "body_markdown": "[" * 250_000}),
        "250 KB of > (preview)": post("/api/preview", {**md, "body_markdown": ">" * 250_000}),
        "200,000 nested div (preview)": post(
            "/api/preview", {**base_article, "body_html": "<div>" * 200_000}
        ),
        "U+FFFF title (articles)": post(
            "/api/articles", {**base_article, "title": "T\uffff", "body_html": "<p>x</p>"}
        ),
        "lone surrogate (articles)": post(
            "/api/articles", {**base_article, "title": "T\ud800", "body_html": "<p>x</p>"}
        ),
        "year 9999-12 (articles)": post(
            "/api/articles",
            {**base_article, "body_html": "<p>x</p>", "published_at": "9999-12-31T23:59:59-12:00"},
        ),
        "preview without a token": post(
            "/api/preview", {**base_article, "body_html": "<p>x</p>"}, auth=False
        ),
    }


def time_hostile(base: str) -> dict[str, tuple[int, float]]:
    results = {}
    for name, call in hostile_cases().items():
        start = time.monotonic()
        response = call(base)
        results[name] = (response.status_code, time.monotonic() - start)
    return results


def half_stored(database_url: str) -> dict[str, int]:
    """Rows that only part of a publish left behind, counted in SQL."""
    from sqlalchemy import create_engine, text

    queries = {
        "articles without their current version": """
            SELECT count(*) FROM articles a WHERE NOT EXISTS (SELECT 1 FROM article_versions v
            WHERE v.article_id = a.id AND v.version = a.current_version)""",
        "articles without deliveries": """
            SELECT count(*) FROM articles a WHERE NOT EXISTS (SELECT 1 FROM deliveries d
            WHERE d.article_id = a.id)""",
        "deliveries of a version never stored": """
            SELECT count(*) FROM deliveries d WHERE NOT EXISTS (SELECT 1 FROM article_versions v
            WHERE v.article_id = d.article_id AND v.version = d.article_version)""",
        "deliveries without their article": """
            SELECT count(*) FROM deliveries d WHERE NOT EXISTS
            (SELECT 1 FROM articles a WHERE a.id = d.article_id)""",
    }
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return {name: int(conn.execute(text(q)).scalar() or 0) for name, q in queries.items()}
    finally:
        engine.dispose()


def stored_articles(database_url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM articles")).scalar() or 0)
    finally:
        engine.dispose()


def start_api(root: Path, redis_url: str, prefix: str) -> tuple[Any, Any, str]:
    """The API on loopback over a fresh SQLite store: (server, runtime, database URL).
    Every Redis key it makes starts with `prefix` (`drop_keys` removes them)."""
    from publisher.config.settings import Settings
    from publisher.web.api import create_app
    from publisher.worker.runtime import Runtime
    from sandbox.server import BackgroundServer
    from tests.conftest import write_matrix

    matrix = write_matrix(
        root / "matrix.toml", {"site": {"type": "rss"}, "app": {"type": "app_feed"}},
        {"title": "Fuzz Daily", "home_page_url": "https://news.example.org/"},
    )  # fmt: skip
    settings = Settings.load({
        "PUBLISHER_CONFIG": str(matrix), "PUBLISHER_DATA_DIR": str(root / "var"),
        "PUBLISHER_REDIS_PREFIX": prefix, "REDIS_URL": redis_url,
        "PUBLISHER_API_TOKENS": f"fuzz:{TOKEN}",
    })  # fmt: skip
    runtime = Runtime(settings)
    runtime.store.migrate()
    server = BackgroundServer(create_app(runtime)).start()
    return server, runtime, settings.database_url


def drop_keys(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)
    client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="publisher-fuzz-") as tmp:
        prefix = f"fuzz-{uuid.uuid4().hex[:8]}:"
        server, runtime, database_url = start_api(Path(tmp), args.redis_url, prefix)
        try:
            started = time.monotonic()
            tally = fuzz(server.url, args.requests, args.seed)
            elapsed = time.monotonic() - started
            hostile = time_hostile(server.url)
            broken = half_stored(database_url)
            stored = stored_articles(database_url)
        finally:
            server.stop()
            runtime.close()
            drop_keys(args.redis_url, prefix)
    statuses = dict(sorted(tally.statuses.items()))
    print(f"requests: {tally.total} in {elapsed:.0f} s; statuses: {statuses}")
    print(f"responses >= 500: {len(tally.server_errors)} {tally.server_errors[:5]}")
    print(f"slowest fuzz answer: {tally.slowest:.3f} s; articles stored: {stored}")
    print(f"half-stored (SQL): {broken}")
    for name, (status, seconds) in hostile.items():
        print(f"hostile: {name}: HTTP {status} in {seconds:.3f} s")
    ok = (
        not tally.server_errors
        and not any(broken.values())
        and all(status < 500 and seconds < HOSTILE_BUDGET for status, seconds in hostile.values())
    )
    print("result:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
