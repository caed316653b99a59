"""`publisher serve`: the whole product on one machine, long-running, for editors.

The API runs in this process under uvicorn; a Celery worker with the sweeper
schedule (`publisher worker --beat`) runs as a child process in a session of
its own. Ctrl-C or SIGTERM stops the API first (no new work is accepted),
then the worker with a warm shutdown (it finishes the attempt in hand), then
the embedded Redis if this process started it. If the worker dies on its
own, the API stops too and `serve` returns 1, so a supervisor restarts the
pair instead of leaving an API whose deliveries never move.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

import uvicorn

from publisher.api import create_app
from publisher.broker import EmbeddedRedis
from publisher.runtime import Runtime
from publisher.settings import Settings

log = logging.getLogger(__name__)

WORKER_STOP_TIMEOUT = 30.0


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run the API and one worker until interrupted; 0 on a clean stop.

    `env` is the worker's environment (default: this process's); it must
    describe the same deployment as `settings`.
    """
    embedded = EmbeddedRedis(settings.data_dir)
    started_redis = settings.embedded_redis and embedded.ensure_running()
    runtime = Runtime(settings)
    worker: subprocess.Popen[bytes] | None = None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        runtime.store.migrate()
        worker = start_worker(settings, env)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(runtime), host=host, port=port, log_level="info", access_log=False
            )
        )
        watcher = threading.Thread(target=_watch, args=(worker, server), daemon=True)
        watcher.start()
        _announce(settings, host, port)
        # uvicorn re-raises the signal it stopped for, after its clean shutdown.
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
        if worker.poll() is not None:
            log.error("the worker exited (%s); see %s", worker.returncode, _worker_log(settings))
            return 1
        return 0
    finally:
        if worker is not None:
            stop_worker(worker)
        runtime.close()
        if started_redis:
            embedded.stop()
        signal.signal(signal.SIGTERM, previous)


def start_worker(
    settings: Settings, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`publisher worker --beat` in its own session, so a Ctrl-C meant for the
    terminal reaches only this process, which then stops the worker warmly."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with _worker_log(settings).open("ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "publisher", "worker", "--beat", "--loglevel", "INFO"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=dict(os.environ if env is None else env),
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


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _watch(worker: subprocess.Popen[bytes], server: uvicorn.Server) -> None:
    worker.wait()
    server.should_exit = True


def _worker_log(settings: Settings) -> Path:
    return settings.data_dir / "worker.log"


def _announce(settings: Settings, host: str, port: int) -> None:
    base = f"http://{host}:{port}"
    print(f"publisher: API on {base} (OpenAPI at {base}/docs), data in {settings.data_dir}")
    print(f"publisher: worker log {_worker_log(settings)}; feeds at {base}/feeds/")
    if not settings.api_tokens:
        print("publisher: PUBLISHER_API_TOKENS is empty, so the API refuses every change")
    sys.stdout.flush()
