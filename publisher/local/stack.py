"""The one-machine stack that `publisher demo` and `publisher serve` share.

The embedded Redis (unless `REDIS_URL` is set), the platform sandboxes the
matrix points at (with the credentials they accept, for variables the
operator left unset), the migrated store, and a Celery worker with the
sweeper schedule in a session of its own, so a Ctrl-C meant for the
terminal reaches only this process, which then stops the worker warmly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from publisher.config.settings import Settings
from publisher.coord.broker import EmbeddedRedis
from publisher.worker.runtime import Runtime
from sandbox.runner import Sandboxes, sandbox_credentials, start_sandboxes

WORKER_STOP_TIMEOUT = 30.0


@dataclass
class LocalStack:
    runtime: Runtime
    worker: subprocess.Popen[bytes]
    sandboxes: Sandboxes
    redis: EmbeddedRedis

    @property
    def worker_log(self) -> Path:
        return worker_log(self.runtime.settings)


@contextlib.contextmanager
def local_stack(settings: Settings, env: Mapping[str, str] | None = None) -> Iterator[LocalStack]:
    """Start everything; on exit stop the worker, the sandboxes, then Redis if started here."""
    embedded = EmbeddedRedis(settings.data_dir)
    started_redis = settings.embedded_redis and embedded.ensure_running()
    sandboxes = start_sandboxes(settings)
    base = dict(os.environ if env is None else env)
    credentials = sandbox_credentials(settings, base)
    os.environ.update(credentials)  # this process's channels need them too (WeChat polls)
    runtime = Runtime(settings)
    worker: subprocess.Popen[bytes] | None = None
    try:
        runtime.store.migrate()
        worker = start_worker(settings, {**base, **credentials})
        yield LocalStack(runtime, worker, sandboxes, embedded)
    finally:
        if worker is not None:
            stop_worker(worker)
        sandboxes.stop()
        runtime.close()
        if started_redis:
            embedded.stop()


def worker_log(settings: Settings) -> Path:
    return settings.data_dir / "worker.log"


def start_worker(settings: Settings, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with worker_log(settings).open("ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "publisher", "worker", "--beat", "--loglevel", "INFO"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )


def stop_worker(worker: subprocess.Popen[bytes], timeout: float = WORKER_STOP_TIMEOUT) -> None:
    if worker.poll() is not None:
        return
    try:
        os.killpg(worker.pid, signal.SIGTERM)  # warm shutdown: finish the attempt in hand
        worker.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)  # its deliveries' leases expire; the sweeper
        worker.wait()  # hands them to the next worker
    except ProcessLookupError:
        worker.wait()
