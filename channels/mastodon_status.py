"""The text of a Mastodon status: title, summary, link and hashtags, cut to the limits.

`compose_status` builds the generated copy from `StatusParts` (kept in the
payload, so `send` can re-cut it for a stricter instance); a status written
by hand (`overrides.<channel>.text`) is the editor's text and the article
link, which counts 23 however long the tracked link is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import regex

from publisher.domain.article import Article
from publisher.domain.text import ELLIPSIS, cut

PARAGRAPH = "\n\n"
# A hashtag is letters, marks, digits and underscores (CJK letters included)
# and needs at least one letter: Mastodon does not link "#2024".
_TAG_WORD = regex.compile(r"[\p{L}\p{M}\p{Nd}_]+")
_LETTER = regex.compile(r"\p{L}")


class Limits(Protocol):
    """What composing needs of an instance's limits (`mastodon.InstanceLimits`)."""

    @property
    def max_characters(self) -> int: ...

    def measure(self, text: str) -> int: ...

    def fits(self, text: str) -> bool: ...


@dataclass(frozen=True)
class StatusParts:
    """What a status is built from, kept in the payload so `send` can re-cut it
    for a stricter instance without the article."""

    title: str
    summary: str
    url: str
    hashtags: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, article: Article, max_hashtags: int, link: str | None = None) -> StatusParts:
        """The generated copy's parts; `link` is the article link as printed (tracked)."""
        summary = "" if article.summary == article.title else article.summary
        tags = hashtags(article.tags)[:max_hashtags]
        return cls(article.title, summary, link or article.url, tags)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "hashtags": list(self.hashtags)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StatusParts:
        return cls(
            title=str(data.get("title", "")),
            summary=str(data.get("summary", "")),
            url=str(data.get("url", "")),
            hashtags=tuple(str(t) for t in data.get("hashtags", ())),
        )


def hashtag(tag: str) -> str | None:
    """`tag` as a name Mastodon links as a hashtag, or None if nothing usable is left.

    Words are joined in CamelCase ("digital economy" → "DigitalEconomy"),
    which screen readers can read aloud; a one-word tag keeps its case.
    """
    words = _TAG_WORD.findall(tag)
    if not words:
        return None
    name = words[0] if len(words) == 1 else "".join(w[:1].upper() + w[1:] for w in words)
    return name if _LETTER.search(name) else None


def hashtags(tags: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Valid hashtag names for `tags`, in order, without case-insensitive duplicates."""
    seen: dict[str, str] = {}
    for tag in tags:
        name = hashtag(tag)
        if name is not None:
            seen.setdefault(name.casefold(), name)
    return tuple(seen.values())


def compose_status(parts: StatusParts, limits: Limits) -> str:
    """The status text, within `limits`: the link always stays.

    Space goes first to the title, the link and the hashtags (trailing tags
    are dropped, then the title is cut, if even those do not fit); the
    summary gets what is left, cut at a sentence or clause boundary.
    """
    tags = list(parts.hashtags)
    while tags and not limits.fits(_join(parts.title, "", parts.url, tags)):
        tags.pop()
    title = parts.title
    if not limits.fits(_join(title, "", parts.url, tags)):
        rest = limits.measure(_join("", "", parts.url, tags)) + len(PARAGRAPH)
        title = cut(title, limits.max_characters - rest, limits.measure)
    room = limits.max_characters - limits.measure(_join(title, "", parts.url, tags))
    room -= len(PARAGRAPH)
    summary = cut(parts.summary, room, limits.measure) if room > 0 else ""
    if summary.strip() in ("", ELLIPSIS):
        summary = ""
    status = _join(title, summary, parts.url, tags)
    # Paragraphs are measured independently, so this only guards the arithmetic above.
    return status if limits.fits(status) else cut(status, limits.max_characters, limits.measure)


def _join(title: str, summary: str, url: str, tags: list[str]) -> str:
    tag_line = " ".join(f"#{t}" for t in tags)
    return PARAGRAPH.join(p for p in (title, summary, url, tag_line) if p)


def language_code(tag: str | None) -> str | None:
    """Mastodon takes an ISO 639-1 code: "zh-CN" is sent as "zh"."""
    return tag.split("-", 1)[0].lower() if tag else None


def override_parts(text: str, link: str, url: str) -> StatusParts:
    """The editor's own text as status parts: the article link is its own paragraph
    unless they wrote the article's `url` in the text (then it becomes `link`)."""
    if url in text:
        return StatusParts(title=text.replace(url, link), summary="", url="")
    return StatusParts(title=text, summary="", url=link)
