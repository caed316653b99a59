"""Which characters an article may hold: the rules every field is checked against.

Feeds are XML, and lxml refuses to write a character outside XML 1.0's `Char`
production (U+FFFE, U+FFFF, most C0 controls); an accepted title with U+FFFF
froze every later RSS rebuild. Lone surrogates cannot be encoded as UTF-8 at
all (Rust's nh3, the database driver and JSON encoders fail on them, as a 500).
So a field holding either is bad input, refused with the field's name before
anything else looks at the article.

Bidirectional *overrides and isolates* (U+202A–U+202E, U+2066–U+2069) in a
single-line field (a title, a byline, a tag) make the rest of the line, and
whatever a platform prints after it, read backwards: refused there. Bodies
keep them (right-to-left languages use them inside paragraphs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from publisher.domain.errors import InputError

# XML 1.0 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
# Surrogates (D800-DFFF) are outside it, so a lone one matches too.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_BIDI_CONTROL = re.compile("[\u202a-\u202e\u2066-\u2069]")
#: Fields shown on one line, where a bidi control reorders what follows it.
SINGLE_LINE = frozenset(
    [
        "id",
        "url",
        "title",
        "author",
        "source",
        "tags",
        "cover_image",
        "language",
        "timezone",
        "channels",
        "publish_at",
        "published_at",
    ]
)


def describe(ch: str) -> str:
    code = ord(ch)
    if 0xD800 <= code <= 0xDFFF:
        return f"a lone surrogate (U+{code:04X})"
    if code < 0x20:
        return f"the control character U+{code:04X}"
    return f"U+{code:04X}, which XML does not allow"


def check_text(field: str, value: str, *, single_line: bool) -> None:
    """`InputError` naming `field` if `value` holds a character it may not."""
    bad = _NOT_XML_CHAR.search(value)
    if bad is not None:
        raise InputError(field, f"contains {describe(bad.group())}")
    if single_line:
        bidi = _BIDI_CONTROL.search(value)
        if bidi is not None:
            raise InputError(field, f"contains the bidirectional control U+{ord(bidi.group()):04X}")


def check_fields(data: Mapping[str, Any]) -> None:
    """Every string in an article's raw fields, nested lists included (`tags[3]`)."""
    for key, value in data.items():
        name = str(key)
        check_text("field name", name, single_line=True)
        _check_value(name, value, single_line=name in SINGLE_LINE)


def _check_value(field: str, value: Any, *, single_line: bool) -> None:
    if isinstance(value, str):
        check_text(field, value, single_line=single_line)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value[:1000]):  # longer lists are refused by their rule
            _check_value(f"{field}[{i}]", item, single_line=single_line)
    elif isinstance(value, Mapping):
        for key, item in list(value.items())[:1000]:
            _check_value(f"{field}.{key}", item, single_line=single_line)


def scrub(text: str) -> str:
    """`text` with every character XML or UTF-8 cannot carry replaced by U+FFFD:
    for identities (a partner's guid) that are stored, never shown as content."""
    return _NOT_XML_CHAR.sub("\ufffd", text)
