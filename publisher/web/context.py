"""How a handler reaches the process's `Runtime`: one dependency.

`create_app` puts the runtime on `app.state`; handlers ask for `CurrentRuntime`
instead of closing over it, so routers are plain module-level code and a test
can build two apps over two runtimes in one process.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from publisher.worker.runtime import Runtime


async def current_runtime(request: Request) -> Runtime:
    """The runtime `create_app` was given (async: no thread hop per request)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


CurrentRuntime = Annotated[Runtime, Depends(current_runtime)]
