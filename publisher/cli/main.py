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

from publisher.cli.language import LocalizedParser, cli_locale
from publisher.config.settings import Settings
from publisher.domain.article import Article, load_article_file
from publisher.domain.errors import ConfigError, InputError, NotFound, PublisherError
from publisher.domain.i18n import N_, _, activate, current
from publisher.domain.states import State
from publisher.domain.times import load_zone, parse_time

console = Console()
errors = Console(stderr=True)
#: `status --wide`: as wide as the content needs (tables size to their content).
WIDE_COLUMNS = 10_000


def main(argv: Sequence[str] | None = None) -> int:
    activate(cli_locale())
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _redact_logs()
    try:
        return int(args.handler(args) or 0)
    except InputError as exc:
        errors.print(_("error: {message}", message=_problem(exc)), markup=False, highlight=False)
        return 2
    except (ConfigError, NotFound) as exc:
        errors.print(_("error: {message}", message=_problem(exc)), markup=False, highlight=False)
        return 2
    except PublisherError as exc:
        errors.print(_("error: {message}", message=_problem(exc)), markup=False, highlight=False)
        return 1
    except KeyboardInterrupt:
        return 130


def _problem(exc: PublisherError) -> str:
    """The error in the run's language: an input error's problem is translated, its
    field (a name the user typed) is not."""
    if isinstance(exc, InputError):
        return f"{exc.field}: {current().text(exc.problem)}"
    said = exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], str) else str(exc)
    return current().text(said)


def _redact_logs() -> None:
    """Every command (worker, beat and serve included) logs through the redactor,
    which also learns this deployment's secrets when its settings load."""
    from publisher.net.redact import install_log_redaction

    try:
        settings = Settings.load()
    except (ConfigError, InputError):  # the command itself reports it
        settings = None
    install_log_redaction(settings)


def _parser() -> argparse.ArgumentParser:
    parser = LocalizedParser(
        prog="publisher",
        description=_("Publish one article to every channel of a media matrix, and track it."),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=_("log debug output"))
    sub = parser.add_subparsers(required=True, metavar=_("COMMAND"))

    p = sub.add_parser("publish", help=_("publish (or schedule) an article file"))
    p.add_argument("file", type=Path, help=_("article as .json or Markdown with front matter"))
    p.add_argument(
        "--at",
        metavar="ISO-TIME",
        help=_("publish at this time: with a UTC offset, or local time in the article's zone"),
    )
    p.add_argument(
        "--tz",
        metavar="ZONE",
        help=_(
            "IANA zone (e.g. Asia/Shanghai) for times without an offset, in --at and the file; "
            "replaces the file's timezone (default: [newsroom] timezone / PUBLISHER_TIMEZONE)"
        ),
    )
    p.add_argument(
        "--channel", action="append", metavar="NAME", help=_("only this channel (repeatable)")
    )
    p.set_defaults(handler=cmd_publish)

    p = sub.add_parser("status", help=_("deliveries: all recent articles, or one in detail"))
    p.add_argument("article_id", nargs="?", help=_("an article id"))
    p.add_argument("--limit", type=int, default=20, help=_("how many recent articles"))
    p.add_argument(
        "--state",
        choices=[s.value for s in State],
        help=_("only deliveries in this state (all articles, unless ARTICLE_ID is given)"),
    )
    p.add_argument("--json", action="store_true", help=_("print JSON for scripts (see README)"))
    p.add_argument(
        "--wide", action="store_true", help=_("show every column in full, wider than the terminal")
    )
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("retry", help=_("retry a failed delivery, or every failed one"))
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("delivery_id", nargs="?", type=int, help=_("a delivery id"))
    group.add_argument("--failed", action="store_true", help=_("retry every failed delivery"))
    p.set_defaults(handler=cmd_retry)

    p = sub.add_parser(
        "approve", help=_("approve a writer's article (or reject it with --reject REASON)")
    )
    p.add_argument("article_id")
    p.add_argument("--reject", metavar="REASON", help=_("reject it instead, saying why"))
    p.add_argument("--version", type=int, help=_("only if this is the version awaiting approval"))
    p.add_argument(
        "--by", default="cli", metavar="NAME", help=_("the editor named in the log (default: cli)")
    )
    p.set_defaults(handler=cmd_approve)

    p = sub.add_parser("retract", help=_("withdraw an article from every channel"))
    p.add_argument("article_id")
    p.set_defaults(handler=cmd_retract)

    p = sub.add_parser("preview", help=_("show each channel's formatted output; nothing is sent"))
    p.add_argument("file", type=Path)
    p.add_argument("--channel", action="append", metavar="NAME")
    p.add_argument("--json", action="store_true", help=_("print the payloads as JSON"))
    p.set_defaults(handler=cmd_preview)

    p = sub.add_parser("worker", help=_("run a Celery worker (all channel queues by default)"))
    p.add_argument("--concurrency", type=int, help=_("worker processes (default: settings)"))
    p.add_argument("--queues", help=_("comma-separated queues (default: all)"))
    p.add_argument(
        "--beat", action="store_true", help=_("also run the sweeper schedule (one machine)")
    )
    p.add_argument("--loglevel", default="INFO")
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser("beat", help=_("run the sweeper schedule (exactly one per deployment)"))
    p.add_argument("--loglevel", default="INFO")
    p.add_argument(
        "--standby",
        action="store_true",
        help=_("if another beat is running, wait and take over when it stops (default: refuse)"),
    )
    p.set_defaults(handler=cmd_beat)

    p = sub.add_parser("migrate", help=_("bring the database schema up to date"))
    p.set_defaults(handler=cmd_migrate)

    p = sub.add_parser("demo", help=_("start everything embedded and distribute the samples"))
    p.add_argument("--timeout", type=float, default=180.0, help=_("seconds to wait for settling"))
    p.add_argument(
        "--keep", action="store_true", help=_("keep running (sandboxes up) until Ctrl-C")
    )
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser(
        "serve", help=_("run the API and a worker on this machine (Ctrl-C stops both)")
    )
    p.add_argument(
        "--host", default="127.0.0.1", help=_("address to listen on (default: 127.0.0.1)")
    )
    p.add_argument("--port", type=int, default=8000, help=_("port to listen on (default: 8000)"))
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("sandbox", help=_("run the platform sandboxes the matrix points at"))
    p.set_defaults(handler=cmd_sandbox)

    p = sub.add_parser("stop", help=_("stop the data dir's embedded Redis (demo, serve, worker)"))
    p.set_defaults(handler=cmd_stop)
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
        console.print(
            _(
                "[bold]{id}[/]: rescheduled (version {version})",
                id=result.article_id,
                version=result.version,
            )
        )
    elif not result.changed:
        console.print(
            _(
                "[bold]{id}[/]: unchanged (version {version}), nothing new",
                id=result.article_id,
                version=result.version,
            )
        )
    else:
        message = (
            _("[bold]{id}[/]: published version {version}")
            if result.created
            else _("[bold]{id}[/]: updated to version {version}")
        )
        console.print(message.format(id=result.article_id, version=result.version))
    _print_article(runtime, result.article_id)
    return 0


def _with_publish_at(article: Article, at: str, default_timezone: str | None) -> Article:
    zone_name = article.timezone or default_timezone
    zone = load_zone("--tz", zone_name) if zone_name else None
    when = parse_time("--at", at, zone, zone_field="--tz")
    if when is None:
        raise InputError("--at", N_("is empty"))
    return article.model_copy(update={"publish_at": when})


def cmd_status(args: argparse.Namespace) -> int:
    from publisher.cli import status

    runtime = _runtime()
    out = Console(width=WIDE_COLUMNS) if args.wide else console
    if args.json:
        if args.article_id:
            data = status.article_json(runtime, args.article_id, state=args.state)
        else:
            data = status.status_json(runtime, limit=args.limit, state=args.state)
        status.print_json(data)
    elif args.article_id:
        status.print_article(runtime, out, args.article_id, detail=True, state=args.state)
    else:
        status.print_overview(runtime, out, limit=args.limit, state=args.state)
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    runtime = _runtime()
    ids = runtime.store.failed_ids() if args.failed else [args.delivery_id]
    queued = [runtime.store.retry(i, actor="cli") for i in ids]
    runtime.dispatcher.enqueue(queued)
    console.print(
        _(
            "queued {n} deliveries for retry: {ids}",
            n=len(queued),
            ids=", ".join(map(str, ids)) or "-",
        )
    )
    _note_offline(runtime)
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    runtime = _runtime()
    if args.reject is not None:
        runtime.store.reject(args.article_id, args.reject, actor=args.by, version=args.version)
        console.print(_("[bold]{id}[/]: rejected", id=args.article_id))
    else:
        runtime.approve(args.article_id, actor=args.by, version=args.version)
        console.print(_("[bold]{id}[/]: approved", id=args.article_id))
    _print_article(runtime, args.article_id)
    return 0


def cmd_retract(args: argparse.Namespace) -> int:
    runtime = _runtime()
    removals = runtime.retract(args.article_id, actor="cli")
    console.print(
        _("[bold]{id}[/]: retracted; {n} removals queued", id=args.article_id, n=len(removals))
    )
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
    console.print(_("schema up to date"))
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
        raise ConfigError(_("no channel in the matrix says `sandbox = true`"))
    for name, url in sandboxes.urls.items():
        console.print(
            _(
                "{name}: {url}/  (follower view; fault control at {url}/_control/)",
                name=name,
                url=url,
            )
        )
    for variable, value in sandbox_credentials(settings, {}).items():
        console.print(_("  accepts {variable}={value}", variable=variable, value=value))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        sandboxes.stop()


def cmd_stop(args: argparse.Namespace) -> int:
    from publisher.coord.broker import EmbeddedRedis

    settings = Settings.load()
    if settings.redis_url:
        console.print(_("REDIS_URL is set: that Redis is not this data dir's to stop"))
        return 0
    embedded = EmbeddedRedis(settings.data_dir)
    if not embedded.is_running():
        console.print(_("no embedded Redis is running for {path}", path=settings.data_dir))
        return 0
    embedded.stop()
    if embedded.is_running():
        raise PublisherError(_("the embedded Redis at {path} did not stop", path=embedded.socket))
    console.print(_("stopped the embedded Redis at {path}", path=embedded.socket))
    return 0


# -- output -----------------------------------------------------------------


def _runtime(settings: Settings | None = None) -> Any:
    """The wiring for a short command: it never starts the embedded Redis (nothing
    would stop it); what it cannot hand to a broker waits in the store, and the
    sweeper of the next worker to start enqueues it."""
    from publisher.worker.runtime import Runtime

    runtime = Runtime(settings or Settings.load(), start_redis=False)
    runtime.store.migrate()
    return runtime


def _print_article(runtime: Any, article_id: str) -> None:
    from publisher.cli.status import print_article

    print_article(runtime, console, article_id)
    _note_offline(runtime)


def _note_offline(runtime: Any) -> None:
    if runtime.dispatcher.offline:
        console.print(
            _(
                "no broker is running for this data dir: the deliveries wait in the store "
                "until a worker starts (`publisher worker`, `serve` or `demo`)"
            )
        )
