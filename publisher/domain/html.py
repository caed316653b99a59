"""HTML in and out: the one sanitizer policy and the one HTML→text conversion.

Every channel starts from the article's sanitized HTML; channels that need
less (WeChat keeps a smaller subset, microblogs want plain text) reduce it
further from here, so hostile markup is removed once, at the door.
"""

from __future__ import annotations

import functools
import re
from html.parser import HTMLParser

import nh3

# What an article body may keep. No scripts, styles, frames, forms or event
# handlers: nh3 drops every attribute not listed here.
ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "del", "em",
    "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "ins", "li", "ol", "p", "pre", "q", "s", "small", "span", "strong", "sub",
    "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}
URL_SCHEMES = {"http", "https", "mailto"}

# C0 controls except tab/newline/carriage return, DEL, C1 controls.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def find_control(text: str) -> str | None:
    """The first control character in `text`, for an error message, or None."""
    match = _CONTROL.search(text)
    return match.group() if match else None


def strip_controls(text: str) -> str:
    return _CONTROL.sub("", text)


def sanitize(html: str) -> str:
    """Reduce untrusted HTML to the article subset; links get rel=noopener."""
    return nh3.clean(
        strip_controls(html),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    ).strip()


_BLOCKS = {
    "p", "div", "section", "article", "blockquote", "li", "ul", "ol", "h1", "h2",
    "h3", "h4", "h5", "h6", "pre", "table", "tr", "figure", "figcaption", "hr",
}  # fmt: skip


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


@functools.lru_cache(maxsize=16)
def to_text(html: str) -> str:
    """Plain text with paragraphs separated by one blank line.

    Cached: parsing, the summary, and every channel's formatter ask for the
    text of the same body, and `html.parser` costs ~3 µs a tag.
    """
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    paragraphs = (" ".join(p.split()) for p in re.split(r"\n\s*\n", text))
    return "\n\n".join(p for p in paragraphs if p)


class _ImageFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            values = dict(attrs)
            self.found.append((values.get("src") or "", values.get("alt") or ""))


def images(html: str) -> list[tuple[str, str]]:
    """Every `<img>` of `html` as (src, alt), in order: what preview checks for alt text."""
    finder = _ImageFinder()
    finder.feed(html)
    finder.close()
    return finder.found
