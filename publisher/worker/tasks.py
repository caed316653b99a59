"""The Celery tasks: thin wrappers that hand their argument to the engine.

Each worker process builds its own `Runtime` lazily, after the fork, so no
database connection or socket is shared between processes.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from publisher.worker.runtime import Runtime, current_runtime, reset_runtime


def register(app: Celery) -> None:
    @app.task(name="publisher.deliver", acks_late=True, reject_on_worker_lost=True)
    def deliver(delivery_id: int) -> str:
        return current_runtime(app).engine.deliver(int(delivery_id))

    @app.task(name="publisher.drain", acks_late=True, reject_on_worker_lost=True)
    def drain(channel_type: str) -> int:
        return current_runtime(app).drain(str(channel_type))

    @app.task(name="publisher.notify", acks_late=True, reject_on_worker_lost=True)
    def notify(notification_id: int) -> str:
        return current_runtime(app).notifier.send(int(notification_id))

    @app.task(name="publisher.sweep", acks_late=True)
    def sweep() -> dict[str, Any]:
        return current_runtime(app).sweep()

    @app.task(name="publisher.rebuild_feed", acks_late=True)
    def rebuild_feed(channel: str) -> int:
        return current_runtime(app).rebuild_feed(channel)


@worker_process_init.connect
def _fresh_runtime_after_fork(**_: Any) -> None:
    reset_runtime()


__all__ = ["Runtime", "register"]
