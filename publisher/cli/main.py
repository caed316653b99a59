"""`publisher`: the command line editors and operators use.

Exit codes: 0 success, 1 the operation ran but did not succeed (a delivery
failed, the demo did not settle), 2 bad input or configuration, with a
one-line message naming the problem.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from publisher.config.settings import Settings
from publisher.domain.article import Article, load_article_file, load_zone, parse_time
from publisher.domain.errors import ConfigError, InputError, NotFound, PublisherError
from publisher.domain.states import State

STATE_STYLE = {
    State.SCHEDULED: "blue",
    State.PENDING: "yellow",
    State.SENDING: "cyan",
    State.RETRYING: "magenta",
    State.DELIVERED: "green",
    State.FAILED: "bold red",
    State.CANCELLED: "dim",
}

console = Console()
errors = Console(stderr=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except InputError as exc:
        errors.print(f"error: {exc}", markup=False, highlight=False)
        return 2
    except (ConfigError, NotFound) as exc:
        errors.print(f"error: {exc}", markup=False, highlight=False)
        return 2
    except PublisherError as exc:
        errors.print(f"error: {exc}", markup=False, highlight=False)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="publisher",
        description="Publish one article to every channel of a media matrix, and track it.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("publish", help="publish (or schedule) an article file")
    p.add_argument("file", type=Path, help="article as .json or Markdown with front matter")
    p.add_argument(
        "--at",
        metavar="ISO-TIME",
        help="publish at this time: with a UTC offset, or local time in the article's zone",
    )
    p.add_argument(
        "--tz",
        metavar="ZONE",
        help="IANA zone (e.g. Asia/Shanghai) for times without an offset, in --at and the file; "
        "replaces the file's timezone (default: [newsroom] timezone / PUBLISHER_TIMEZONE)",
    )
    p.add_argument(
        "--channel", action="append", metavar="NAME", help="only this channel (repeatable)"
    )
    p.set_defaults(handler=cmd_publish)

    p = sub.add_parser("status", help="deliveries: all recent articles, or one in detail")
    p.add_argument("article_id", nargs="?", help="an article id")
    p.add_argument("--limit", type=int, default=20, help="how many recent articles")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("retry", help="retry a failed delivery, or every failed one")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("delivery_id", nargs="?", type=int, help="a delivery id")
    group.add_argument("--failed", action="store_true", help="retry every failed delivery")
    p.set_defaults(handler=cmd_retry)

    p = sub.add_parser("retract", help="withdraw an article from every channel")
    p.add_argument("article_id")
    p.set_defaults(handler=cmd_retract)

    p = sub.add_parser("preview", help="show each channel's formatted output; nothing is sent")
    p.add_argument("file", type=Path)
    p.add_argument("--channel", action="append", metavar="NAME")
    p.add_argument("--json", action="store_true", help="print the payloads as JSON")
    p.set_defaults(handler=cmd_preview)

    p = sub.add_parser("worker", help="run a Celery worker (all channel queues by default)")
    p.add_argument("--concurrency", type=int, help="worker processes (default: settings)")
    p.add_argument("--queues", help="comma-separated queues (default: all)")
    p.add_argument(
        "--beat", action="store_true", help="also run the sweeper schedule (one machine)"
    )
    p.add_argument("--loglevel", default="INFO")
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser("beat", help="run the sweeper schedule (exactly one per deployment)")
    p.add_argument("--loglevel", default="INFO")
    p.add_argument(
        "--standby",
        action="store_true",
        help="if another beat is running, wait and take over when it stops (default: refuse)",
    )
    p.set_defaults(handler=cmd_beat)

    p = sub.add_parser("migrate", help="bring the database schema up to date")
    p.set_defaults(handler=cmd_migrate)

    p = sub.add_parser("demo", help="start everything embedded and distribute the samples")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for settling")
    p.add_argument("--keep", action="store_true", help="keep running (sandboxes up) until Ctrl-C")
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("serve", help="run the API and a worker on this machine (Ctrl-C stops both)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("sandbox", help="run the platform sandboxes the matrix points at")
    p.set_defaults(handler=cmd_sandbox)
    return parser


# -- commands ---------------------------------------------------------------


def cmd_publish(args: argparse.Namespace) -> int:
    settings = Settings.load()
    if args.tz:
        load_zone("--tz", args.tz)
    article = load_article_file(args.file, default_timezone=settings.timezone, timezone=args.tz)
    if args.at:
        article = _with_publish_at(article, args.at, settings.timezone)
    runtime = _runtime(settings)
    result = runtime.publish(article, only=args.channel, actor="cli")
    if result.rescheduled:
        console.print(f"[bold]{result.article_id}[/]: rescheduled (version {result.version})")
    elif not result.changed:
        console.print(
            f"[bold]{result.article_id}[/]: unchanged (version {result.version}), nothing new"
        )
    else:
        verb = "published" if result.created else "updated to"
        console.print(f"[bold]{result.article_id}[/]: {verb} version {result.version}")
    _print_article(runtime, result.article_id)
    return 0


def _with_publish_at(article: Article, at: str, default_timezone: str | None) -> Article:
    zone_name = article.timezone or default_timezone
    zone = load_zone("--tz", zone_name) if zone_name else None
    when = parse_time("--at", at, zone, zone_field="--tz")
    if when is None:
        raise InputError("--at", "is empty")
    return article.model_copy(update={"publish_at": when})


def cmd_status(args: argparse.Namespace) -> int:
    runtime = _runtime()
    if args.article_id:
        _print_article(runtime, args.article_id, detail=True)
        return 0
    rows = runtime.store.recent_articles(args.limit)
    channels = list(runtime.settings.channels)
    table = Table(title="Deliveries", show_lines=False)
    table.add_column("article")
    for name in channels:
        table.add_column(name)
    deliveries = runtime.store.deliveries(article_ids=[r.id for r in rows], limit=10_000)
    # The latest action on each channel shows: a retraction over a correction over the post.
    by_cell = {(d.article_id, d.channel): d for d in sorted(deliveries, key=lambda d: d.id)}
    for row in rows:
        cells = []
        for name in channels:
            d = by_cell.get((row.id, name))
            cells.append(_state_cell(d.state, d.id) if d else "-")
        table.add_row(row.id, *cells)
    console.print(table)
    counts = runtime.store.counts_by_state()
    console.print(
        "  ".join(f"{state}: {n}" for state, n in sorted(counts.items())) or "no deliveries"
    )
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    runtime = _runtime()
    ids = runtime.store.failed_ids() if args.failed else [args.delivery_id]
    queued = [runtime.store.retry(i, actor="cli") for i in ids]
    runtime.dispatcher.enqueue(queued)
    console.print(f"queued {len(queued)} deliveries for retry: {', '.join(map(str, ids)) or '-'}")
    return 0


def cmd_retract(args: argparse.Namespace) -> int:
    runtime = _runtime()
    removals = runtime.retract(args.article_id, actor="cli")
    console.print(f"[bold]{args.article_id}[/]: retracted; {len(removals)} removals queued")
    _print_article(runtime, args.article_id)
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from channels import build_channel, check_matrix
    from channels.base import ChannelContext
    from publisher.delivery.publishing import preview, select_channels

    settings = Settings.load()
    article = load_article_file(args.file, default_timezone=settings.timezone)
    context = ChannelContext(settings)  # no Redis, no store: nothing is sent
    check_matrix(settings.channels)
    channels = {n: build_channel(c, context) for n, c in settings.channels.items()}
    previews = preview(
        article, select_channels(channels, args.channel or article.channels), channels
    )
    if args.json:
        # The payloads alone, as before: scripts read them; the notes are for people.
        print(json.dumps({n: p.payload for n, p in previews.items()}, ensure_ascii=False, indent=2))
        return 0
    for name, shown in previews.items():
        console.rule(f"[bold]{name}[/] ({shown.type})")
        console.print_json(data=shown.payload)
        for key in shown.overridden:
            console.print(f"[cyan]{key}[/]: from overrides.{name}.{key}", highlight=False)
        for count in shown.counts:
            console.print(
                f"overrides.{name}.{count['key']}: {count['used']:,} of {count['limit']:,} "
                f"{count['unit']}" + (f" ({count['counts']})" if count["counts"] else ""),
                highlight=False,
            )
        for warning in shown.warnings:
            console.print(f"[yellow]warning[/]: {warning}", highlight=False)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from publisher.store import Store
    from publisher.worker.app import create_celery
    from publisher.worker.celery_app import all_queues

    settings = Settings.load()
    Store(settings.database_url).migrate()
    app = create_celery(settings)
    argv = [
        "worker",
        f"--loglevel={args.loglevel}",
        "-Q", args.queues or ",".join(all_queues()),
        "-c", str(args.concurrency or settings.worker_concurrency),
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    if args.beat:
        argv += ["--beat", "-s", str(settings.data_dir / "beat-schedule")]
    app.worker_main(argv)
    return 0


def cmd_beat(args: argparse.Namespace) -> int:
    from publisher.store import Store
    from publisher.worker.app import create_celery
    from publisher.worker.beatlock import BeatLock

    settings = Settings.load()
    app = create_celery(settings)
    lock = BeatLock.for_settings(settings)
    if not args.standby:
        lock.refuse_if_held()  # a second beat exits 1, naming the one that runs
    app.publisher_beat_lock = lock
    Store(settings.database_url).migrate()
    app.start(
        ["beat", f"--loglevel={args.loglevel}", "-s", str(settings.data_dir / "beat-schedule")]
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from publisher.store import Store

    Store(Settings.load().database_url).migrate()
    console.print("schema up to date")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from publisher.local.demo import run_demo

    return run_demo(Settings.load(), timeout=args.timeout, console=console, keep=args.keep)


def cmd_serve(args: argparse.Namespace) -> int:
    from publisher.local.serve import serve

    # Feed and cover links follow --port unless PUBLISHER_PUBLIC_URL is set.
    env = {**os.environ, "PUBLISHER_PORT": str(args.port)}
    return serve(Settings.load(env), args.host, args.port, env=env)


def cmd_sandbox(args: argparse.Namespace) -> int:
    import time

    from sandbox.runner import sandbox_credentials, start_sandboxes

    settings = Settings.load()
    sandboxes = start_sandboxes(settings)
    if not sandboxes.servers:
        raise ConfigError("no weibo or wechat channel in the matrix has a base_url on this machine")
    for name, url in sandboxes.urls.items():
        console.print(f"{name}: {url}/  (follower view; fault control at {url}/_control/)")
    for variable, value in sandbox_credentials(settings, {}).items():
        console.print(f"  accepts {variable}={value}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        sandboxes.stop()


# -- output -----------------------------------------------------------------


def _runtime(settings: Settings | None = None) -> Any:
    from publisher.worker.runtime import Runtime

    runtime = Runtime(settings or Settings.load())
    runtime.store.migrate()
    return runtime


def _state_cell(state: str, delivery_id: int) -> str:
    style = STATE_STYLE.get(State(state), "")
    return f"[{style}]{state}[/] #{delivery_id}"


def _print_article(runtime: Any, article_id: str, *, detail: bool = False) -> None:
    row, article, deliveries = runtime.store.article(article_id)
    table = Table(title=f"{article.title}  (v{row.current_version})", title_justify="left")
    for column in ("id", "channel", "kind", "state", "attempts", "where", "last error"):
        table.add_column(column)
    for d in deliveries:
        where = d.remote_url or (
            f"next {d.next_attempt_at:%H:%M:%S}"
            if d.next_attempt_at and d.state != "delivered"
            else ""
        )
        table.add_row(
            str(d.id),
            d.channel,
            d.kind,
            _state_cell(d.state, d.id),
            f"{d.attempts}/{d.max_attempts}",
            where,
            d.last_error or "",
        )
    console.print(table)
    if not detail:
        return
    for d in deliveries:
        log = runtime.store.attempts(d.id)
        if not log:
            continue
        console.print(f"[bold]#{d.id} {d.channel}[/] attempt log:")
        for a in log:
            code = f" code {a.platform_code}" if a.platform_code else ""
            http = f" HTTP {a.http_status}" if a.http_status else ""
            console.print(
                f"  {a.started_at:%Y-%m-%d %H:%M:%S} #{a.number} {a.outcome} "
                f"{a.duration_ms} ms{http}{code} {a.message or ''}",
                markup=False,
                highlight=False,
            )
