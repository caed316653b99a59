"""The multi-machine shape: docker-compose.yml parses and has every role."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).parents[2]


def test_compose_has_every_role_and_one_beat() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "postgres", "api", "worker", "beat"} <= set(services)
    assert services["beat"]["deploy"]["replicas"] == 1
    assert "replicas" not in services["worker"].get("deploy", {})  # --scale worker=N
    for role in ("api", "worker", "beat"):
        env = services[role]["environment"]
        assert env["REDIS_URL"].startswith("redis://redis")
        assert env["DATABASE_URL"].startswith("postgresql://")
    assert (REPO / "Dockerfile").read_text().startswith("# One image for every role")


def test_compose_config_accepts_it() -> None:
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None or not _runs([*command, "version"]):
            continue
        done = subprocess.run([*command, "config", "-q"], cwd=REPO, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return
    pytest.skip(
        "neither `docker compose` nor `docker-compose` is installed "
        "(apt-get install docker-compose) to validate docker-compose.yml"
    )


def _runs(command: list[str]) -> bool:
    return subprocess.run(command, capture_output=True, timeout=60).returncode == 0
