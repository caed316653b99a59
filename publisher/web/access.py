"""What an anonymous read may see once API tokens are configured.

States stay open (an editor's status board, a load balancer), but what is
behind them does not: the attempt log (its messages could map the network a
worker reaches) and the content of an embargoed article (still scheduled, or
a writer's awaiting an editor's approval).
`PUBLISHER_OPEN_READS` opens everything on purpose.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from publisher.config.settings import Settings
from publisher.domain.states import State
from publisher.web.auth import bearer, editor
from publisher.web.schemas import ArticleDetail, ArticleSummary, DeliveryDetail


def reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str | None:
    """The token name of a read, or None for an anonymous one (a bad token is a 401)."""
    return editor(request, credentials) if credentials else None


Reader = Annotated[str | None, Depends(reader)]


def reads_restricted(settings: Settings, who: str | None) -> bool:
    """Whether this read leaves out embargoed content and attempt logs."""
    return who is None and bool(settings.api_tokens) and not settings.open_reads


#: A delivery in one of these keeps its article's content from anonymous readers.
EMBARGOED = (State.SCHEDULED, State.AWAITING_APPROVAL)


def restricted_detail(detail: ArticleDetail) -> ArticleDetail:
    """`detail` for an anonymous reader: no attempt log, and no article content
    while any of its deliveries is still scheduled."""
    deliveries = [restricted_delivery(d) for d in detail.deliveries]
    embargoed = any(d.state in EMBARGOED for d in detail.deliveries)
    article = None if embargoed else detail.article
    return detail.model_copy(update={"deliveries": deliveries, "article": article})


def restricted_summary(summary: ArticleSummary) -> ArticleSummary:
    """A list row for an anonymous reader: an embargoed article shows no title or URL."""
    if any(d.state in EMBARGOED for d in summary.deliveries):
        return summary.model_copy(update={"title": None, "url": None})
    return summary


def restricted_delivery(detail: DeliveryDetail) -> DeliveryDetail:
    return detail.model_copy(update={"log": [], "last_error": None, "last_code": None})
