"""Tracked links: a channel's `utm` table added to the article link in its copy.

`[channels.weibo] utm = {source = "weibo", medium = "social", campaign = "{id}"}`
puts `utm_source=weibo&utm_medium=social&utm_campaign=<article id>` on the
link that channel prints, so the site's analytics can tell which channel
brought a reader. Only the printed link changes: the article's `url` (its
identity, feed guids, reconciliation lookups) never does. The article's
own query is kept byte for byte; a parameter the channel sets replaces one
of the same name already there, so a link never carries two values.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote_plus, urlencode, urlsplit, urlunsplit

from publisher.config.settings import ChannelConfig
from publisher.domain.article import Article
from publisher.domain.errors import ConfigError

#: The campaign parameters analytics tools read, as `utm` table keys.
UTM_KEYS = ("source", "medium", "campaign", "term", "content")
PLACEHOLDERS = frozenset({"id", "channel", "date"})
_FORMATTER = string.Formatter()


@dataclass(frozen=True)
class LinkTracking:
    """The `utm` parameters one channel adds, as templates; empty means untracked."""

    channel: str
    templates: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, config: ChannelConfig) -> LinkTracking:
        """Read and check `[channels.NAME] utm`; a mistake stops the process at start."""
        raw: Any = config.option("utm")
        where = f"channels.{config.name}.utm"
        if raw is None:
            return cls(config.name)
        if not isinstance(raw, Mapping) or not raw:
            raise ConfigError(f'{where}: must be a table such as {{source = "weibo"}}')
        templates: list[tuple[str, str]] = []
        for key in UTM_KEYS:  # a fixed order: the same link for every run
            if key in raw:
                templates.append((f"utm_{key}", _template(f"{where}.{key}", raw[key])))
        unknown = sorted(set(raw) - set(UTM_KEYS))
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(UTM_KEYS)})")
        return cls(config.name, tuple(templates))

    def parameters(self, article: Article, today: datetime | None = None) -> list[tuple[str, str]]:
        """The parameters for `article`, placeholders filled in."""
        values = {"id": article.id, "channel": self.channel, "date": _date(article, today)}
        return [(name, template.format_map(values)) for name, template in self.templates]

    def link(self, article: Article, today: datetime | None = None) -> str:
        """The article link as this channel prints it."""
        if not self.templates:
            return article.url
        return with_query(article.url, self.parameters(article, today))


def with_query(url: str, parameters: list[tuple[str, str]]) -> str:
    """`url` with `parameters` set: its other query pieces untouched, same names replaced."""
    parts = urlsplit(url)
    names = {name for name, _ in parameters}
    kept = [
        piece
        for piece in parts.query.split("&")
        if piece and unquote_plus(piece.split("=", 1)[0]) not in names
    ]
    query = "&".join([*kept, urlencode(parameters, quote_via=quote)])
    return urlunsplit(parts._replace(query=query))


def _template(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: must be a non-empty string")
    try:
        fields = {name for _, name, _, _ in _FORMATTER.parse(value) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc} (double a brace to write it literally)") from None
    unknown = sorted(fields - PLACEHOLDERS)
    if unknown:
        known = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
        raise ConfigError(f"{where}: unknown placeholder {{{unknown[0]}}} (known: {known})")
    return value


def _date(article: Article, today: datetime | None) -> str:
    """`{date}`: the article's publication day where it was published, else today (UTC)."""
    moment = article.published_at or article.publish_at
    if moment is None:
        moment = today or datetime.now(UTC)
    return moment.date().isoformat()
