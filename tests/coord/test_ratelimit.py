"""The shared token bucket against the machine's Redis: atomic under contention."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from publisher.coord.ratelimit import TokenBucket
from tests.conftest import TEST_REDIS_URL


def bucket_key(redis_prefix: str) -> str:
    return f"{redis_prefix}ratelimit:test:{uuid.uuid4().hex[:8]}"


def test_grants_the_burst_then_says_how_long_to_wait(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    bucket = TokenBucket(redis_client, bucket_key(redis_prefix), rate=30, per=3600, burst=3)

    granted = [bucket.take() for _ in range(3)]
    wait = bucket.take()

    assert granted == [0.0, 0.0, 0.0]
    assert 119 < wait <= 120  # one token every 3600/30 s


def test_a_refusal_takes_nothing(redis_client: redis.Redis, redis_prefix: str) -> None:
    bucket = TokenBucket(redis_client, bucket_key(redis_prefix), rate=30, per=3600, burst=1)
    bucket.take()

    first, second = bucket.take(), bucket.take()

    assert second <= first <= 120  # waiting callers do not push each other back


def test_refills_with_time(redis_client: redis.Redis, redis_prefix: str) -> None:
    bucket = TokenBucket(redis_client, bucket_key(redis_prefix), rate=20, per=1, burst=1)
    assert bucket.take() == 0.0
    wait = bucket.take()
    assert 0 < wait <= 0.05

    time.sleep(wait + 0.01)

    assert bucket.take() == 0.0


def test_buckets_are_independent_per_key(redis_client: redis.Redis, redis_prefix: str) -> None:
    one = TokenBucket(redis_client, bucket_key(redis_prefix), rate=1, per=3600, burst=1)
    two = TokenBucket(redis_client, bucket_key(redis_prefix), rate=1, per=3600, burst=1)

    assert [one.take(), two.take()] == [0.0, 0.0]
    assert one.take() > 0 and two.take() > 0


def test_reset_fills_the_bucket(redis_client: redis.Redis, redis_prefix: str) -> None:
    bucket = TokenBucket(redis_client, bucket_key(redis_prefix), rate=1, per=3600, burst=1)
    bucket.take()

    bucket.reset()

    assert bucket.take() == 0.0


def test_the_key_expires_once_the_bucket_would_be_full(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    key = bucket_key(redis_prefix)
    TokenBucket(redis_client, key, rate=10, per=1, burst=5).take()

    ttl_ms = redis_client.pttl(key)

    assert 0 < ttl_ms <= 1500  # 5 tokens at 10/s refill in 0.5 s, plus a second of slack


@pytest.mark.parametrize(("rate", "per", "burst"), [(0, 1, 1), (1, 0, 1), (-1, 1, 1), (1, 1, 0)])
def test_rejects_a_bucket_that_could_never_grant(
    redis_client: redis.Redis, rate: float, per: float, burst: int
) -> None:
    with pytest.raises(ValueError):
        TokenBucket(redis_client, "unused", rate=rate, per=per, burst=burst)


def test_competing_threads_never_exceed_the_burst(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    key = bucket_key(redis_prefix)
    start = threading.Barrier(8)

    def worker() -> int:
        client = redis.Redis.from_url(TEST_REDIS_URL)
        bucket = TokenBucket(client, key, rate=1, per=3600, burst=5)
        start.wait()
        try:
            return sum(bucket.take() == 0.0 for _ in range(25))
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        granted = sum(pool.map(lambda _: worker(), range(8)))

    assert granted == 5


def test_competing_threads_stay_within_burst_plus_refill(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    key = bucket_key(redis_prefix)
    rate, burst = 40.0, 4  # per second

    def worker(deadline: float) -> int:
        client = redis.Redis.from_url(TEST_REDIS_URL)
        bucket = TokenBucket(client, key, rate=rate, per=1, burst=burst)
        granted = 0
        try:
            while time.monotonic() < deadline:
                granted += bucket.take() == 0.0
        finally:
            client.close()
        return granted

    began = time.monotonic()
    deadline = began + 0.3
    with ThreadPoolExecutor(max_workers=4) as pool:
        granted = sum(pool.map(worker, [deadline] * 4))
    elapsed = time.monotonic() - began

    assert granted <= burst + rate * elapsed + 1  # +1: the two clocks are read apart
    assert granted >= burst  # the bucket did grant: the bound is not vacuous


def _take_in_process(url: str, key: str, attempts: int, queue: multiprocessing.Queue) -> None:
    client = redis.Redis.from_url(url)
    bucket = TokenBucket(client, key, rate=1, per=3600, burst=7)
    queue.put(sum(bucket.take() == 0.0 for _ in range(attempts)))
    client.close()


def test_competing_processes_never_exceed_the_burst(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    key = bucket_key(redis_prefix)
    context = multiprocessing.get_context("spawn")  # a clean interpreter, like a worker
    queue: multiprocessing.Queue = context.Queue()
    processes = [
        context.Process(target=_take_in_process, args=(TEST_REDIS_URL, key, 20, queue))
        for _ in range(3)
    ]
    for process in processes:
        process.start()
    counts = [queue.get(timeout=30) for _ in processes]
    for process in processes:
        process.join(timeout=10)

    assert sum(counts) == 7
    assert all(process.exitcode == 0 for process in processes)
