"""The short form of bench/fuzz.py, in `make test`: a few hundred hypothesis-drawn
requests against the API with a token, no answer of 500 or more, nothing half stored,
and each of issue 9's hostile cases answered (the 1 s budget is measured by the bench)."""

from __future__ import annotations

from pathlib import Path

from bench.fuzz import fuzz, half_stored, start_api, time_hostile
from tests.conftest import TEST_REDIS_URL


def test_a_few_hundred_fuzzed_requests(tmp_path: Path, redis_prefix: str) -> None:
    prefix = f"{redis_prefix}fuzz:"  # the session's prefix: conftest removes its keys
    server, runtime, database_url = start_api(tmp_path, TEST_REDIS_URL, prefix)
    try:
        tally = fuzz(server.url, 300, random_seed=7)
        hostile = time_hostile(server.url)
    finally:
        server.stop()
        runtime.close()
    assert tally.total == 300
    assert tally.server_errors == []
    assert all(status < 500 for status, _ in hostile.values()), hostile
    assert half_stored(database_url) == dict.fromkeys(half_stored(database_url), 0)
