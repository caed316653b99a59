"""Budgets before work: hostile front matter, tag lists and bodies are refused (or
rendered) within 1 s of CPU, each with an InputError naming the field."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from publisher.domain import text
from publisher.domain.article import parse_article, parse_front_matter
from publisher.domain.budgets import MAX_NESTING
from publisher.domain.errors import InputError
from publisher.domain.markdown import MAX_MARKDOWN_CHARS

BASE = {"id": "a", "url": "https://news.example.org/a", "title": "T", "body_html": "<p>x</p>"}


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """CPU time, not wall time: the machine is shared, the work is what is bounded."""
    start = time.process_time()
    yield
    spent = time.process_time() - start
    assert spent < seconds, f"took {spent:.2f} s of CPU"


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, levels):
        lines.append(f"a{n}: &a{n} [" + ",".join([f"*a{n - 1}"] * 10) + "]")
    return "---\n" + "\n".join(lines) + "\ntitle: x\n---\nbody\n"


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (billion_laughs(), "anchors and aliases"),
        ("---\ntitle: &t Hello\n---\nbody\n", "anchors and aliases"),
        ("---\ntags: [*x]\n---\nbody\n", "anchors and aliases"),
        ("---\ntitle: " + "[" * 5000 + "\n---\nbody\n", "levels deep"),
        ("---\ntitle: '" + "x" * 70_000 + "'\n---\nbody\n", "the limit is 65,536"),
    ],
    ids=["billion-laughs", "anchor", "alias", "deep", "large"],
)
def test_hostile_front_matter_is_refused_before_expansion(source: str, problem: str) -> None:
    with within(1.0), pytest.raises(InputError) as caught:
        parse_front_matter(source)
    assert caught.value.field == "front matter"
    assert problem in caught.value.problem


def test_plain_front_matter_still_loads() -> None:
    meta = parse_front_matter("---\ntitle: Hi\ntags: [a, b]\npublished_at: 2026-01-02\n---\nx\n")
    assert meta["title"] == "Hi" and meta["tags"] == ["a", "b"]


@pytest.mark.parametrize("count", [31, 20_000, 400_000])
def test_more_than_30_tags_are_refused_before_deduplication(count: int) -> None:
    with within(1.0), pytest.raises(InputError, match="at most 30 tags"):
        parse_article({**BASE, "tags": ["same"] * count})


def test_thirty_tags_dedupe_in_order() -> None:
    tags = [f"t{i % 7}" for i in range(30)]
    assert parse_article({**BASE, "tags": tags}).tags == tuple(f"t{i}" for i in range(7))


MARKDOWN_CASES: dict[str, Callable[[int], str]] = {
    "brackets": lambda n: "[" * n,
    "images": lambda n: "![" * (n // 2),
    "link-openers": lambda n: "[a](" * (n // 4),
    "nested-brackets": lambda n: "[" * (n // 2) + "]" * (n // 2),
    "emphasis": lambda n: "*_" * (n // 2),
    "table": lambda n: "|a|\n|-|\n" + "|a|\n" * (n // 4 - 2),
    "entities": lambda n: "&" * n,
}


@pytest.mark.parametrize("name", sorted(MARKDOWN_CASES))
def test_hostile_markdown_at_the_limit_answers_within_a_second(name: str) -> None:
    body = MARKDOWN_CASES[name](MAX_MARKDOWN_CHARS)
    with within(1.0):
        try:
            parse_article({**BASE, "body_html": None, "body_markdown": body})
        except InputError as exc:  # a budget may refuse it: that is an answer too
            assert exc.field == "body_markdown"


def test_900_kb_of_brackets_is_refused_at_once() -> None:
    with within(0.2), pytest.raises(InputError, match="the limit for Markdown is 250,000"):
        parse_article({**BASE, "body_html": None, "body_markdown": "[" * 900_000})


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("body_markdown", ">" * 200_000),
        ("body_markdown", "".join("  " * i + "- a\n" for i in range(400))),
        ("body_html", "<div>" * 200_000),
        ("body_html", "<blockquote>" * (MAX_NESTING + 1) + "x"),
        ("body_html", "<div></b>" * 100_000),  # stray end tags close nothing
        ("body_html", "<b>" * 150 + "x"),
    ],
    ids=["quotes", "lists", "divs", "just-over", "stray-ends", "inline"],
)
def test_deep_nesting_is_refused_before_the_sanitizer(field: str, body: str) -> None:
    data: dict[str, Any] = {**BASE, "body_html": None, field: body}
    with within(1.0), pytest.raises(InputError, match=r"levels deep|markup chara") as caught:
        parse_article(data)
    assert caught.value.field == field


def test_nesting_at_the_limit_and_sloppy_paragraphs_pass() -> None:
    nested = "<blockquote>" * MAX_NESTING + "deep" + "</blockquote>" * MAX_NESTING
    assert "deep" in parse_article({**BASE, "body_html": nested}).body_html
    sloppy = "<p>one<p>two<li>three" * 2000  # optional end tags do not nest
    assert parse_article({**BASE, "body_html": sloppy}).body_html


def test_too_much_markup_is_refused() -> None:
    with within(1.0), pytest.raises(InputError, match="markup characters"):
        parse_article({**BASE, "body_html": "<i></i>" * 130_000})


def test_cutting_a_huge_text_is_cheap() -> None:
    huge = "word " * 200_000
    with within(1.0):
        assert text.cut(huge, 200).endswith("…")
