"""Valid text everywhere: characters XML cannot hold, lone surrogates, bidi controls in
one-line fields, whitespace in URLs and times outside 1970-9999 are each an InputError
naming the field (422 over HTTP, never a 500), and a partner item with one never stops
a poll."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from publisher.config.jobs import IngestConfig
from publisher.domain.article import parse_article
from publisher.domain.errors import InputError
from publisher.domain.times import parse_time
from publisher.jobs.ingest import Ingestor, build_article
from publisher.jobs.partner_feed import FeedItem, ParsedFeed, link_key, parse_feed
from publisher.worker.runtime import Runtime
from tests.jobs.test_ingest import Partner, make_runtime, partner  # noqa: F401 - fixtures
from tests.web.test_api import Api, make_api  # noqa: F401 - fixture

BASE: dict[str, Any] = {
    "id": "v-1",
    "url": "https://news.example.org/v1",
    "title": "Title",
    "body_html": "<p>Body</p>",
    "author": "Li Hua",
    "source": "Desk",
    "tags": ["one", "two"],
    "summary": "Summary",
    "cover_image": "https://img.example.org/c.jpg",
    "timezone": "UTC",
    "language": "en",
    "channels": ["site"],
}
BAD_CHARS = ["\uffff", "\ufffe", "\x00", "\x0b", "\ud800", "\udfff"]
# (field, how to put the character in it, the field the error names)
FIELDS: list[tuple[str, Callable[[str], Any], str]] = [
    ("title", lambda c: f"Tit{c}le", "title"),
    ("body_html", lambda c: f"<p>Bo{c}dy</p>", "body_html"),
    ("body_html", lambda c: f'<p>x<img src="https://i.example.org/{c}.png"></p>', "body_html"),
    ("body_markdown", lambda c: f"Bo{c}dy", "body_markdown"),
    ("summary", lambda c: f"Sum{c}", "summary"),
    ("author", lambda c: f"Li{c}", "author"),
    ("source", lambda c: f"De{c}sk", "source"),
    ("tags", lambda c: ["one", f"t{c}"], "tags[1]"),
    ("url", lambda c: f"https://news.example.org/{c}", "url"),
    ("cover_image", lambda c: f"https://img.example.org/{c}.jpg", "cover_image"),
    ("timezone", lambda c: f"UT{c}C", "timezone"),
    ("language", lambda c: f"e{c}n", "language"),
    ("channels", lambda c: [f"si{c}te"], "channels[0]"),
    ("id", lambda c: f"v{c}1", "id"),
]


def with_field(field: str, value: Any) -> dict[str, Any]:
    data = {**BASE, field: value}
    if field == "body_markdown":
        del data["body_html"]
    return data


@pytest.mark.parametrize("char", BAD_CHARS, ids=[f"U+{ord(c):04X}" for c in BAD_CHARS])
@pytest.mark.parametrize(("field", "put", "named"), FIELDS, ids=[f[2] for f in FIELDS])
def test_characters_outside_xml_are_refused_in_every_field(
    field: str, put: Callable[[str], Any], named: str, char: str
) -> None:
    with pytest.raises(InputError) as caught:
        parse_article(with_field(field, put(char)))
    assert caught.value.field == named
    json.dumps(caught.value.problem).encode("utf-8")  # the answer itself can be sent


BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]


@pytest.mark.parametrize("char", BIDI, ids=[f"U+{ord(c):04X}" for c in BIDI])
@pytest.mark.parametrize(
    ("field", "value", "named"),
    [("title", "abc{}def", "title"), ("author", "{}Li", "author"),
     ("source", "x{}", "source"), ("tags", ["{}t"], "tags[0]")],
)  # fmt: skip
def test_bidi_controls_are_refused_in_single_line_fields(
    field: str, value: Any, named: str, char: str
) -> None:
    filled = [v.format(char) for v in value] if isinstance(value, list) else value.format(char)
    with pytest.raises(InputError, match="bidirectional") as caught:
        parse_article(with_field(field, filled))
    assert caught.value.field == named


def test_bidi_controls_stay_allowed_in_bodies() -> None:
    body = "<p>\u2067\u05e9\u05dc\u05d5\u05dd\u2069 world</p>"
    assert "\u2067" in parse_article(with_field("body_html", body)).body_html


@pytest.mark.parametrize("char", ["\r", "\n", "\t", " ", "\x0c", "\u2028", "\u00a0", "\x85"])
@pytest.mark.parametrize("field", ["url", "cover_image"])
def test_urls_refuse_whitespace_and_controls(field: str, char: str) -> None:
    with pytest.raises(InputError, match=r"whitespace or a control|control character") as caught:
        parse_article(with_field(field, f"https://news.example.org/a{char}b"))
    assert caught.value.field == field


def test_urls_with_surrounding_spaces_are_trimmed() -> None:
    assert parse_article(with_field("url", "  https://e.org/a ")).url == "https://e.org/a"


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59-12:00",
        "0001-01-01T00:00:00+14:00",
        "0001-01-01T00:00:00",  # read in the article's zone (UTC)
        "1969-12-31T23:59:59Z",
        "9999-12-31T23:59:59.999999-00:01",
    ],
)
@pytest.mark.parametrize("field", ["published_at", "publish_at"])
def test_times_outside_1970_to_9999_are_refused(field: str, value: str) -> None:
    with pytest.raises(InputError, match="out of range") as caught:
        parse_article({**BASE, field: value})
    assert caught.value.field == field


def test_times_at_the_edges_pass() -> None:
    assert parse_time("t", "1970-01-01T00:00:00Z") is not None
    assert parse_time("t", "9999-12-31T23:59:59+00:00") is not None
    assert parse_time("--at", "9999-12-31T23:30:00", ZoneInfo("Pacific/Kiritimati"))
    with pytest.raises(InputError, match="out of range"):  # 10000-01-01 in UTC
        parse_time("--at", "9999-12-31T23:30:00", ZoneInfo("America/New_York"))


# ---- over HTTP: 422 naming the field, never a 500 -------------------------------------------


def test_the_api_answers_422_for_each_of_them(make_api: Callable[..., Api]) -> None:  # noqa: F811
    api = make_api(worker=False)
    cases = [
        ('"title": "T\\ud800"', "title"),
        ('"title": "T\\uffff"', "title"),
        ('"title": "T\\u202e"', "title"),
        ('"body_html": "<p>\\udfff</p>"', "body_html"),
        ('"tags": ["a", "\\ufffe"]', "tags[1]"),
        ('"url": "https://e.org/\\r\\nX-Injected: 1"', "url"),
        ('"published_at": "9999-12-31T23:59:59-12:00"', "published_at"),
        ('"publish_at": "0001-01-01T00:00:00+14:00"', "publish_at"),
    ]
    for fragment, field in cases:
        fields = {k: v for k, v in BASE.items() if k not in ("channels", "timezone")}
        for key in ("title", "body_html", "tags", "url"):
            if fragment.startswith(f'"{key}"'):
                fields.pop(key)
        body = json.dumps(fields)[:-1] + ", " + fragment + "}"
        for path in ("/api/articles", "/api/preview"):
            response = api.post(
                path,
                data=body.encode(),
                headers={"Authorization": "Bearer s3cret-desk-token",
                         "Content-Type": "application/json"},
            )  # fmt: skip
            assert response.status_code == 422, (path, fragment, response.text)
            assert response.json()["error"]["field"] == field, (path, fragment)
    assert api.stack.runtime.store.deliveries(limit=10) == []  # nothing half-stored


# ---- partner feeds -------------------------------------------------------------------------


def test_a_partner_item_with_bad_characters_is_an_input_error() -> None:
    config = IngestConfig(name="wire", url="https://partner.example.org/feed.json")
    feed = ParsedFeed("Wire", None, [])
    for item in (
        FeedItem(guid="g1", link="https://p.example.org/1", title="T\ud800"),
        FeedItem(guid="g2", link="https://p.example.org/2", title="T\uffff"),
        FeedItem(guid="g3", link="https://p.example.org/3\n", title="T"),
        FeedItem(guid="g4", link="https://p.example.org/4", title="T", tags=("\u202e",)),
    ):
        with pytest.raises(InputError):
            build_article(config, item, feed)


def test_hostile_json_feed_items_parse_into_storable_identities() -> None:
    body = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "W",
            "items": [
                {"id": "\ud800", "url": "https://p.example.org/\udfff", "title": "x"},
                {"id": "ok", "url": "http://[::1", "title": "y"},
            ],
        }
    ).encode()
    items = parse_feed(body, "application/feed+json").items
    assert items[0].guid == "\ufffd"
    for item in items:
        assert link_key(item.link, item.guid)  # hashing never raises


def test_bad_items_never_stop_a_poll(
    make_runtime: Callable[..., Runtime],  # noqa: F811
    partner: tuple[Partner, str],  # noqa: F811
) -> None:
    server, url = partner
    runtime = make_runtime({"wire": {"url": url, "publish_first_poll": True}})
    items = [
        {"id": "surrogate", "url": "https://p.example.org/1", "title": "T\ud800"},
        {"id": "xml", "url": "https://p.example.org/2", "title": "T\uffff"},
        {"id": "bidi", "url": "https://p.example.org/3", "title": "\u202eT"},
        {"id": "date", "url": "https://p.example.org/4", "title": "Old",
         "date_published": "0001-01-01T00:00:00+14:00"},
        {"id": "\udfff", "url": "https://p.example.org/\ud800", "title": "Odd guid"},
        {"id": "bracket", "url": "http://[::1", "title": "Bad link"},
        {"id": "good", "url": "https://p.example.org/9", "title": "Good",
         "content_html": "<p>Fine.</p>"},
    ]  # fmt: skip
    feed = {"version": "https://jsonfeed.org/version/1.1", "title": "W", "items": items}
    server.publish(json.dumps(feed), "application/feed+json")
    result = Ingestor(runtime).poll("wire")
    assert result.outcome == "ok", result.error
    assert len(result.published) == 1
    assert len(result.rejected) == len(items) - 1
