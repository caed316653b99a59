"""Bearer tokens: who is acting, recorded as the actor in the attempt log, and,
under `[newsroom] approval`, in which role (`name:token:role` in
PUBLISHER_API_TOKENS): a writer's articles wait for an editor, and a writer
may not approve, retry, cancel or retract. A token without a role, and every
token while approval is off, has an editor's rights.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from publisher.domain.i18n import N_, Phrase
from publisher.domain.states import Role
from publisher.web.errors import ApiError

#: Actor names are stored in 64-character columns.
ACTOR_CHARS = 64

bearer = HTTPBearer(
    auto_error=False,
    description="A token from PUBLISHER_API_TOKENS; its name is recorded as the actor.",
)


@dataclass(frozen=True)
class Actor:
    """Who presented the token, and whether their articles wait for an editor."""

    name: str
    role: Role

    @property
    def is_writer(self) -> bool:
        return self.role == Role.WRITER


def _token_match(tokens: dict[str, str], given: str) -> str | None:
    """The matching token. Every token is compared, each in constant time,
    and as digests, so neither a token's content nor its length leaks."""
    found: str | None = None
    candidate = hashlib.sha256(given.encode()).digest()
    for token in tokens:
        if hmac.compare_digest(candidate, hashlib.sha256(token.encode()).digest()):
            found = token
    return found


def actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    """The API token presented: its name (the actor the attempt log records) and its
    role, which is `editor` unless approval is on and the token was given another."""
    settings = request.app.state.runtime.settings
    tokens: dict[str, str] = settings.api_tokens
    challenge = {"WWW-Authenticate": "Bearer"}
    if not tokens:
        raise ApiError(
            401, "Authorization", "this server has no API tokens (PUBLISHER_API_TOKENS)", challenge
        )
    token = _token_match(tokens, credentials.credentials) if credentials else None
    if token is None:
        problem = N_("a valid bearer token is required") if credentials else N_("is required")
        raise ApiError(401, "Authorization", problem, challenge)
    role = settings.token_roles.get(token, Role.EDITOR) if settings.approval else Role.EDITOR
    return Actor(tokens[token][:ACTOR_CHARS], role)


def editor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The name of the API token presented, whatever its role."""
    return actor(request, credentials).name


def desk_editor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The name of a token with an editor's rights: a writer's is refused (403)."""
    who = actor(request, credentials)
    if who.is_writer:
        raise ApiError(
            403,
            "Authorization",
            Phrase(
                "{name} is a {role}: only an editor may do this",
                name=who.name,
                role=Phrase(str(who.role)),
            ),
        )
    return who.name


#: Any valid token (its name): publishing, previews, reads.
Editor = Annotated[str, Depends(editor)]
#: Any valid token with its role: what a writer posts waits for approval.
Author = Annotated[Actor, Depends(actor)]
#: A token with an editor's rights: approve, reject, retry, cancel, retract.
DeskEditor = Annotated[str, Depends(desk_editor)]
