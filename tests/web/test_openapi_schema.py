"""The OpenAPI schema is a contract: clients are generated from it.

The fixtures were first written from the API as it stood before its split
into routers: moving code must not move a path, a model or a documented
response. A change that means to alter the schema (since then: byte ranges,
206 and 416 on /feeds and /media; per-channel overrides, cover_alt and the
override counter) regenerates the fixtures with
`python -m tests.web.test_openapi_schema`, so the diff shows in review.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from publisher.config.settings import Settings
from publisher.web.api import create_app
from publisher.worker.runtime import Runtime
from tests.conftest import TEST_REDIS_URL, write_matrix

FIXTURES = Path(__file__).parent / "fixtures"
CHANNELS = {
    "site": {"type": "rss"},
    "app": {"type": "app_feed"},
    "hook": {"type": "webhook", "base_url": "http://127.0.0.1:9/hook"},
}
#: The schema differs when reads need a token (401s documented, a security scheme).
VARIANTS = {"open_reads": {}, "token_reads": {"PUBLISHER_READ_REQUIRES_TOKEN": "1"}}


def schema_of(root: Path, env: dict[str, str]) -> dict[str, Any]:
    """The app's OpenAPI document for the test matrix. Building it opens no connection."""
    matrix = write_matrix(
        root / "matrix.toml", CHANNELS,
        {"title": "Test Daily", "home_page_url": "https://news.example.org/"},
    )  # fmt: skip
    settings = Settings.load(
        {
            "PUBLISHER_CONFIG": str(matrix),
            "PUBLISHER_DATA_DIR": str(root / "var"),
            "REDIS_URL": TEST_REDIS_URL,
            **env,
        }
    )
    runtime = Runtime(settings)
    try:
        return create_app(runtime).openapi()
    finally:
        runtime.close()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_openapi_schema_is_unchanged(variant: str, tmp_path: Path) -> None:
    expected = json.loads((FIXTURES / f"openapi_{variant}.json").read_text(encoding="utf-8"))
    schema = schema_of(tmp_path, VARIANTS[variant])
    assert schema == expected
    # The order the docs page lists them in, too.
    assert list(schema["paths"]) == list(expected["paths"])
    assert list(schema["components"]["schemas"]) == list(expected["components"]["schemas"])


def test_fixture_differs_between_variants() -> None:
    """Guards the test above: one fixture for both would hide a lost 401."""
    open_reads, token_reads = (
        json.loads((FIXTURES / f"openapi_{v}.json").read_text(encoding="utf-8"))
        for v in ("open_reads", "token_reads")
    )
    assert "401" not in open_reads["paths"]["/api/articles"]["get"]["responses"]
    assert "401" in token_reads["paths"]["/api/articles"]["get"]["responses"]


def main() -> None:
    import tempfile

    for variant, env in VARIANTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            schema = schema_of(Path(tmp), env)
        path = FIXTURES / f"openapi_{variant}.json"
        path.write_text(json.dumps(schema, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
