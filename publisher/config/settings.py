"""Settings: environment variables over the matrix TOML file.

One `Settings` object is built per process (`Settings.load()`) and passed
down; nothing reads `os.environ` elsewhere except to resolve a channel's
secret at the moment it is needed, so secrets never sit in a settings dump.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from publisher.config.channel import ChannelConfig
from publisher.config.jobs import IngestConfig, SyndicationConfig, ingest_tables, syndication_tables
from publisher.config.pacing import check_pacing
from publisher.domain.errors import ConfigError, InputError
from publisher.domain.i18n import available_locales, match_locale
from publisher.domain.states import Role
from publisher.domain.times import load_zone

DEFAULT_CONFIG = Path("config/matrix.toml")
BUILTIN_CONFIG = Path(__file__).with_name("default_matrix.toml")


class FeedSettings(BaseModel):
    """The `[feeds]` table: what the site's own feed documents say about the site."""

    model_config = ConfigDict(extra="forbid")

    title: str = "Newsroom"
    home_page_url: str = "https://news.example.org/"
    description: str = "Latest stories"
    language: str | None = None
    items: int = Field(default=50, ge=1, le=10_000)
    hub_url: str | None = None
    #: Bytes of item content one document may carry; past it, items carry their summary.
    max_bytes: int = Field(default=4_000_000, ge=10_000)


class Branding(BaseModel):
    """The newsroom's name and colours, from `[newsroom]`: what a generated cover card
    shows when a channel needs a cover and the article has none."""

    model_config = ConfigDict(extra="forbid")

    name: str
    brand_color: str = Field(default="#b3261e", pattern=r"^#[0-9a-fA-F]{6}$")
    text_color: str = Field(default="#ffffff", pattern=r"^#[0-9a-fA-F]{6}$")


NotificationEvent = Literal["failed", "reauth"]


class NotificationConfig(BaseModel):
    """One `[notifications.NAME]` table: a webhook told when a delivery fails for good.

    `failed` is any final failure except a credential one, which is `reauth`
    (the channel raised `ReauthRequiredError`); each failure is one event.
    The body is signed with the key held in the variable `secret_env` names.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    url: str
    secret_env: str = Field(min_length=1)
    events: tuple[NotificationEvent, ...] = Field(default=("failed", "reauth"), min_length=1)
    channels: tuple[str, ...] | None = None  # None: every channel
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_base: float = Field(default=2.0, gt=0)
    backoff_cap: float = Field(default=900.0, gt=0)
    timeout: float = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return url

    def wants(self, event: str, channel: str) -> bool:
        return event in self.events and (self.channels is None or channel in self.channels)

    def secret(self, env: Mapping[str, str] | None = None) -> bytes:
        """The HMAC key, read from the environment now; the error names the variable only."""
        value = (env if env is not None else os.environ).get(self.secret_env)
        if not value:
            raise ConfigError(
                f"notifications.{self.name}: environment variable {self.secret_env} is empty"
            )
        return value.encode()


def _float_env(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"{name}: must be greater than 0")
    return value


def _newsroom_timezone(
    env: Mapping[str, str], matrix: Mapping[str, Any], config_path: Path
) -> str | None:
    """`PUBLISHER_TIMEZONE`, else `[newsroom] timezone`: an IANA name, checked now."""
    newsroom = matrix.get("newsroom") or {}
    if not isinstance(newsroom, dict):
        raise ConfigError(f"{config_path}: [newsroom] must be a table")
    unknown = sorted(set(newsroom) - {"timezone", "locale", "approval", *BRANDING_KEYS})
    if unknown:
        raise ConfigError(f"{config_path}: [newsroom] {unknown[0]}: unknown setting")
    name: Any = env.get("PUBLISHER_TIMEZONE") or newsroom.get("timezone")
    where = (
        "PUBLISHER_TIMEZONE"
        if env.get("PUBLISHER_TIMEZONE")
        else f"{config_path}: [newsroom] timezone"
    )
    if name is None or name == "":
        return None
    if not isinstance(name, str):
        raise ConfigError(f"{where}: must be an IANA time zone name such as Asia/Shanghai")
    try:
        load_zone("timezone", name.strip())
    except InputError as exc:
        raise ConfigError(f"{where}: {exc.problem}") from None
    return name.strip()


BRANDING_KEYS = frozenset({"name", "brand_color", "text_color"})


def _newsroom_locale(
    env: Mapping[str, str], matrix: Mapping[str, Any], config_path: Path
) -> str | None:
    """`PUBLISHER_LOCALE`, else `[newsroom] locale` (`zh-CN`, `en`): the language the
    CLI, the dashboard and the API speak when the reader asks for none we have."""
    newsroom = matrix.get("newsroom") or {}
    name: Any = env.get("PUBLISHER_LOCALE") or newsroom.get("locale")
    where = (
        "PUBLISHER_LOCALE" if env.get("PUBLISHER_LOCALE") else f"{config_path}: [newsroom] locale"
    )
    if name is None or name == "":
        return None
    found = match_locale(name) if isinstance(name, str) else None
    if found is None:
        known = ", ".join(tag.replace("_", "-") for tag in available_locales())
        raise ConfigError(f"{where}: {name!r} is not a language we have ({known})")
    return found


def _branding(matrix: Mapping[str, Any], feeds: FeedSettings, config_path: Path) -> Branding:
    """`[newsroom] name, brand_color, text_color`; the name defaults to the feeds' title."""
    newsroom = matrix.get("newsroom") or {}
    given = {k: v for k, v in newsroom.items() if k in BRANDING_KEYS}
    try:
        return Branding(**{"name": feeds.title, **given})
    except ValidationError as exc:
        raise ConfigError(f"{config_path}: [newsroom] {_first_error(exc)}") from None


def _parse_tokens(raw: str) -> tuple[dict[str, str], dict[str, Role]]:
    """`name:token[:role],…` → ({token: name}, {token: role}); a token without a
    role is in the first only. The error never echoes a token."""
    tokens: dict[str, str] = {}
    roles: dict[str, Role] = {}
    for position, item in enumerate(filter(None, (p.strip() for p in raw.split(","))), 1):
        name, sep, rest = item.partition(":")
        token, _, role = rest.partition(":")
        if not sep or not name.strip() or not token.strip():
            raise ConfigError(
                f"PUBLISHER_API_TOKENS: entry {position} is not of the form name:token[:role]"
            )
        tokens[token.strip()] = name.strip()
        if role.strip():
            if role.strip() not in {r.value for r in Role}:
                known = ", ".join(Role)
                raise ConfigError(
                    f"PUBLISHER_API_TOKENS: entry {position} ({name.strip()}): "
                    f"role {role.strip()!r} is not one of {known}"
                )
            roles[token.strip()] = Role(role.strip())
    return tokens, roles


def _approval(matrix: Mapping[str, Any], config_path: Path) -> bool:
    """`[newsroom] approval = true`: writers' articles wait for an editor."""
    value = (matrix.get("newsroom") or {}).get("approval", False)
    if not isinstance(value, bool):
        raise ConfigError(f"{config_path}: [newsroom] approval: must be true or false")
    return value


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    config_path: Path
    database_url: str
    redis_url: str | None
    redis_prefix: str
    feeds: FeedSettings
    channels: dict[str, ChannelConfig]
    public_url: str
    api_tokens: dict[str, str] = field(default_factory=dict, repr=False)
    #: {token: role} for tokens given a role (`name:token:role`); the rest are editors.
    token_roles: dict[str, Role] = field(default_factory=dict, repr=False)
    #: `[newsroom] approval`: a writer's article waits for an editor's approval.
    approval: bool = False
    read_requires_token: bool = False
    #: `PUBLISHER_OPEN_READS`: preview, embargoed content and attempt logs readable
    #: without a token even when tokens are configured (the old behaviour).
    open_reads: bool = False
    lease_seconds: float = 120.0
    sweep_interval: float = 1.0
    requeue_after: float = 30.0
    #: How long a feed rebuild holds its channel; a killed worker's hold ends after it.
    feed_rebuild_lease: float = 15.0
    #: A busy rebuild's follow-up waits this long; a rebuild on a quiet feed starts at once.
    feed_rebuild_spacing: float = 0.2
    worker_concurrency: int = 2
    #: Drains of one channel type that may run at once, across every worker.
    drains: int = 2
    #: How long a drain holds its place without renewing it; a killed worker's ends after it.
    drain_lease: float = 15.0
    #: A busy drain's follow-up waits this long, so it takes a batch; after a quiet one, at once.
    drain_spacing: float = 0.05
    #: The newsroom's IANA zone: times given without a UTC offset are read in it.
    timezone: str | None = None
    #: The newsroom's language (a catalogue name, `zh_CN`), when it names one.
    locale: str | None = None
    notifications: dict[str, NotificationConfig] = field(default_factory=dict)
    ingest: dict[str, IngestConfig] = field(default_factory=dict)
    syndication: dict[str, SyndicationConfig] = field(default_factory=dict)
    beat_lock_seconds: float = 30.0
    branding: Branding = field(default_factory=lambda: Branding(name="Newsroom"))
    #: `PUBLISHER_FETCH_ALLOW`: hosts and CIDRs that URLs from content may reach even
    #: though they are not public (see `publisher.net.guard`, which parses them).
    fetch_allow: tuple[str, ...] = ()

    @property
    def feeds_dir(self) -> Path:
        return self.data_dir / "feeds"

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url

    def channel(self, name: str) -> ChannelConfig:
        try:
            return self.channels[name]
        except KeyError:
            raise ConfigError(f"unknown channel {name!r}") from None

    def key(self, *parts: str) -> str:
        """A Redis key in this deployment's namespace (tests share one Redis)."""
        return self.redis_prefix + ":".join(parts)

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("PUBLISHER_DATA_DIR") or "var").resolve()
        config_path = _config_path(env)
        matrix = _read_matrix(config_path)

        try:
            feeds = FeedSettings(**matrix.get("feeds", {}))
        except ValidationError as exc:
            raise ConfigError(f"{config_path}: [feeds] {_first_error(exc)}") from None
        channels: dict[str, ChannelConfig] = {}
        for name, table in (matrix.get("channels") or {}).items():
            if not isinstance(table, dict):
                raise ConfigError(f"{config_path}: channels.{name} must be a table")
            try:
                channels[name] = ChannelConfig(name=name, **table)
            except ValidationError as exc:
                raise ConfigError(f"{config_path}: channels.{name}: {_first_error(exc)}") from None
        if not channels:
            raise ConfigError(f"{config_path}: no [channels.NAME] tables")
        notifications = _notifications(matrix, config_path, channels)
        ingest = ingest_tables(matrix, config_path, channels)
        syndication = syndication_tables(matrix, config_path, channels)
        newsroom_timezone = _newsroom_timezone(env, matrix, config_path)
        check_pacing(channels, newsroom_timezone, config_path)  # quiet_hours, min_spacing

        database_url = env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'publisher.db'}"
        tokens, roles = _parse_tokens(env.get("PUBLISHER_API_TOKENS", ""))
        port = env.get("PUBLISHER_PORT") or "8000"
        public_url = (env.get("PUBLISHER_PUBLIC_URL") or f"http://127.0.0.1:{port}").rstrip("/")
        return cls(
            data_dir=data_dir,
            config_path=config_path,
            database_url=database_url,
            redis_url=env.get("REDIS_URL") or None,
            redis_prefix=env.get("PUBLISHER_REDIS_PREFIX", "publisher:"),
            feeds=feeds,
            channels=channels,
            public_url=public_url,
            api_tokens=tokens,
            token_roles=roles,
            approval=_approval(matrix, config_path),
            read_requires_token=env.get("PUBLISHER_READ_REQUIRES_TOKEN", "") in ("1", "true"),
            open_reads=env.get("PUBLISHER_OPEN_READS", "") in ("1", "true"),
            lease_seconds=_float_env(env, "PUBLISHER_LEASE_SECONDS", 120.0),
            sweep_interval=_float_env(env, "PUBLISHER_SWEEP_INTERVAL", 1.0),
            requeue_after=_float_env(env, "PUBLISHER_REQUEUE_AFTER", 30.0),
            feed_rebuild_lease=_float_env(env, "PUBLISHER_FEED_REBUILD_LEASE", 15.0),
            feed_rebuild_spacing=_float_env(env, "PUBLISHER_FEED_REBUILD_SPACING", 0.2),
            worker_concurrency=int(_float_env(env, "PUBLISHER_WORKER_CONCURRENCY", 2)),
            drains=int(
                _float_env(
                    env, "PUBLISHER_DRAINS", _float_env(env, "PUBLISHER_WORKER_CONCURRENCY", 2)
                )
            ),
            drain_lease=_float_env(env, "PUBLISHER_DRAIN_LEASE", 15.0),
            drain_spacing=_float_env(env, "PUBLISHER_DRAIN_SPACING", 0.05),
            timezone=newsroom_timezone,
            locale=_newsroom_locale(env, matrix, config_path),
            notifications=notifications,
            ingest=ingest,
            syndication=syndication,
            beat_lock_seconds=_float_env(env, "PUBLISHER_BEAT_LOCK_SECONDS", 30.0),
            branding=_branding(matrix, feeds, config_path),
            fetch_allow=tuple(
                e for e in env.get("PUBLISHER_FETCH_ALLOW", "").replace(",", " ").split() if e
            ),
        )


def _notifications(
    matrix: Mapping[str, Any], config_path: Path, channels: Mapping[str, ChannelConfig]
) -> dict[str, NotificationConfig]:
    targets: dict[str, NotificationConfig] = {}
    for name, table in (matrix.get("notifications") or {}).items():
        where = f"{config_path}: notifications.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table")
        try:
            target = NotificationConfig(name=name, **table)
        except ValidationError as exc:
            raise ConfigError(f"{where}: {_first_error(exc)}") from None
        unknown = sorted(set(target.channels or ()) - set(channels))
        if unknown:
            raise ConfigError(f"{where}.channels: unknown channel {unknown[0]!r}")
        targets[name] = target
    return targets


def _config_path(env: Mapping[str, str]) -> Path:
    if env.get("PUBLISHER_CONFIG"):
        path = Path(env["PUBLISHER_CONFIG"])
        if not path.is_file():
            raise ConfigError(f"PUBLISHER_CONFIG: {path} does not exist")
        return path.resolve()
    return DEFAULT_CONFIG.resolve() if DEFAULT_CONFIG.is_file() else BUILTIN_CONFIG


def _read_matrix(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])
