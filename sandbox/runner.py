"""Starting the platform sandboxes: for `publisher sandbox` and `publisher demo`.

A sandbox is started for every channel whose table says `sandbox = true`,
on its `base_url`'s port (which must be on this machine), so the matrix file
alone says where each channel sends, sandbox or real platform. A channel
whose `base_url` merely happens to be on loopback (a newsroom's gateway, a
test double) is left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI

from publisher.config.settings import ChannelConfig, Settings
from publisher.domain.errors import ConfigError
from sandbox import speech, wechat, weibo
from sandbox.server import BackgroundServer

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class SandboxKind:
    create_app: Callable[[], FastAPI]
    #: The credentials the sandbox accepts, by channel option (`<option>_env` names the variable).
    credentials: Mapping[str, str]


KINDS: dict[str, SandboxKind] = {
    "weibo": SandboxKind(weibo.create_app, {"access_token": weibo.DEFAULT_TOKEN}),
    "wechat": SandboxKind(
        wechat.create_app, {"appid": "wx-sandbox", "secret": wechat.DEFAULT_SECRET}
    ),
    # A voice channel with `engine = "http"` pointing here gets the speech stand-in.
    "voice": SandboxKind(speech.create_app, {"api_key": speech.DEFAULT_KEY}),
}


@dataclass
class Sandboxes:
    """Running sandboxes by channel name, with their follower-facing URLs."""

    servers: dict[str, BackgroundServer] = field(default_factory=dict)

    @property
    def urls(self) -> dict[str, str]:
        return {name: server.url for name, server in self.servers.items()}

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()


def sandboxed_channels(settings: Settings) -> list[ChannelConfig]:
    """The channels whose table asks for a sandbox (`sandbox = true`)."""
    chosen = []
    for config in settings.channels.values():
        if not config.sandbox:
            continue
        if config.type not in KINDS:
            raise ConfigError(
                f"channels.{config.name}.sandbox: there is no {config.type} sandbox "
                f"(there are: {', '.join(sorted(KINDS))})"
            )
        if not config.base_url or urlsplit(config.base_url).hostname not in LOCAL_HOSTS:
            raise ConfigError(
                f"channels.{config.name}.sandbox: base_url must be on this machine "
                "(http://127.0.0.1:PORT)"
            )
        chosen.append(config)
    return chosen


def start_sandboxes(settings: Settings) -> Sandboxes:
    running = Sandboxes()
    try:
        for config in sandboxed_channels(settings):
            parts = urlsplit(config.base_url or "")
            if not parts.port:
                raise ConfigError(f"channels.{config.name}.base_url needs a port for the sandbox")
            server = BackgroundServer(
                KINDS[config.type].create_app(), parts.hostname or "", parts.port
            )
            try:
                server.start()
            except (RuntimeError, OSError):
                raise ConfigError(
                    f"channels.{config.name}: cannot start the {config.type} sandbox on "
                    f"{config.base_url} (is the port in use?)"
                ) from None
            running.servers[config.name] = server
    except BaseException:
        running.stop()
        raise
    return running


def sandbox_credentials(settings: Settings, env: Mapping[str, str]) -> dict[str, Any]:
    """Environment entries giving each sandboxed channel the credentials its sandbox
    accepts, for variables the operator has not set."""
    extra: dict[str, Any] = {}
    for config in sandboxed_channels(settings):
        for option, value in KINDS[config.type].credentials.items():
            variable = config.option(f"{option}_env")
            if variable and not env.get(variable):
                extra[variable] = value
    return extra
