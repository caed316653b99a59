"""What the voice edition reads: the title, then the article as a listener should hear it.

`publisher.html.to_text` is the plain text for screens (tables, code and
bare URLs kept verbatim); a listener needs other rules, so this module walks
the sanitized HTML itself: headings, list items and paragraphs become their
own sentences with a pause after, quotes are announced, tables and code are
summarised in one sentence, figures are read by their caption only, and URLs
are never read. Sentences are split CJK-aware and grouped into chunks short
enough for any engine by `publisher.domain.text.pack`, the splitter the
Mastodon thread uses too.

Everything here is pure, so `preview` shows exactly the script a delivery
will read, with its estimated duration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

import regex

from publisher.domain.article import Article
from publisher.domain.text import URL_PATTERN, grapheme_length, pack

#: Seconds of silence after each kind of piece.
PAUSE_TITLE = 1.0
PAUSE_HEADING = 0.8
PAUSE_BLOCK = 0.6
PAUSE_SENTENCE = 0.25
#: Longest chunk handed to an engine at once (graphemes).
MAX_CHUNK = 300
#: Speaking rates used for the estimate: graphemes per second, by primary subtag.
#: Measured with espeak at its default 175 words a minute (bench/voice.py).
RATES = {"zh": 3.6, "en": 14.0}
DEFAULT_RATE = 13.0

_CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_PICTOGRAPH = regex.compile(r"[\p{Extended_Pictographic}\uFE0F\u200D]")
_CLOSERS = "\"'”’」』）)】》"
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_BLOCKS = _HEADINGS | {"p", "li", "div", "section", "article", "figcaption", "dd", "dt"}

#: The sentences a listener hears instead of what cannot be read aloud.
PHRASES = {
    "zh": {
        "quote": "引文：",
        "end_quote": "引文完。",
        "table": "原文此处有一个表格，共{rows}行，请看文字版。",
        "code": "原文此处有一段代码，从略。",
        "stop": "。",
    },
    "en": {
        "quote": "Quote:",
        "end_quote": "End of quote.",
        "table": "The article has a table here, with {rows} rows; see the text version.",
        "code": "A code listing is left out here.",
        "stop": ".",
    },
}


@dataclass(frozen=True)
class Piece:
    """One chunk to synthesise and the silence (seconds) that follows it."""

    text: str
    pause: float


def spoken_language(article: Article, default: str | None) -> str:
    """The article's language, else the newsroom's, else guessed from its script."""
    if article.language:
        return article.language
    sample = article.title + " " + article.body_html[:2000]
    if len(_CJK.findall(sample)) * 4 > len(sample.split()):
        return "zh"
    return default or "en"


def _phrases(language: str) -> dict[str, str]:
    return PHRASES.get(language.split("-", 1)[0].lower(), PHRASES["en"])


class _Reader(HTMLParser):
    """Collects (text, pause) blocks from sanitized HTML."""

    def __init__(self, phrases: dict[str, str]) -> None:
        super().__init__(convert_charrefs=True)
        self.phrases = phrases
        self.blocks: list[tuple[str, float]] = []
        self._text: list[str] = []
        self._skip = 0  # inside a table or code listing
        self._rows = 0
        self._figure = 0
        self._caption = 0

    def _flush(self, pause: float = PAUSE_BLOCK) -> None:
        text = " ".join("".join(self._text).split())
        self._text = []
        if text:
            self.blocks.append((text, pause))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("table", "pre", "script", "style"):
            self._flush()
            self._skip += 1
            self._rows = 0 if tag == "table" else self._rows
        elif tag == "tr":
            self._rows += 1
        elif self._skip:
            return
        elif tag == "figure":
            self._flush()
            self._figure += 1
        elif tag == "figcaption":
            self._caption += 1
        elif tag == "blockquote":
            self._flush()
            self.blocks.append((self.phrases["quote"], PAUSE_SENTENCE))
        elif tag in _BLOCKS:
            self._flush()
        elif tag == "br":
            self._text.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("table", "pre", "script", "style"):
            self._skip = max(0, self._skip - 1)
            if tag == "table":
                self.blocks.append((self.phrases["table"].format(rows=self._rows), PAUSE_BLOCK))
            elif tag == "pre":
                self.blocks.append((self.phrases["code"], PAUSE_BLOCK))
        elif self._skip:
            return
        elif tag == "figure":
            self._flush()
            self._figure = max(0, self._figure - 1)
        elif tag == "figcaption":
            self._flush()
            self._caption = max(0, self._caption - 1)
        elif tag == "blockquote":
            self._flush()
            self.blocks.append((self.phrases["end_quote"], PAUSE_BLOCK))
        elif tag in _HEADINGS:
            self._flush(PAUSE_HEADING)
        elif tag in _BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._skip or (self._figure and not self._caption):
            return
        self._text.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def _ended(text: str, stop: str) -> str:
    """A heading or list item gets a full stop, so engines close its intonation."""
    return text if text.rstrip(_CLOSERS)[-1:] in tuple("。！？!?.…:：;；") else text + stop


def speakable(text: str, language: str) -> str:
    """`text` with what must not or cannot be read taken out or spelled for the ear.

    URLs and email addresses are dropped, emoji too. Mandarin years are read
    digit by digit (2024年 → 二〇二四年, as announcers do), ISO dates as 年月日 and
    percentages as 百分之…; English ISO dates become "22 April 2024" and year ranges "2024 to
    2026". Everything else is left to the engine (see the README).
    """
    text = URL_PATTERN.sub("", text)
    text = _EMAIL.sub("", text)
    text = _PICTOGRAPH.sub("", text)
    if language.lower().startswith("zh"):
        text = re.sub(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)", _chinese_date, text)
        text = re.sub(r"(\d{4})\s*[-–~至到]\s*(\d{4})\s*年", r"\1年至\2年", text)
        text = re.sub(r"(\d{4})(?=年)", lambda m: "".join(_ZH_DIGITS[d] for d in m[1]), text)
        text = re.sub(r"(\d+(?:\.\d+)?)\s*[%％]", r"百分之\1", text)
        text = regex.sub(r"(?<=\p{Han})\s+(?=\p{Han})", "，", text)  # a spaced headline
    else:
        text = re.sub(r"\b(\d{4})-(\d{2})-(\d{2})\b", _english_date, text)
        text = re.sub(r"\b(1\d{3}|20\d{2})\s*[-–]\s*(1\d{3}|20\d{2})\b", r"\1 to \2", text)
    text = re.sub(r"\(\s*\)|（\s*）", "", text)  # what is left of "(see https://…)"
    text = re.sub(r"\s+(?=[,.;:!?，。；：！？、])", "", text)
    return " ".join(text.split())


_ZH_DIGITS = dict(zip("0123456789", "〇一二三四五六七八九", strict=True))
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
)  # fmt: skip


def _chinese_date(match: re.Match[str]) -> str:
    return f"{match[1]}年{int(match[2])}月{int(match[3])}日"


def _english_date(match: re.Match[str]) -> str:
    year, month, day = int(match[1]), int(match[2]), int(match[3])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return match[0]
    return f"{day} {_MONTHS[month - 1]} {year}"


def build_script(article: Article, language: str) -> list[Piece]:
    """The title, then the body, as chunks with the pause after each."""
    phrases = _phrases(language)
    reader = _Reader(phrases)
    reader.feed(article.body_html)
    reader.close()
    blocks = [(article.title, PAUSE_TITLE), *reader.blocks]
    pieces: list[Piece] = []
    for text, pause in blocks:
        spoken = speakable(text, language)
        if not any(ch.isalnum() for ch in spoken):
            continue
        spoken = _ended(spoken, phrases["stop"])
        chunks = pack([spoken], MAX_CHUNK)  # sentences, grouped
        pieces.extend(Piece(chunk, PAUSE_SENTENCE) for chunk in chunks[:-1])
        pieces.append(Piece(chunks[-1], pause))
    return pieces


def script_text(pieces: list[Piece]) -> str:
    """The transcript: what is read, one block per paragraph."""
    out: list[str] = []
    for piece in pieces:
        glue = "" if not out or out[-1].endswith("\n\n") or _CJK.match(piece.text[:1]) else " "
        out.append(glue + piece.text + ("\n\n" if piece.pause > PAUSE_SENTENCE else ""))
    return "".join(out).strip() + "\n"


def estimate_seconds(pieces: list[Piece], language: str) -> float:
    """How long the episode should last, from typical speaking rates and the pauses."""
    rate = RATES.get(language.split("-", 1)[0].lower(), DEFAULT_RATE)
    spoken = sum(grapheme_length(p.text.replace(" ", "")) for p in pieces)
    return round(spoken / rate + sum(p.pause for p in pieces), 1)
