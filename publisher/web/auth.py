"""Bearer tokens: who is acting, recorded as the actor in the attempt log."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from publisher.domain.i18n import N_
from publisher.web.errors import ApiError

#: Actor names are stored in 64-character columns.
ACTOR_CHARS = 64

bearer = HTTPBearer(
    auto_error=False,
    description="A token from PUBLISHER_API_TOKENS; its name is recorded as the actor.",
)


def _token_name(tokens: dict[str, str], given: str) -> str | None:
    """The name of the matching token. Every token is compared, each in constant
    time, and as digests, so neither a token's content nor its length leaks."""
    found: str | None = None
    candidate = hashlib.sha256(given.encode()).digest()
    for token, name in tokens.items():
        if hmac.compare_digest(candidate, hashlib.sha256(token.encode()).digest()):
            found = name
    return found


def editor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The name of the API token presented: the actor the attempt log records."""
    tokens: dict[str, str] = request.app.state.runtime.settings.api_tokens
    challenge = {"WWW-Authenticate": "Bearer"}
    if not tokens:
        raise ApiError(
            401, "Authorization", "this server has no API tokens (PUBLISHER_API_TOKENS)", challenge
        )
    name = _token_name(tokens, credentials.credentials) if credentials else None
    if name is None:
        problem = N_("a valid bearer token is required") if credentials else N_("is required")
        raise ApiError(401, "Authorization", problem, challenge)
    return name[:ACTOR_CHARS]


Editor = Annotated[str, Depends(editor)]
