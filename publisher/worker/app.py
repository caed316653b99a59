"""The Celery app of a worker or a beat: the configured app with every task registered.

Kept apart from `celery_app` so that sending a task (the API, the CLI, the
runtime) never imports the code that runs one.
"""

from __future__ import annotations

from celery import Celery

from publisher.config.settings import Settings
from publisher.worker import periodic, tasks
from publisher.worker.celery_app import configure_celery


def create_celery(settings: Settings, *, start_redis: bool = True) -> Celery:
    app = configure_celery(settings, start_redis=start_redis)
    tasks.register(app)
    periodic.register(app)
    return app
