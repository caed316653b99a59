"""`/docs`: Swagger UI from the `swagger-ui-bundle` wheel, under the dashboard's CSP.

FastAPI's default page loads Swagger UI from a CDN: blank on a newsroom's
offline network, and third-party script on the dashboard's origin. Here the
files come from the installed wheel, the page's start-up code is a file of
its own (the policy allows no inline script), and every response carries the
dashboard's Content-Security-Policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import swagger_ui_bundle
from fastapi import APIRouter, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse

from publisher.web.dashboard import PAGE_HEADERS

BUNDLE = Path(swagger_ui_bundle.swagger_ui_path)
FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
INIT = b"""window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
"""
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>publisher API</title>
<link rel="icon" href="/docs/static/favicon-32x32.png">
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
<script src="/docs/static/swagger-ui-bundle.js" defer></script>
<script src="/docs/static/init.js" defer></script>
</head>
<body><div id="swagger-ui"></div></body>
</html>
"""


def docs_router() -> APIRouter:
    """`GET /docs` and its assets, for `create_app` to include."""
    router = APIRouter(include_in_schema=False)
    assets = {name: (BUNDLE / name).read_bytes() for name in FILES}
    assets["init.js"] = INIT
    types = {**FILES, "init.js": "text/javascript; charset=utf-8"}
    headers = {**PAGE_HEADERS, "Cache-Control": "public, max-age=3600"}

    @router.get("/docs", response_class=HTMLResponse)
    def docs() -> HTMLResponse:
        return HTMLResponse(PAGE, headers=PAGE_HEADERS)

    @router.get("/docs/static/{name}")
    def asset(name: Annotated[str, PathParam(pattern=r"^[a-z0-9.-]+$")]) -> Response:
        if name not in assets:
            return Response(status_code=404, headers=PAGE_HEADERS)
        return Response(assets[name], media_type=types[name], headers=headers)

    return router
