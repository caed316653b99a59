"""The HTTP API: editors publish and watch deliveries, followers read the feeds.

`create_app(runtime)` assembles the FastAPI app from the routers in
`publisher.web.routes` around one `Runtime`; nothing here holds state of its
own beyond that. Every error is JSON of one shape,
`{"error": {"field": ..., "problem": ...}}`, so a client can show an editor
exactly what to fix. Mutating calls need `Authorization: Bearer <token>`
with a token from `settings.api_tokens`; the token's *name* is what the
attempt log records as the actor. Reads are open unless
`settings.read_requires_token`; the feeds, covers and `/healthz` are always
open (feed readers and load balancers carry no tokens).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from publisher.domain.article import MAX_FILE_BYTES
from publisher.web.auth import editor
from publisher.web.conditional import DATE_SETTLES_AFTER
from publisher.web.dashboard import dashboard_router
from publisher.web.docs_page import docs_router
from publisher.web.errors import BodyLimit, documented_errors, install_error_handlers
from publisher.web.routes import articles, copy, deliveries, feeds, health, preview
from publisher.worker.runtime import Runtime

__all__ = ["DATE_SETTLES_AFTER", "MAX_BODY_BYTES", "create_app"]

#: The largest request body accepted: anything the CLI accepts as a file.
MAX_BODY_BYTES = MAX_FILE_BYTES


def create_app(runtime: Runtime, *, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The API around `runtime`. The caller owns the runtime (and closes it)."""
    app = FastAPI(
        title="publisher",
        version="0.1.0",
        description=(
            "One article in, every channel out, every delivery tracked. "
            "Mutating calls need `Authorization: Bearer <token>`."
        ),
        docs_url=None,  # served from local assets (publisher.web.docs_page)
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.state.runtime = runtime
    app.state.probes = health.Probes.of(runtime)

    guarded = runtime.settings.read_requires_token

    def include_reads(router: APIRouter) -> None:
        if guarded:
            app.include_router(
                router, dependencies=[Depends(editor)], responses=documented_errors(401)
            )
        else:
            app.include_router(router)

    # The order is the order of /docs.
    include_reads(articles.reads)
    app.include_router(articles.router)
    include_reads(deliveries.reads)
    app.include_router(deliveries.router)
    # Preview does the full parse and format work for anyone who calls it: a token,
    # unless the operator opened reads on purpose.
    if runtime.settings.open_reads:
        include_reads(preview.reads)
    else:
        app.include_router(
            preview.reads, dependencies=[Depends(editor)], responses=documented_errors(401)
        )
    include_reads(copy.reads)
    app.include_router(feeds.router)
    app.include_router(health.router)
    include_reads(health.reads)
    app.include_router(dashboard_router(read_requires_token=guarded))
    app.include_router(docs_router())
    return app
