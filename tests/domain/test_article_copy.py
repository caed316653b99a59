"""The article's per-channel copy (`overrides`) and `cover_alt`: shape, hash, identity."""

from __future__ import annotations

from typing import Any

import pytest

from publisher.domain.article import Article, parse_article
from publisher.domain.errors import InputError

BASE: dict[str, Any] = {
    "id": "x1", "url": "https://news.example.org/a", "title": "T",
    "body_html": "<p>Hello world.</p>", "cover_image": "https://news.example.org/c.jpg",
}  # fmt: skip


def test_an_article_without_the_new_fields_keeps_the_hash_it_was_stored_with() -> None:
    """Computed by the code before `overrides`/`cover_alt` existed: re-posting an article
    stored then must not look like a correction."""
    expected = "173cea0333952dbe855464d054826a04ac5a837be27428be0d267184f0f6d77e"
    assert parse_article(BASE).content_hash() == expected
    assert parse_article({**BASE, "overrides": {"weibo": {"text": "  "}}}).content_hash() == (
        expected  # a blank override is no override
    )


def test_overrides_and_cover_alt_are_content_a_correction_may_change() -> None:
    plain = parse_article(BASE)
    with_copy = parse_article({**BASE, "overrides": {"weibo": {"text": "手写"}}})
    changed = parse_article({**BASE, "overrides": {"weibo": {"text": "改过"}}})
    alt = parse_article({**BASE, "cover_alt": "A robot"})
    assert len({a.content_hash() for a in (plain, with_copy, changed, alt)}) == 4
    assert Article.from_json(with_copy.to_json()) == with_copy  # the store's round trip


def test_override_text_keeps_paragraphs_and_tidies_spaces() -> None:
    article = parse_article(
        {**BASE, "overrides": {"fediverse": {"text": "  One  line.\r\n\r\n\r\n\nTwo. "}}}
    )
    assert article.overrides == {"fediverse": {"text": "One line.\n\nTwo."}}


@pytest.mark.parametrize(
    ("overrides", "field", "problem"),
    [
        ("text", "overrides", "must map channel names"),
        ({"weibo": "text"}, "overrides.weibo", "must map override keys"),
        ({"weibo": {"Text!": "x"}}, "overrides.weibo", "is not an override key"),
        ({"weibo": {"text": 3}}, "overrides.weibo.text", "must be a string, not int"),
        ({"weibo": {"text": "a\x07b"}}, "overrides.weibo.text", "control character U+0007"),
        ({"weibo": {"text": "x" * 5001}}, "overrides.weibo.text", "the limit is 5,000"),
        ({"a b": {"text": "x"}}, "overrides", "is not a channel name"),
    ],
)
def test_malformed_overrides_name_the_field(overrides: Any, field: str, problem: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_article({**BASE, "overrides": overrides})
    assert caught.value.field == field and problem in caught.value.problem


def test_cover_alt_is_text_with_a_limit() -> None:
    assert parse_article({**BASE, "cover_alt": " A  robot "}).cover_alt == "A robot"
    with pytest.raises(InputError, match="cover_alt: is 1,501 characters"):
        parse_article({**BASE, "cover_alt": "x" * 1501})
