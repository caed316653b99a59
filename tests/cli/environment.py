"""What the CLI tests give `publisher` to run with: a matrix of the two feeds in a
temp dir, the machine's Redis under the test's own prefix, a wide terminal."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.conftest import TEST_REDIS_URL, write_matrix


def cli_env(tmp_path: Path, prefix: str, newsroom: dict[str, Any] | None = None) -> dict[str, str]:
    matrix = write_matrix(
        tmp_path / "matrix.toml",
        {"site": {"type": "rss"}, "app": {"type": "app_feed"}},
        {"title": "CLI Daily", "home_page_url": "https://news.example.org/"},
        *([newsroom] if newsroom is not None else []),
    )
    return {
        **os.environ,
        "PUBLISHER_CONFIG": str(matrix),
        "PUBLISHER_DATA_DIR": str(tmp_path / "var"),
        "PUBLISHER_REDIS_PREFIX": prefix,
        "REDIS_URL": TEST_REDIS_URL,
        "COLUMNS": "200",
    }
