"""Mastodon's length rule and its stock limits, together.

Mastodon counts grapheme clusters and every URL as a fixed weight; an
instance may change both numbers (`GET /api/v2/instance`), so the channel
measures with the instance's weight and these are only the stock values.
"""

from __future__ import annotations

from publisher.domain.text import URL_PATTERN, grapheme_length

#: Stock Mastodon: characters in one status, and what every URL counts as.
MAX_CHARACTERS = 500
URL_WEIGHT = 23

# Mastodon's URL extractor never ends a URL on these (twitter_regex.rb,
# valid_url_path_ending_chars): "see https://a.org/x." counts the "." as text.
_URL_NOT_LAST = set("!*\"'<>;:=,.$%[]~&|@?(")


def mastodon_length(text: str, url_weight: int = URL_WEIGHT) -> int:
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
        if last not in _URL_NOT_LAST and not unbalanced:
            break
        url = url[:-1]
    return url
