"""`Store`: one object, every side of the store.

Each side is a mixin over `StoreBase` (one engine, one session factory) in a
module of its own, named for who uses it. Mixins rather than side objects
because every caller already holds one `Store` and calls `store.claim(...)`,
`store.retract(...)`: composing the sides keeps each call site and each
`Store`-typed port (`JobContext`, the engine) as it is, while each file
holds one side's queries. The sides share no state beyond the engine; what
they share in logic lives in `ledger` (claims, sweeps) and `transitions`
(the one function that moves a state).
"""

from __future__ import annotations

from publisher.store.approval import ApprovalSide
from publisher.store.documents import DocumentSide
from publisher.store.editors import EditorSide
from publisher.store.ingest import IngestSide
from publisher.store.leases import WorkerSide
from publisher.store.metrics import MetricsSide
from publisher.store.notifications import NotificationSide
from publisher.store.publishing import PublishingSide
from publisher.store.reads import ReadSide
from publisher.store.sweeper import SweeperSide
from publisher.store.syndication import SyndicationSide


class Store(
    PublishingSide,
    WorkerSide,
    SweeperSide,
    NotificationSide,
    EditorSide,
    ApprovalSide,
    DocumentSide,
    ReadSide,
    MetricsSide,
    IngestSide,
    SyndicationSide,
):
    """The database, the source of truth for articles, deliveries, attempts,
    notifications, feed documents, media and the recurring jobs' ledgers."""
