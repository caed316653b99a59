"""The CLI speaks the newsroom's language: `LC_ALL` / `LC_MESSAGES` / `LANG`, else
`[newsroom] locale`, else English. Each test runs the installed `publisher`
console script as a user would, with the environment it names."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import write_matrix

PUBLISHER = Path(sys.executable).parent / "publisher"
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    matrix = write_matrix(tmp_path / "matrix.toml", {"site": {"type": "rss"}}, {"title": "Daily"})

    def run(
        *args: str, newsroom: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        if newsroom is not None:
            with matrix.open("a", encoding="utf-8") as table:
                table.write(f'\n[newsroom]\nlocale = "{newsroom}"\n')
        environment = {
            **os.environ,
            "PUBLISHER_CONFIG": str(matrix),
            "PUBLISHER_DATA_DIR": str(tmp_path / "var"),
            "COLUMNS": "120",
            **env,
        }
        return subprocess.run(
            [str(PUBLISHER), *args], env=environment, cwd=tmp_path,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    return run


def test_help_in_chinese_under_a_chinese_lang(run: Run) -> None:
    done = run("--help", LANG="zh_CN.UTF-8")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("用法：publisher")
    assert "把一篇稿件发布到媒体矩阵的每个渠道，并跟踪投递。" in out
    assert "显示此帮助信息并退出" in out and "选项" in out
    assert "发布（或定时发布）一篇稿件文件" in out  # the `publish` command's line
    for command in ("publish", "status", "retry", "retract", "preview", "demo"):
        assert f"    {command}" in out  # commands are typed as they are: never translated
    sub = run("status", "--help", LANG="zh_CN.UTF-8").stdout
    assert "只看此状态的投递" in sub and "--state" in sub and "failed" in sub


def test_english_is_the_default(run: Run) -> None:
    out = run("--help").stdout  # LANG=C.UTF-8 from the suite's fixture: says nothing
    assert out.startswith("usage: publisher")
    assert "Publish one article to every channel" in out and "show this help message" in out
    assert not any("\u4e00" <= c <= "\u9fff" for c in out)


def test_the_newsroom_locale_applies_unless_the_posix_variables_name_a_language(run: Run) -> None:
    assert run("--help", newsroom="zh-CN").stdout.startswith("用法：")
    assert run("--help", LANG="en_GB.UTF-8").stdout.startswith("usage:")  # the same matrix
    assert run("--help", LC_ALL="zh_CN.UTF-8", LANG="en_GB.UTF-8").stdout.startswith("用法：")
    assert run("--help", LC_MESSAGES="en_US.UTF-8", LANG="zh_CN.UTF-8").stdout.startswith("usage:")


def test_a_bad_locale_in_the_matrix_is_named(run: Run) -> None:
    done = run("status", newsroom="tlh")
    assert done.returncode == 2
    said = " ".join(done.stderr.split())  # rich wraps at the terminal's width
    assert "[newsroom] locale: 'tlh' is not a language we have (en, zh-CN)" in said


def test_errors_and_tables_in_chinese(run: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"id": "x", "url": "ftp://example.org/x", "title": "T", "body_html": "<p>b</p>"}'
    )
    done = run("publish", str(bad), LANG="zh_CN.UTF-8")
    assert done.returncode == 2
    assert done.stderr.strip() == "错误：url: 'ftp://example.org/x' 不是完整的 http(s) URL"

    status = run("status", LANG="zh_CN.UTF-8")
    assert status.returncode == 0, status.stderr
    assert "投递" in status.stdout and "稿件" in status.stdout and "没有投递" in status.stdout
    assert run("status").stdout.strip().endswith("no deliveries")

    wrong = run("status", "--state", "lost", LANG="zh_CN.UTF-8")
    assert wrong.returncode == 2 and "publisher status：错误：" in wrong.stderr
