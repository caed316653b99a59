"""The API alone, for an ASGI server on a machine of its own:

    uvicorn publisher.asgi:app --host 0.0.0.0 --port 8000

Workers and the one beat run elsewhere (`publisher worker`, `publisher beat`);
`publisher serve` is the one-machine alternative that starts all of them.
The API brings the schema up to date before it answers, like the worker and
the beat, so the three may start in any order (see `publisher.store.db.migrate`).
"""

from __future__ import annotations

from publisher.config.settings import Settings
from publisher.net.redact import install_log_redaction
from publisher.web.api import create_app
from publisher.worker.runtime import Runtime

settings = Settings.load()
install_log_redaction(settings)  # uvicorn's and urllib3's records too
runtime = Runtime(settings)
runtime.store.migrate()
app = create_app(runtime)
