"""Measuring and cutting text the way platforms count it.

One cutter serves every channel: it is given a *measure* (how the platform
counts a string) and a limit, and cuts at the last sentence or clause
boundary that fits (knowing CJK punctuation), never inside a grapheme or a
URL. Channels differ only in the measure they pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import regex

Measure = Callable[[str], int]

URL_PATTERN = regex.compile(r"https?://[^\s<>\"'，。！？；、）》」】]+")
_GRAPHEME = regex.compile(r"\X")
# Where a cut reads well, best first: sentence ends, then clause breaks, then spaces.
_SENTENCE_END = "。！？!?.…"
_CLAUSE_END = "；;，,、：:"
ELLIPSIS = "…"


def graphemes(text: str) -> list[str]:
    return _GRAPHEME.findall(text)


def grapheme_length(text: str) -> int:
    return len(graphemes(text))


# Mastodon's URL extractor never ends a URL on these (twitter_regex.rb,
# valid_url_path_ending_chars): "see https://a.org/x." counts the "." as text.
_MASTODON_URL_NOT_LAST = set("!*\"'<>;:=,.$%[]~&|@?(")


def mastodon_length(text: str, url_weight: int = 23) -> int:
    """Mastodon: grapheme clusters, every URL a fixed weight.

    Trailing punctuation the server leaves out of a URL counts as text, so
    the count is never below the server's (a ")" closing a "(" stays in).
    """
    total, last = 0, 0
    for match in URL_PATTERN.finditer(text):
        url = _mastodon_url(match.group())
        total += grapheme_length(text[last : match.start()]) + url_weight
        last = match.start() + len(url)
    return total + grapheme_length(text[last:])


def _mastodon_url(url: str) -> str:
    """`url` without the trailing characters Mastodon does not count as part of it."""
    while len(url) > 1:
        last = url[-1]
        unbalanced = last == ")" and url.count(")") > url.count("(")
        if last not in _MASTODON_URL_NOT_LAST and not unbalanced:
            break
        url = url[:-1]
    return url


# Weibo's URL recogniser is ASCII-only (WeCase's bug-for-bug counter): a URL
# glued to Chinese text ends where the Chinese starts, and that text counts.
WEIBO_URL_PATTERN = regex.compile(r"https?://[^\s<>\"'\u007f-\U0010ffff]+")


def weibo_length(text: str) -> int:
    """Weibo 字: ASCII counts half, any other code point one, a URL ten (if ≤140 bytes)."""
    units, last = 0, 0
    for match in WEIBO_URL_PATTERN.finditer(text):
        units += _weibo_units(text[last : match.start()])
        size = len(match.group().encode())
        units += 20 if size <= 140 else size - 140 + 20
        last = match.end()
    units += _weibo_units(text[last:])
    return math.ceil(units / 2)


def _weibo_units(text: str) -> int:
    return sum(1 if ord(ch) < 128 else 2 for ch in text)


def _atoms(text: str) -> list[str]:
    """Graphemes, except that each URL is one indivisible atom."""
    atoms: list[str] = []
    last = 0
    for match in URL_PATTERN.finditer(text):
        atoms.extend(graphemes(text[last : match.start()]))
        atoms.append(match.group())
        last = match.end()
    atoms.extend(graphemes(text[last:]))
    return atoms


def cut(text: str, limit: int, measure: Measure = grapheme_length, ellipsis: str = ELLIPSIS) -> str:
    """`text` if it fits, else the longest well-placed prefix that fits with `ellipsis`.

    Prefers a sentence end (kept, no ellipsis), then a clause break, then a
    space, provided the cut keeps at least half of what would fit; otherwise
    cuts between graphemes. A URL is never cut.
    """
    if measure(text) <= limit:
        return text
    atoms = _atoms(text)
    # Longest prefix (in atoms) that fits together with the ellipsis.
    lo, hi = 0, len(atoms)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure("".join(atoms[:mid]).rstrip() + ellipsis) <= limit:
            lo = mid
        else:
            hi = mid - 1
    fit = lo
    if fit == 0:
        return ellipsis if measure(ellipsis) <= limit else ""
    floor = max(1, fit // 2)
    for i in range(fit, floor - 1, -1):
        if _breaks_after(atoms, i, _SENTENCE_END):
            return "".join(atoms[:i]).rstrip()  # a whole sentence reads complete
    for marks in (_CLAUSE_END, " "):
        for i in range(fit, floor - 1, -1):
            if _breaks_after(atoms, i, marks):
                return "".join(atoms[: i - 1]).rstrip() + ellipsis
    return "".join(atoms[:fit]).rstrip() + ellipsis


# Closing quotes and brackets stay with the sentence they close: 。” and ." end one sentence.
_CLOSERS = "\"'”’」』）)】》"


def sentences(text: str) -> list[str]:
    """`text` split into sentences at the same boundaries `cut` prefers.

    A CJK full stop always ends a sentence; an ASCII one only before a space
    or the end ("50.2", "10:30" and "U.S.A" stay whole), and closing quotes or
    brackets after the mark stay with it. URLs are never split.
    """
    atoms = _atoms(text)
    found: list[str] = []
    start = 0
    i = 1
    while i <= len(atoms):
        if atoms[i - 1] in _SENTENCE_END:
            end = i
            while end < len(atoms) and atoms[end] in _CLOSERS:
                end += 1
            if not atoms[i - 1].isascii() or end == len(atoms) or atoms[end].isspace():
                found.append("".join(atoms[start:end]).strip())
                start = i = end
        i += 1
    found.append("".join(atoms[start:]).strip())
    return [s for s in found if s]


def _breaks_after(atoms: list[str], i: int, marks: str) -> bool:
    """Whether atom i-1 is one of `marks` and really ends a sentence or clause.

    ASCII punctuation only does when a space or the end follows: the "." in
    "50.2", the ":" in "10:30" and the "," in "50,000" are not boundaries.
    CJK punctuation is never followed by a space, so it always counts.
    """
    mark = atoms[i - 1]
    if mark not in marks:
        return False
    if mark.isascii() and not mark.isspace():
        return i == len(atoms) or atoms[i].isspace()
    return True
