"""Article parsing: the two sample forms, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from publisher.domain.article import load_article_file, parse_article
from publisher.domain.errors import InputError
from tests.conftest import SAMPLES

VALID: dict[str, Any] = {
    "id": "a-1",
    "url": "https://news.example.org/a-1.html",
    "title": "A title",
    "body_html": "<p>First sentence. Second one.</p><p>More.</p>",
    "published_at": "2026-11-20T08:30:00+08:00",
}


def test_json_sample_parses_with_derived_summary() -> None:
    article = load_article_file(SAMPLES / "digital-talent.json")
    assert article.id == "2024-04-22-digital-talent"
    assert article.published_at is not None and article.published_at.utcoffset() is not None
    assert article.tags == ("digital economy", "digital talent", "trade unions", "skills")
    assert article.summary.startswith("Recently, the Ministry")
    assert len(article.summary) <= 200


def test_markdown_sample_renders_and_resolves_cover() -> None:
    article = load_article_file(SAMPLES / "skills-contest.md")
    assert "<strong>人工智能训练</strong>" in article.body_html
    assert "<blockquote>" in article.body_html
    assert "😀" in article.body_html
    assert article.cover_image == str((SAMPLES / "skills-contest.jpg").resolve())
    assert article.summary.endswith("同台竞技。")  # cut at a CJK sentence end


def test_content_hash_is_stable_and_ignores_routing() -> None:
    a = parse_article(VALID)
    b = parse_article({**VALID, "channels": ["site"], "publish_at": "2030-01-01T00:00:00Z"})
    c = parse_article({**VALID, "title": "Another title"})
    assert a.content_hash() == b.content_hash() != c.content_hash()


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"title": None}, "title", "is required"),
        ({"title": "   "}, "title", "is required"),
        ({"url": "not a url"}, "url", "not an absolute http(s) URL"),
        ({"url": "javascript:alert(1)"}, "url", "not an absolute http(s) URL"),
        ({"url": "http://["}, "url", "not an absolute http(s) URL"),
        ({"url": "https://e.org/\x00"}, "url", "control character U+0000"),
        ({"published_at": "2026-11-20T08:30:00"}, "published_at", "has no time zone"),
        ({"published_at": "yesterday"}, "published_at", "not an ISO 8601 time"),
        ({"id": "../etc/passwd"}, "id", "must be 1-128"),
        ({"title": "bell\x07"}, "title", "control character U+0007"),
        ({"body_html": "<script>alert(1)</script>"}, "body_html", "no text left"),
        ({"body_html": "x" * 5_000_000}, "body_html", "the limit is 1,000,000"),
        ({"body_markdown": "# hi"}, "body_html", "not both"),
        ({"channels": []}, "channels", "at least one"),
        ({"tags": [""]}, "tags[0]", "non-empty"),
        ({"cover_image": "file:///etc/passwd"}, "cover_image", "only http(s)"),
        ({"cover_image": "cover.jpg"}, "cover_image", "only accepted in an article file"),
        ({"language": "english!"}, "language", "not a language tag"),
        ({"colour": "red"}, "colour", "is not an article field"),
    ],
)
def test_bad_input_names_the_field(change: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_article({**VALID, **change})
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_hostile_html_is_sanitized() -> None:
    article = parse_article(
        {
            **VALID,
            "body_html": '<p onclick="x()">Hi<img src="https://e.x/a.png" onerror="steal()">'
            '<script>alert(1)</script><a href="javascript:x()">l</a><iframe src="//e"></iframe>'
            "<style>p{}</style></p>",  # control characters: refused (domain/test_valid_text.py)
        }
    )
    body = article.body_html
    for bad in (
        "<script",
        "onerror",
        "onclick",
        "javascript:",
        "<iframe",
        "<style",
        "\x00",
        "\x1b",
    ):
        assert bad not in body
    assert '<img src="https://e.x/a.png">' in body


def test_cover_path_must_stay_in_the_article_folder(tmp_path: Path) -> None:
    (tmp_path / "inner").mkdir()
    article_file = tmp_path / "inner" / "a.json"
    (tmp_path / "secret.jpg").write_bytes(b"x")
    article_file.write_text(json.dumps({**VALID, "cover_image": "../secret.jpg"}))
    with pytest.raises(InputError, match="inside the article's folder"):
        load_article_file(article_file)


def test_markdown_without_front_matter_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_text("# just markdown\n")
    with pytest.raises(InputError, match="front matter"):
        load_article_file(path)


def test_naive_date_in_front_matter_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_text(
        "---\nid: x\nurl: https://e.org/x\ntitle: T\npublished_at: 2026-11-20 08:30:00\n---\nBody\n"
    )
    with pytest.raises(InputError) as caught:
        load_article_file(path)
    assert caught.value.field == "published_at"
