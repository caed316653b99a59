"""The matrix's recurring jobs: `[ingest.NAME]` partner feeds and `[syndication.NAME]` runs.

Validated when settings load, so a bad schedule, zone or channel name stops
the process at start with the table and key named, not at 20:00 on the
evening the digest was due.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from publisher.domain.cron import CronError, CronSchedule
from publisher.domain.errors import ConfigError

if TYPE_CHECKING:
    from publisher.config.channel import ChannelConfig

# Job names become part of article ids (`ingest-<name>-…`, `digest-<name>-…`).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
WINDOW_PATTERN = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def _template(text: str) -> str:
    try:
        text.format(date="2026-01-01", time="20:00", job="job")
    except (KeyError, IndexError, ValueError):
        raise ValueError("may only use {date}, {time} and {job} in braces") from None
    return text


def _http_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return url


class IngestConfig(BaseModel):
    """One `[ingest.NAME]` table: a partner's RSS, Atom or JSON feed polled for new items.

    Each new item becomes an article published to `channels` (every channel
    when unset) with the actor `ingest:NAME`. The first poll only remembers
    what the feed holds, unless `publish_first_poll` is true.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    url: str
    every: float = Field(default=300.0, ge=1)  # seconds between polls
    channels: tuple[str, ...] | None = Field(default=None, min_length=1)
    title_prefix: str | None = Field(default=None, max_length=60)
    source: str | None = Field(default=None, max_length=200)  # default: the feed's title
    tags: tuple[str, ...] = ()
    publish_first_poll: bool = False
    timeout: float = Field(default=15.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return _http_url(url)

    @property
    def actor(self) -> str:
        return f"ingest:{self.name}"


class SyndicationConfig(BaseModel):
    """One `[syndication.NAME]` table: a recurring run that sends recent articles again.

    `digest` publishes one article listing the newest `max_items` articles
    of the last `window` to `channel`; `each` gives each of them a delivery
    on `channel`, `spacing` seconds apart. Articles are ranked newest first.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    schedule: str
    timezone: str  # an IANA name; required, so "20:00" is never silently UTC
    channel: str
    mode: Literal["digest", "each"] = "digest"
    max_items: int = Field(default=8, ge=1, le=50)
    window: timedelta = timedelta(hours=24)
    spacing: float = Field(default=0.0, ge=0)  # seconds between "each" deliveries
    title: str = Field(default="Top stories, {date}", min_length=1, max_length=200)
    intro: str | None = Field(default=None, max_length=1000)
    url: str | None = None  # the digest's link; default: [feeds] home_page_url
    tags: tuple[str, ...] | None = None  # only articles with one of these tags
    misfire_grace: float = Field(default=3600.0, gt=0)  # a run later than this is skipped

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> timedelta:
        if isinstance(value, timedelta):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        else:
            match = WINDOW_PATTERN.match(str(value).strip().lower())
            if not match or not any(match.groups()):
                raise ValueError(f"{value!r} is not a duration such as '24h', '90m' or '1d12h'")
            d, h, m, s = (int(g or 0) for g in match.groups())
            seconds = d * 86400 + h * 3600 + m * 60 + s
        if seconds < 60:
            raise ValueError("must be at least one minute")
        return timedelta(seconds=seconds)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        return None if url is None else _http_url(_template(url))

    @field_validator("title")
    @classmethod
    def _title(cls, title: str) -> str:
        return _template(title)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{name!r} is not an IANA time zone such as 'Asia/Shanghai'") from None
        return name

    @model_validator(mode="after")
    def _cron(self) -> SyndicationConfig:
        try:
            self.cron  # noqa: B018 - parse now, so a bad expression fails at load
        except CronError as exc:
            raise ValueError(f"schedule: {exc}") from None
        return self

    @cached_property
    def cron(self) -> CronSchedule:
        return CronSchedule(self.schedule, self.timezone)

    @property
    def actor(self) -> str:
        return f"syndication:{self.name}"


def ingest_tables(
    matrix: Mapping[str, Any], config_path: Path, channels: Mapping[str, ChannelConfig]
) -> dict[str, IngestConfig]:
    feeds: dict[str, IngestConfig] = {}
    for name, table in _tables(matrix, "ingest", config_path):
        try:
            feed = IngestConfig(name=name, **table)
        except ValidationError as exc:
            raise ConfigError(f"{config_path}: ingest.{name}: {_first_error(exc)}") from None
        unknown = sorted(set(feed.channels or ()) - set(channels))
        if unknown:
            raise ConfigError(
                f"{config_path}: ingest.{name}.channels: unknown channel {unknown[0]!r}"
            )
        feeds[name] = feed
    return feeds


def syndication_tables(
    matrix: Mapping[str, Any], config_path: Path, channels: Mapping[str, ChannelConfig]
) -> dict[str, SyndicationConfig]:
    jobs: dict[str, SyndicationConfig] = {}
    for name, table in _tables(matrix, "syndication", config_path):
        where = f"{config_path}: syndication.{name}"
        try:
            job = SyndicationConfig(name=name, **table)
        except ValidationError as exc:
            raise ConfigError(f"{where}: {_first_error(exc)}") from None
        channel = channels.get(job.channel)
        if channel is None:
            raise ConfigError(f"{where}.channel: unknown channel {job.channel!r}")
        # How many articles a digest-capable channel takes is the channel type's own
        # fact (`max_articles`): `channels.check_matrix` checks it.
        jobs[name] = job
    return jobs


def _tables(
    matrix: Mapping[str, Any], kind: str, config_path: Path
) -> list[tuple[str, dict[str, Any]]]:
    section = matrix.get(kind) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{config_path}: [{kind}] must hold [{kind}.NAME] tables")
    found = []
    for name, table in section.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{config_path}: {kind}.{name} must be a table")
        if not NAME_PATTERN.match(name):
            raise ConfigError(
                f"{config_path}: {kind}.{name}: the name must be 1-40 letters, digits, '_' or '-'"
            )
        found.append((name, table))
    return found


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
