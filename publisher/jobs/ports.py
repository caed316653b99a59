"""What a recurring job needs from the process it runs in, as a port.

Ingestion and syndication publish like an editor does and read the store;
the worker's `Runtime` satisfies this without the jobs importing the worker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import redis

from channels.base import Channel
from publisher.config.settings import Settings
from publisher.delivery.ports import Dispatch
from publisher.domain.article import Article
from publisher.store import PublishResult, Store


class JobContext(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> Store: ...
    @property
    def redis(self) -> redis.Redis: ...
    @property
    def channels(self) -> Mapping[str, Channel]: ...
    @property
    def dispatcher(self) -> Dispatch: ...

    def publish(
        self, article: Article, *, only: Sequence[str] | None = None, actor: str | None = None
    ) -> PublishResult: ...
