"""Platform-neutral text tools: graphemes, URLs, and one cutter for every channel.

The cutter is given a *measure* (how a platform counts a string) and a
limit, and cuts at the last sentence or clause boundary that fits (knowing
CJK punctuation), never inside a grapheme or a URL. Each platform's own
measure lives beside its channel (`channels/weibo_length.py`,
`channels/mastodon_length.py`), with the limit it is measured against.
Where text must be split rather than cut (a Mastodon thread, the voice
edition's chunks), `pack` groups its `sentences` into pieces that fit.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator

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


def _atoms(text: str) -> Iterator[str]:
    """Graphemes, except that each URL is one indivisible atom; lazily, so a cut of
    a huge text reads only the start it can keep."""
    last = 0
    for match in URL_PATTERN.finditer(text):
        for grapheme in _GRAPHEME.finditer(text, last, match.start()):
            yield grapheme.group()
        yield match.group()
        last = match.end()
    for grapheme in _GRAPHEME.finditer(text, last):
        yield grapheme.group()


def cut(text: str, limit: int, measure: Measure = grapheme_length, ellipsis: str = ELLIPSIS) -> str:
    """`text` if it fits, else the longest well-placed prefix that fits with `ellipsis`.

    Prefers a sentence end (kept, no ellipsis), then a clause break, then a
    space, provided the cut keeps at least half of what would fit; otherwise
    cuts between graphemes. A URL is never cut.
    """
    # Every measure here gives an atom at least half a unit (Weibo's ASCII), so
    # no prefix longer than 2 × limit atoms can fit: reading only that many keeps
    # a cut of a huge text (a 250,000-character paragraph) cheap.
    cap = 2 * limit + 2
    atoms = list(itertools.islice(_atoms(text), cap))
    if len(atoms) < cap and measure(text) <= limit:
        return text
    # Longest prefix (in atoms) that fits together with the ellipsis.
    lo, hi = 0, min(len(atoms), cap - 1)
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
    atoms = list(_atoms(text))
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


def pack(
    paragraphs: Iterable[str],
    limit: int,
    measure: Measure = grapheme_length,
    *,
    paragraph_break: str = " ",
) -> list[str]:
    """The paragraphs' sentences, in order, joined into as few chunks as fit `limit`.

    One splitter serves every channel that must cut long text into pieces
    (a Mastodon thread's parts, the voice edition's chunks): sentences come
    from `sentences` (CJK-aware), a chunk never ends inside one unless the
    sentence alone exceeds the limit, and then it is split at its last
    clause break (；，、：, kept with the first piece), else a space, else
    between graphemes; a URL is never split. Sentences of one paragraph keep
    the space the text had between them (none after "。"), paragraphs are
    joined by `paragraph_break`.
    """
    chunks: list[str] = []
    for paragraph in paragraphs:
        glue, end = paragraph_break, 0
        for sentence in sentences(paragraph):
            start = paragraph.find(sentence, end)
            if end and start >= 0:
                glue = paragraph[end:start]  # the text's own space between them, or none
            end = start + len(sentence) if start >= 0 else end
            for piece in _fitting(sentence, limit, measure):
                joined = chunks[-1] + glue + piece if chunks else ""
                if chunks and measure(joined) <= limit:
                    chunks[-1] = joined
                else:
                    chunks.append(piece)
                glue = " "
    return chunks


def _fitting(sentence: str, limit: int, measure: Measure) -> Iterator[str]:
    """`sentence` in pieces that each fit `limit`, split where it reads best."""
    rest, cap = sentence, 2 * limit + 2  # as in `cut`: no prefix longer than `cap` fits
    while rest:
        atoms = list(itertools.islice(_atoms(rest), cap))
        if len(atoms) < cap and measure(rest) <= limit:
            yield rest
            return
        lo, hi = 0, len(atoms) - 1
        while lo < hi:  # the longest prefix (in atoms) that fits
            mid = (lo + hi + 1) // 2
            if measure("".join(atoms[:mid]).rstrip()) <= limit:
                lo = mid
            else:
                hi = mid - 1
        at = max(lo, 1)  # an atom wider than the limit (a URL) goes alone
        ends = range(lo, max(1, lo // 2) - 1, -1)  # keep at least half of what fits
        for marks in (_CLAUSE_END, " "):
            found = next((i for i in ends if _breaks_after(atoms, i, marks)), None)
            if found is not None:
                at = found
                break
        head = "".join(atoms[:at])
        yield head.strip()
        rest = rest[len(head) :].lstrip()
