"""Phase 4 of bench/throughput.py: what a feed rebuild costs with a small and a
big store behind it.

Two stores, filled by bulk insert (bench/seed.py) to 100 and to `--big`
articles whose newest 50 items are the same, each settled after filling
(PostgreSQL: ANALYZE and CHECKPOINT; SQLite: a WAL checkpoint), so the timings
compare the size of the store, not the I/O a just-finished bulk load leaves
behind. The rebuilds then alternate between the two stores, round after
round, so load that comes and goes on a shared machine falls on both alike.
Each store has its own channel objects (so its own rendered-item cache).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime
from typing import Any

from measure import Rebuild, Results  # bench/measure.py
from seed import populate, store_bytes  # bench/seed.py

from channels import build_channel
from channels.base import ChannelContext
from channels.feed import FeedChannel, FeedItem
from publisher.config.settings import Settings
from publisher.delivery.feeds import rebuild_feed
from publisher.store import Store
from publisher.store.feed_snapshot import read_feed

REBUILD_RUNS = 9
SMALL_STORE = 100


def one_rebuild(settings: Settings, store: Store, channel: FeedChannel) -> tuple[float, ...]:
    """Seconds for a whole rebuild, then for its query and its render alone."""
    clock = time.perf_counter()
    documents = rebuild_feed(settings, store, channel).documents
    total = time.perf_counter() - clock
    assert documents and all(d.body for d in documents)
    clock = time.perf_counter()
    snapshot = read_feed(store, channel.name, settings.feeds.items)
    query = time.perf_counter() - clock
    clock = time.perf_counter()
    channel.render([FeedItem(i.payload, i.updated) for i in snapshot.items], datetime.now(UTC))
    return total, query, time.perf_counter() - clock


def settle(store: Store) -> None:
    """What a store that has been live a while looks like: statistics, no backlog of
    dirty pages from the bulk load."""
    with store.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE")  # what autovacuum would soon have done
            conn.exec_driver_sql("CHECKPOINT")
        else:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def run_rebuilds(deployment: Any, big: int, results: Results, feeds: dict[str, str]) -> None:
    stores: list[tuple[int, Settings, Store, list[FeedChannel]]] = []
    try:
        for size in sorted({SMALL_STORE, big}):
            env = {
                **deployment.env,
                "PUBLISHER_DATA_DIR": str(deployment.tmp / f"rebuild-{size}"),
                "DATABASE_URL": deployment.new_database(f"feeds{size}"),
            }
            settings = Settings.load(env)
            store = Store(settings.database_url)
            stores.append((size, settings, store, []))
            store.migrate()
            context = ChannelContext(settings)
            for name in feeds:
                channel = build_channel(settings.channels[name], context)
                assert isinstance(channel, FeedChannel)
                stores[-1][3].append(channel)
            clock = time.perf_counter()
            populate(store, stores[-1][3], 0, size)
            results.populate_seconds[size] = time.perf_counter() - clock
            settle(store)
            results.store_mb[size] = store_bytes(store) / 1e6
        timings: dict[tuple[int, str], list[tuple[float, ...]]] = {}
        for round_ in range(REBUILD_RUNS + 1):  # round 0 warms up (caches, first write)
            for size, settings, store, channels in stores:
                for channel in channels:
                    taken = one_rebuild(settings, store, channel)
                    if round_:
                        timings.setdefault((size, channel.name), []).append(taken)
        for size, _, _, channels in stores:
            for channel in channels:
                total, query, render = zip(*timings[(size, channel.name)], strict=True)
                results.rebuilds.append(
                    Rebuild(
                        channel=f"{channel.name} ({channel.type_name})",
                        articles=size,
                        total_ms=statistics.median(total) * 1000,
                        query_ms=statistics.median(query) * 1000,
                        render_ms=statistics.median(render) * 1000,
                        runs=REBUILD_RUNS,
                    )
                )
    finally:
        for _, _, store, _ in stores:
            store.dispose()
