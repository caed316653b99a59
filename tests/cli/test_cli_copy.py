"""Per-channel copy from the command line: exit 2 naming the override, and preview notes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_REDIS_URL, write_matrix

FITS = "字" * 129  # + a space and the link (10 字) = 140 字 on Weibo


def run(tmp_path: Path, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it; publish fails before it touches Redis, preview never does."""
    matrix = write_matrix(
        tmp_path / "matrix.toml",
        {"site": {"type": "rss"},
         "weibo": {"type": "weibo", "base_url": "http://127.0.0.1:9", "access_token_env": "NONE",
                   "utm": {"source": "weibo", "campaign": "{id}"}}},
        {"title": "CLI Daily", "home_page_url": "https://news.example.org/"},
    )  # fmt: skip
    env = {
        **os.environ, "PUBLISHER_CONFIG": str(matrix), "PUBLISHER_DATA_DIR": str(tmp_path / "var"),
        "PUBLISHER_REDIS_PREFIX": f"{prefix}cli-copy:", "REDIS_URL": TEST_REDIS_URL,
        "COLUMNS": "200",
    }  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "publisher", *args],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def write_article(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "story.json"
    path.write_text(json.dumps({
        "id": "cli-copy", "url": "https://news.example.org/cli-copy", "title": "标题",
        "body_html": "<p>正文。</p>", "cover_image": "https://news.example.org/c.jpg",
        "overrides": {"weibo": {"text": text}},
    }, ensure_ascii=False), encoding="utf-8")  # fmt: skip
    return path


@pytest.mark.parametrize("command", ["publish", "preview"])
def test_an_override_over_the_limit_exits_2_naming_it(
    tmp_path: Path, redis_prefix: str, command: str
) -> None:
    done = run(tmp_path, redis_prefix, command, str(write_article(tmp_path, FITS + "字")))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "overrides.weibo.text: is 141 字 (with the article link); the limit is 140 字" in (
        done.stderr
    )
    if command == "publish":  # nothing of the rejected article was stored
        status = run(tmp_path, redis_prefix, "status", "cli-copy")
        assert status.returncode != 0 and "cli-copy" in status.stdout + status.stderr


def test_preview_names_the_override_its_count_and_missing_alt_text(
    tmp_path: Path, redis_prefix: str
) -> None:
    done = run(tmp_path, redis_prefix, "preview", str(write_article(tmp_path, FITS)))
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    assert "text: from overrides.weibo.text" in out
    assert "overrides.weibo.text: 140 of 140 字 (with the article link)" in out
    assert "https://news.example.org/cli-copy?utm_source=weibo&utm_campaign=cli-copy" in out
    assert "warning: the cover has no cover_alt" in out
