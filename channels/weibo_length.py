"""Weibo's length rule and its limit, together: how many 字 a status is.

Kept apart from `channels.weibo` so the Weibo sandbox can count exactly as
the channel does without importing the transport (and the core's rate
limiter with it). Nothing else may own this rule: the channel declares it
as its `text_limits`, the sandbox refuses what it counts over the limit.
"""

from __future__ import annotations

import math

import regex

#: 字 in one status, as counted by `weibo_length`.
MAX_LENGTH = 140

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
