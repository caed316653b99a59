"""The sandboxes' fault injector: every fault queued for a path gets its draw.

bench/faults.py queues several faults per endpoint (a 5xx, a busy code, a
timeout after the post was stored). The injector used to stop at the first
one queued for the path, so only that one ever fired.
"""

from __future__ import annotations

import random
from collections import Counter

from sandbox.faults import FaultInjector, FaultSpec

PATH = "/2/statuses/share.json"


def test_each_fault_on_a_path_is_drawn_in_turn() -> None:
    random.seed(7)
    injector = FaultInjector()
    injector.add(FaultSpec(path=PATH, mode="http", status=502, count=10**6, probability=0.1))
    injector.add(
        FaultSpec(path=PATH, mode="timeout_after_store", seconds=1, count=10**6, probability=0.1)
    )
    fired = Counter((spec.mode if spec else None) for spec in map(injector.take, [PATH] * 5000))
    # 10 % the first; 10 % of the other 90 % the second; the rest pass untouched.
    assert 400 < fired["http"] < 600
    assert 350 < fired["timeout_after_store"] < 550
    assert injector.take("/other") is None


def test_a_spec_whose_turn_it_is_not_leaves_the_request_to_the_next() -> None:
    injector = FaultInjector()
    injector.add(FaultSpec(path=PATH, mode="http", status=503, count=100, every=5))
    injector.add(FaultSpec(path=PATH, mode="error", code=10001, count=1))
    taken = [injector.take(PATH) for _ in range(5)]
    assert [s.mode if s else None for s in taken] == ["error", None, None, None, "http"]
