"""One contract table per channel type, one module each, found by name (not listed)."""

from __future__ import annotations

import importlib
import pkgutil

from tests.channels.contract import Table


def all_tables() -> list[Table]:
    """`TABLE` from every module in this package, ordered by module name."""
    found: list[Table] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append(module.TABLE)
    return found
