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
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from types import FrameType

import uvicorn

from publisher.config.settings import Settings
from publisher.domain.i18n import _
from publisher.local.stack import LocalStack, local_stack
from publisher.web.api import create_app

log = logging.getLogger(__name__)


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
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with local_stack(settings, env) as stack:
            server = uvicorn.Server(
                uvicorn.Config(
                    create_app(stack.runtime), host=host, port=port, log_level="info",
                    access_log=False,
                )
            )  # fmt: skip
            watcher = threading.Thread(target=_watch, args=(stack.worker, server), daemon=True)
            watcher.start()
            _announce(settings, host, port, stack)
            # uvicorn re-raises the signal it stopped for, after its clean shutdown.
            with contextlib.suppress(KeyboardInterrupt):
                server.run()
            if stack.worker.poll() is not None:
                log.error("the worker exited (%s); see %s", stack.worker.returncode,
                          stack.worker_log)  # fmt: skip
                return 1
            return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _watch(worker: subprocess.Popen[bytes], server: uvicorn.Server) -> None:
    worker.wait()
    server.should_exit = True


def _announce(settings: Settings, host: str, port: int, stack: LocalStack) -> None:
    base = f"http://{host}:{port}"
    print(
        _(
            "publisher: API on {url} (OpenAPI at {url}/docs), data in {path}",
            url=base,
            path=settings.data_dir,
        )
    )
    print(_("publisher: worker log {path}; feeds at {url}/feeds/", path=stack.worker_log, url=base))
    for name, url in stack.sandboxes.urls.items():
        print(_("publisher: the {name} channel posts to its sandbox at {url}/", name=name, url=url))
    if not settings.api_tokens:
        print(_("publisher: PUBLISHER_API_TOKENS is empty, so the API refuses every change"))
    sys.stdout.flush()
