"""The API alone, for an ASGI server on a machine of its own:

    uvicorn publisher.asgi:app --host 0.0.0.0 --port 8000

Workers and the one beat run elsewhere (`publisher worker`, `publisher beat`);
`publisher serve` is the one-machine alternative that starts all of them.
"""

from __future__ import annotations

from publisher.api import create_app
from publisher.net.redact import install_log_redaction
from publisher.runtime import Runtime
from publisher.settings import Settings

settings = Settings.load()
install_log_redaction(settings)  # uvicorn's and urllib3's records too
app = create_app(Runtime(settings))
