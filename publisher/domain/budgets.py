"""Markup budgets: what an article body may cost before any parser sees it.

Every later step is linear in the markup, but with large constants where it
is pure Python (`publisher.html.to_text` runs `html.parser` several times per
article, ~3 µs per tag or character reference) and quadratic in nesting
depth in the sanitizer's tree builder for block elements (20,000 nested
`<div>` took 4.6 s; 200,000 did not finish). So a body is measured first, in
one regex pass and a few `str.count`s, and refused with an `InputError`
naming the field when it nests deeper than `MAX_NESTING` or holds more than
`MAX_MARKUP` markup characters (`<`, `>`, `&`, no-break spaces: each becomes
a tag edge or a character reference after sanitizing). Real articles stay
far below both: a 10,000-word feature has ~2,000 tags.
"""

from __future__ import annotations

import re

from publisher.domain.errors import InputError

#: The deepest element nesting accepted in a body (real articles stay under 20).
MAX_NESTING = 100
#: Markup characters accepted in a body: about 25,000 tags.
MAX_MARKUP = 100_000

# Start and end tags; comments and declarations do not nest.
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)[^>]*?(/?)>")
#: Elements that never hold children, and elements whose end tag is optional
#: (a new one closes the last): neither deepens the tree the way they look to.
_FLAT = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
        "p",
        "li",
        "dt",
        "dd",
        "tr",
        "td",
        "th",
        "option",
        "thead",
        "tbody",
        "tfoot",
        "colgroup",
        "rb",
        "rt",
        "rp",
    ]
)


def check_markup(field: str, html: str) -> None:
    """Refuse `html` past the budgets, before it is sanitized or parsed."""
    markup = html.count("<") + html.count(">") + html.count("&") + html.count("\xa0")
    if markup > MAX_MARKUP:
        raise InputError(
            field, f"holds {markup:,} markup characters (<, >, &); the limit is {MAX_MARKUP:,}"
        )
    check_nesting(field, html)


def check_nesting(field: str, html: str) -> None:
    """Refuse HTML that nests elements deeper than `MAX_NESTING`, in one linear scan.

    The count is an upper bound of the real depth (unclosed elements stay
    open), so nothing deeper ever reaches the sanitizer.
    """
    open_names: list[str] = []
    for match in _TAG.finditer(html):
        closing, name, self_closing = match.groups()
        name = name.lower()
        if self_closing or name in _FLAT:
            continue
        if closing:
            # Only an end tag that closes something open counts: a stray `</b>`
            # closes nothing in the parser, so it must not lower the count here.
            if name in open_names:
                del open_names[len(open_names) - 1 - open_names[::-1].index(name) :]
            continue
        open_names.append(name)
        if len(open_names) > MAX_NESTING:
            raise InputError(field, f"nests markup more than {MAX_NESTING} levels deep")
