"""Per-channel copy: the override keys a channel type takes, and checking them.

An article's `overrides.<channel>` holds copy an editor wrote by hand for
one channel (a Weibo line, a WeChat title). Which keys a type takes and
how the platform limits each is the channel class's: it lists them in
`override_rules` and measures a value with `measure_override` (Weibo's
count, say, includes the link the status will carry). This module holds
the shared work: refusing an unknown key or an over-long value with an
`InputError` that names `overrides.<channel>.<key>` and the limit, and the
same measurement for the dashboard's live counter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from publisher.domain.article import Article
from publisher.domain.errors import InputError


@dataclass(frozen=True)
class OverrideRule:
    """One override key of a channel type: a limit in the platform's units, or choices."""

    key: str
    limit: int | None = None
    unit: str = "characters"
    choices: tuple[str, ...] = ()
    #: What the count covers beyond the value itself, for the editor ("with the link").
    counts: str = ""


@dataclass(frozen=True)
class Measured:
    """How much of its limit one override value uses, counted as the platform counts."""

    channel: str
    key: str
    used: int
    limit: int
    unit: str
    counts: str = ""

    @property
    def fits(self) -> bool:
        return self.used <= self.limit

    @property
    def field(self) -> str:
        return f"overrides.{self.channel}.{self.key}"

    def problem(self) -> str:
        extra = f" ({self.counts})" if self.counts else ""
        return f"is {self.used:,} {self.unit}{extra}; the limit is {self.limit:,} {self.unit}"

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key, "used": self.used, "limit": self.limit, "unit": self.unit,
            "counts": self.counts, "fits": self.fits,
        }  # fmt: skip


class Channel(Protocol):
    """What checking needs of a `channels.base.Channel` (which imports this module)."""

    type_name: ClassVar[str]
    override_rules: ClassVar[tuple[OverrideRule, ...]]

    @property
    def name(self) -> str: ...

    def measure_override(self, key: str, value: str, article: Article) -> int: ...

    def check_overrides(self, article: Article) -> None: ...


def given(channel: Channel, article: Article) -> Mapping[str, str]:
    """The overrides `article` holds for `channel` (empty: it formats as generated)."""
    return article.overrides.get(channel.name, {})


def measure(channel: Channel, article: Article) -> list[Measured]:
    """Each limited override of `channel` in `article`, measured; unknown keys refused."""
    found = (measure_one(channel, article, k, v) for k, v in given(channel, article).items())
    return [m for m in found if m is not None]


def measure_one(channel: Channel, article: Article, key: str, value: str) -> Measured | None:
    """One override measured (None: it has choices, not a limit); `InputError` for a key
    the channel type does not take or a value not among its choices."""
    rules = {rule.key: rule for rule in channel.override_rules}
    rule = rules.get(key)
    where = f"overrides.{channel.name}.{key}"
    if rule is None:
        takes = ", ".join(rules) or "none"
        problem = f"a {channel.type_name} channel takes no {key!r} override (it takes: {takes})"
        raise InputError(where, problem)
    if rule.choices and value not in rule.choices:
        raise InputError(where, f"{value[:40]!r} is not one of {', '.join(rule.choices)}")
    if rule.limit is None:
        return None
    used = channel.measure_override(key, value, article)
    return Measured(channel.name, key, used, rule.limit, rule.unit, rule.counts)


def check(channel: Channel, article: Article) -> None:
    """Refuse the first override of `channel` the platform would not take."""
    for measured in measure(channel, article):
        if not measured.fits:
            raise InputError(measured.field, measured.problem())


def check_all(channels: Mapping[str, Channel], article: Article) -> None:
    """Every override names a configured channel and passes that channel's rules."""
    for name in article.overrides:
        if name not in channels:
            known = ", ".join(sorted(channels))
            raise InputError(f"overrides.{name}", f"no such channel (configured: {known})")
        channels[name].check_overrides(article)


def overridden(channel: Channel, article: Article) -> Sequence[str]:
    """The payload's keys that came from the editor's override, for preview."""
    return sorted(given(channel, article))
