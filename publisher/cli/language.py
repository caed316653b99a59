"""The CLI's language: which one a run speaks, and `--help` in it.

argparse writes its own words ("usage:", "options", "show this help message
and exit", "error:") through the stdlib's global gettext domain; rather than
change process-wide state, `LocalizedParser` says those words itself in the
active language, and every subcommand's parser is one too (argparse builds
subparsers from the parent's class).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

from publisher.config.settings import Settings
from publisher.domain.errors import PublisherError
from publisher.domain.i18n import SOURCE_LOCALE, _, posix_locale


def cli_locale(env: Mapping[str, str] | None = None) -> str:
    """`LC_ALL` / `LC_MESSAGES` / `LANG` when they name a language we have, else
    `PUBLISHER_LOCALE` / `[newsroom] locale`, else English. A matrix that does not
    load leaves the choice to English: the command itself reports what is wrong."""
    env = os.environ if env is None else env
    chosen = posix_locale(env)
    if chosen:
        return chosen
    try:
        return Settings.load(dict(env)).locale or SOURCE_LOCALE
    except PublisherError:
        return SOURCE_LOCALE


class LocalizedHelp(argparse.HelpFormatter):
    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, prefix if prefix is not None else _("usage: "))


class LocalizedParser(argparse.ArgumentParser):
    """An ArgumentParser whose own words follow the active language."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", LocalizedHelp)
        add_help = kwargs.pop("add_help", True)
        kwargs["add_help"] = False  # ours says "show this help message" in the active language
        super().__init__(*args, **kwargs)
        self._positionals.title = _("positional arguments")
        self._optionals.title = _("options")
        if add_help:
            self.add_argument(
                "-h", "--help", action="help", default=argparse.SUPPRESS,
                help=_("show this help message and exit"),
            )  # fmt: skip

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, _("{prog}: error: {message}\n", prog=self.prog, message=message))
