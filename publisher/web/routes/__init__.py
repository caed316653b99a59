"""The API's routers, one module per resource.

Each module has `router`, its routes as they always are (mutating calls take
a token themselves: `Editor`, `Author` with its role, or `DeskEditor`, which a
writer under approval is refused), and may have `reads`, the reads that an operator can
put behind a token (`PUBLISHER_READ_REQUIRES_TOKEN`): `create_app` decides
that once, when it includes them. Handlers reach the runtime through
`publisher.web.context.CurrentRuntime`.
"""
