"""Worker wiring: the Celery app, its tasks, the dispatcher that enqueues
them, the beat's schedule and its one-beat lock, and the `Runtime` that
assembles store, channels and engine in one process.
"""
