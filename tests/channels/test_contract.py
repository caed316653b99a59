"""The contract every channel type keeps, run on each type's table (see contract.py)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest

from channels import CHANNEL_TYPES
from channels.base import Channel, Receipt
from channels.feed import FeedItem
from publisher.domain.errors import DeliveryError, InputError, RetryableError
from sandbox.server import free_port
from tests.channels.contract import (
    ChannelFactory,
    Fault,
    FeedTable,
    FormatRow,
    ScriptedPlatform,
    Table,
    TransportTable,
    attempt,
    field_at,
    no_network,
)
from tests.channels.tables import all_tables

TABLES = all_tables()
TRANSPORTS = [t for t in TABLES if isinstance(t, TransportTable)]
FEEDS = [t for t in TABLES if isinstance(t, FeedTable)]
FORMAT_CASES = [(t, row) for t in TABLES for row in t.formats]
FAULT_CASES = [(t, fault) for t in TRANSPORTS for fault in t.faults]


def channel_for(
    table: Table, build: ChannelFactory, platform: ScriptedPlatform, **options: Any
) -> Channel:
    if isinstance(table, FeedTable):
        return table.channel(build)
    platform.reset(table.routes)
    return table.channel(build, platform.url, **options)


def test_every_channel_type_has_a_table() -> None:
    assert sorted(t.type_name for t in TABLES) == sorted(CHANNEL_TYPES)


# ---- the formatter ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "row"), FORMAT_CASES, ids=[f"{t.type_name}-{r.name}" for t, r in FORMAT_CASES]
)
def test_format_is_pure_and_deterministic(
    table: Table,
    row: FormatRow,
    build: ChannelFactory,
    platform: ScriptedPlatform,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    channel = channel_for(table, build, platform, **row.options)
    article = row.article()
    before = article.model_dump()

    with no_network(monkeypatch):
        first = channel.format(article)
        second = channel.format(row.article())

    assert first == second
    assert json.loads(json.dumps(first)) == first  # stored as JSON, sent as stored
    assert article.model_dump() == before
    assert platform.seen == []
    for path, value in row.expect.items():
        assert field_at(first, path) == value, path
    if row.check is not None:
        row.check(first)


@pytest.mark.parametrize("table", TABLES, ids=[t.type_name for t in TABLES])
def test_over_long_input_follows_the_channels_own_rule(
    table: Table, build: ChannelFactory, platform: ScriptedPlatform
) -> None:
    channel = channel_for(table, build, platform)
    article = table.long_article()
    post = channel.format(article)
    limits = type(channel).text_limits
    whole = (
        table.long_expect(article)
        if isinstance(table, TransportTable) and table.long_expect
        else None
    )
    assert limits or whole or isinstance(table, FeedTable), "a table must say how length is ruled"

    for limit in limits:
        used = limit.used(post)
        assert used is not None, f"{limit.field} is not in the payload"
        assert used <= limit.limit, (limit.field, used, limit.limit)
    if isinstance(table, FeedTable):
        table.carries_whole(post, article)
        return
    receipt = channel.send(post, attempt())

    assert isinstance(receipt, Receipt)
    arrived = table.sent(platform)
    for limit in limits:
        assert limit.fits(arrived) and limit.used(arrived) is not None, limit.field
    for path, value in (whole or {}).items():
        assert field_at(arrived, path) == value, path


# ---- the transport ---------------------------------------------------------------------------


@pytest.mark.parametrize("table", TRANSPORTS, ids=[t.type_name for t in TRANSPORTS])
def test_the_happy_path_delivers(
    table: TransportTable, build: ChannelFactory, platform: ScriptedPlatform
) -> None:
    """The routes really are the platform's happy path, so each fault row tests its fault."""
    channel = channel_for(table, build, platform)

    receipt = channel.send(channel.format(table.formats[0].article()), attempt())

    assert isinstance(receipt, Receipt) and receipt.remote_id


@pytest.mark.parametrize(
    ("table", "fault"), FAULT_CASES, ids=[f"{t.type_name}-{f.name}" for t, f in FAULT_CASES]
)
def test_each_fault_maps_to_its_error_class_without_a_secret(
    table: TransportTable,
    fault: Fault,
    build: ChannelFactory,
    platform: ScriptedPlatform,
    caplog: pytest.LogCaptureFixture,
) -> None:
    platform.reset(table.routes)
    if fault.answer is None:  # nothing listens there: connection refused
        channel = table.channel(build, f"http://127.0.0.1:{free_port()}")
    else:
        channel = table.channel(build, platform.url)
        platform.fault(fault.path, fault.answer)
    post = channel.format(table.formats[0].article())
    caplog.set_level(logging.DEBUG)

    if fault.error is None:
        assert isinstance(channel.send(post, attempt()), Receipt)
        return
    with pytest.raises(DeliveryError) as caught:
        channel.send(post, attempt())

    error = caught.value
    assert type(error) is fault.error, error.reason
    assert (error.code, error.http_status) == (fault.code, fault.http_status), error.reason
    if fault.retry_after is not None:
        assert isinstance(error, RetryableError) and error.retry_after == fault.retry_after
    if fault.answer is not None:
        assert platform.requests_to(fault.path), "the fault was never asked for"
        assert not platform.queued.get(fault.path), "the fault was not consumed"
    for secret in table.secrets:
        assert secret not in error.reason
        assert secret not in caplog.text  # any logger: urllib3 logs request lines at DEBUG


# ---- feeds: the documents --------------------------------------------------------------------


@pytest.mark.parametrize("table", FEEDS, ids=[t.type_name for t in FEEDS])
def test_documents_render_deterministically_and_read_back(
    table: FeedTable, build: ChannelFactory
) -> None:
    channel = table.channel(build)
    articles = [row.article() for row in table.formats]
    items = [
        FeedItem(channel.format(a), table.built_at - timedelta(minutes=n))
        for n, a in enumerate(articles)
    ]

    first = channel.render(items, table.built_at)
    again = channel.render(items, table.built_at)

    assert [d.body for d in first] == [d.body for d in again]
    table.check_documents(first, articles)


# ---- what a channel declares -----------------------------------------------------------------


@pytest.mark.parametrize("table", TABLES, ids=[t.type_name for t in TABLES])
def test_digests_only_where_declared(
    table: Table, build: ChannelFactory, platform: ScriptedPlatform
) -> None:
    channel = channel_for(table, build, platform)
    kind = type(channel)
    articles = [table.formats[0].article().model_copy(update={"id": f"d{n}"}) for n in range(2)]

    if not kind.supports_digest:
        assert kind.max_articles == 1
        with pytest.raises(InputError, match="cannot carry several articles"):
            channel.format_articles(articles)
        return
    message = channel.format_articles(articles)
    assert json.loads(json.dumps(message)) == message
    assert message == channel.format_articles(articles)
    too_many = [
        articles[0].model_copy(update={"id": f"m{n}"}) for n in range(kind.max_articles + 1)
    ]
    with pytest.raises(InputError):
        channel.format_articles(too_many)
