"""Article HTML reduced to what the WeChat editor keeps, and the platform's 字 count.

External `<img>` sources are filtered by the platform and only inline style
survives (reference/channel-apis.md §1 "Allowed HTML"), so the body is
rewritten through an allowlist serializer; every image it keeps is written
in one exact shape so the transport can find it again and point it at the
re-hosted copy, or replace it with its alt text.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from publisher.domain import html as htmlkit

# The HTML the platform keeps (in practice; reference §1 "Allowed HTML").
KEPT_TAGS = frozenset(
    {"section", "p", "span", "strong", "em", "ul", "ol", "li", "blockquote", "pre", "code",
     "table", "thead", "tbody", "tfoot", "tr", "td", "th", "img", "br", "hr",
     "h1", "h2", "h3", "h4", "h5", "h6"}
)  # fmt: skip
RENAMED_TAGS = {"b": "strong", "i": "em", "figure": "section", "figcaption": "p", "div": "section"}
DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "noscript", "template", "form", "textarea",
     "select", "button", "svg", "math", "head", "title", "video", "audio", "canvas"}
)  # fmt: skip
VOID_TAGS = frozenset({"img", "br", "hr"})
_SPAN_ATTRIBUTE = re.compile(r"^[1-9][0-9]{0,2}$")
# The serializer below writes every image exactly like this, so send() can find them.
_IMG = re.compile(r'<img src="([^"]*)" alt="([^"]*)">')


@dataclass
class _Reduced:
    """Article HTML reduced to the WeChat subset, in top-level blocks (cut points)."""

    blocks: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)


class _Reducer(HTMLParser):
    """An allowlist serializer: what it does not know, it does not write.

    Unknown tags are unwrapped (their text stays, so a link becomes its
    text), dropped tags lose their content too, attributes survive only on
    images (src, alt) and table cells (spans). Every value is re-escaped.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.result = _Reduced()
        self._out: list[str] = []
        self._open: list[str] = []
        self._dropping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROPPED_WITH_CONTENT:
            self._dropping += 1
            return
        name = RENAMED_TAGS.get(tag, tag)
        if self._dropping or name not in KEPT_TAGS:
            return
        if name == "img":
            self._image(dict(attrs))
        elif name in VOID_TAGS:
            self._out.append(f"<{name}>")
        else:
            self._out.append(f"<{name}{_cell_attributes(name, attrs)}>")
            self._open.append(name)
        self._block_end()

    def handle_endtag(self, tag: str) -> None:
        if tag in DROPPED_WITH_CONTENT:
            self._dropping = max(0, self._dropping - 1)
            return
        name = RENAMED_TAGS.get(tag, tag)
        if self._dropping or name in VOID_TAGS or name not in self._open:
            return
        while self._open:
            top = self._open.pop()
            self._out.append(f"</{top}>")
            if top == name:
                break
        self._block_end()

    def handle_data(self, data: str) -> None:
        if self._dropping or (not self._open and not data.strip()):
            return
        self._out.append(html.escape(data, quote=False))
        self._block_end()

    def close(self) -> None:
        super().close()
        while self._open:
            self._out.append(f"</{self._open.pop()}>")
        self._block_end()

    def _image(self, attrs: dict[str, str | None]) -> None:
        src = (attrs.get("src") or "").strip()
        alt = " ".join((attrs.get("alt") or "").split())
        if _rehostable(src):
            self._out.append(f'<img src="{html.escape(src)}" alt="{html.escape(alt)}">')
            if src not in self.result.images:
                self.result.images.append(src)
        elif alt:
            self._out.append(html.escape(alt, quote=False))

    def _block_end(self) -> None:
        if not self._open and self._out:
            self.result.blocks.append("".join(self._out))
            self._out = []


def reduce_html(body_html: str) -> _Reduced:
    """The WeChat subset of an article body (sanitized again first: defence in depth)."""
    reducer = _Reducer()
    reducer.feed(htmlkit.sanitize(body_html))
    reducer.close()
    return reducer.result


def fit_blocks(blocks: list[str], limit: int, image_allowance: int) -> list[str]:
    """Whole top-level blocks while they fit; then an ellipsis ("read more" links out).

    Each body image is charged `image_allowance` characters, because the
    platform's URL replaces ours after formatting.
    """
    ending = "<p>…</p>"
    kept: list[str] = []
    used = len(ending)
    for block in blocks:
        size = len(block) + block.count("<img ") * image_allowance
        if used + size > limit:
            return [*kept, ending]
        kept.append(block)
        used += size
    return kept


def rewrite_images(content: str, hosted: dict[str, str | None]) -> str:
    """Point each body image at its platform URL, or replace it with its alt text."""

    def replace(match: re.Match[str]) -> str:
        src, alt = html.unescape(match.group(1)), match.group(2)
        url = hosted.get(src)
        if url:
            return f'<img src="{html.escape(url)}" alt="{alt}">'
        return alt  # already escaped by the serializer

    return _IMG.sub(replace, content)


def utf16_length(text: str) -> int:
    """字 as counted conservatively: characters outside the BMP (most emoji) count twice."""
    return len(text.encode("utf-16-le")) // 2


def _rehostable(src: str) -> bool:
    """Body images the transport can fetch; local paths in body HTML are never read."""
    return src.startswith(("http://", "https://", "media/"))


def _cell_attributes(name: str, attrs: list[tuple[str, str | None]]) -> str:
    if name not in ("td", "th"):
        return ""
    kept = [
        f' {key}="{value}"'
        for key, value in attrs
        if key in ("colspan", "rowspan") and value and _SPAN_ATTRIBUTE.match(value)
    ]
    return "".join(kept)
