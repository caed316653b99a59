"""What goes over the wire: the API's request and response models.

They are the OpenAPI schema's components, so a renamed field here is a
breaking change for every generated client (tests/web/test_openapi_schema.py
holds the schema as published). `delivery_out` and `delivery_detail` build
responses from store rows, in one place, so every route shows a delivery alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from publisher.domain.article import Article, parse_article
from publisher.domain.states import SETTLED, Approval, Kind, State
from publisher.store.models import AttemptRow, DeliveryRow
from publisher.web.params import ARTICLE_ID, HTTP_URL


class ArticleIn(BaseModel):
    """An article as an editor posts it; `publisher.domain.article.parse_article` has the
    final word (sanitizing, limits, time zones) and names the field at fault."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [{"required": ["body_html"]}, {"required": ["body_markdown"]}],
            "examples": [
                {
                    "id": "2026-11-20-skills-contest",
                    "url": "https://news.example.org/2026/11/20/skills-contest",
                    "title": "Skills contest opens in Shanghai",
                    "body_markdown": "More than **2,000** contestants ...",
                    "tags": ["skills", "youth"],
                    "published_at": "2026-11-20T08:00:00+08:00",
                }
            ],
        },
    )

    id: str = Field(pattern=ARTICLE_ID, description="stable id; re-posting it is an update")
    url: str = Field(
        description="the article's absolute http(s) URL on the site",
        json_schema_extra={"pattern": HTTP_URL},
    )
    title: str
    body_html: str | None = Field(None, description="give this or body_markdown")
    body_markdown: str | None = None
    summary: str | None = None
    author: str | None = None
    source: str | None = None
    tags: list[str] | str | None = None
    cover_image: str | None = Field(
        None, description="an http(s) URL", json_schema_extra={"pattern": HTTP_URL}
    )
    cover_alt: str | None = Field(None, description="the cover's alternative text")
    overrides: dict[str, dict[str, str | None]] | None = Field(
        None,
        description="copy per channel name: text, title, digest, summary, spoiler_text, "
        "visibility, each checked against that channel's own rules",
        examples=[{"weibo": {"text": "亲手写的微博"}, "wechat": {"title": "标题"}}],
    )
    language: str | None = Field(None, description="a language tag such as 'en' or 'zh-CN'")
    published_at: datetime | None = Field(
        None, description="ISO 8601; without a UTC offset it is read in `timezone`"
    )
    publish_at: datetime | None = Field(
        None,
        description=(
            "deliver at this time instead of now; without a UTC offset it is read in "
            "`timezone`, and a time a daylight-saving change skips or repeats is refused"
        ),
    )
    timezone: str | None = Field(
        None,
        description="IANA zone for times without an offset (default: the newsroom's zone)",
        examples=["Asia/Shanghai", "America/New_York"],
    )
    channels: list[str] | str | None = Field(
        None, description="only these channels (default: every configured channel)"
    )

    def parse(self, default_timezone: str | None = None) -> Article:
        return parse_article(self.model_dump(exclude_unset=True), default_timezone=default_timezone)


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    started_at: datetime
    duration_ms: int
    outcome: str = Field(description="delivered, retry, failed; or an editor's retry/cancelled")
    http_status: int | None
    platform_code: str | None
    message: str | None
    actor: str | None = Field(description="the editor (API token name) for editors' actions")


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    article_id: str
    article_version: int
    channel: str
    channel_type: str
    kind: Kind = Field(description="publish, correction (a follow-up or republish) or retract")
    state: State
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None = Field(description="when the next attempt is due")
    publish_at: datetime | None
    held_until: datetime | None = Field(
        None, description="`held`: when its slot comes (no attempt is spent waiting)"
    )
    held_reason: str | None = Field(
        None, description="`held`: why it waits (rate limit, quiet hours, spacing)"
    )
    last_error: str | None
    last_code: str | None
    remote_id: str | None
    remote_url: str | None = Field(description="where followers read it")
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


class DeliveryDetail(DeliveryOut):
    log: list[AttemptOut] = Field(description="every attempt and editor action, oldest first")


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    total: int
    limit: int
    offset: int


class PublishOut(BaseModel):
    id: str
    version: int
    created: bool = Field(description="the article was new")
    changed: bool = Field(description="a new version was stored (False: same content again)")
    rescheduled: bool = Field(
        False, description="same content, another publish_at: waiting deliveries were moved"
    )
    deliveries: list[DeliveryOut]


class ArticleDetail(BaseModel):
    id: str
    version: int
    created_at: datetime
    updated_at: datetime
    published_at: datetime
    retracted_at: datetime | None
    actor: str | None
    article: Article | None = Field(
        description="null for an anonymous reader while a delivery is scheduled or "
        "awaiting approval (embargo)"
    )
    approval: Approval | None = Field(
        None,
        description="the current version's approval under `[newsroom] approval`: "
        "awaiting (a writer's, until an editor approves or rejects it), approved or "
        "rejected; null when none was asked",
    )
    deliveries: list[DeliveryDetail]


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(
        None,
        ge=1,
        description="the version the editor read; refused (409) if another is awaiting now",
    )


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500, description="kept in the attempt log")
    version: int | None = Field(None, ge=1, description="the version the editor read")


class DeliveryBrief(BaseModel):
    id: int
    channel: str
    kind: Kind
    state: State


class ArticleSummary(BaseModel):
    id: str
    version: int
    title: str | None
    url: str | None
    created_at: datetime
    updated_at: datetime
    retracted_at: datetime | None
    deliveries: list[DeliveryBrief]


class ArticlePage(BaseModel):
    items: list[ArticleSummary]
    total: int
    limit: int
    offset: int


class BulkRetryOut(BaseModel):
    retried: list[int]
    skipped: list[int] = Field(description="changed state meanwhile, so left alone")


class ChannelPreview(BaseModel):
    type: str
    payload: dict[str, Any]
    overridden: list[str] = Field(description="payload keys taken from `overrides.<name>`")
    counts: list[dict[str, Any]] = Field(description="each override in the platform's units")
    warnings: list[str] = Field(description="e.g. images without alt text")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(description="each part: 'ok' or what is wrong")


def delivery_out(row: DeliveryRow) -> DeliveryOut:
    out = DeliveryOut.model_validate(row)
    if row.state in SETTLED:  # a stale due time would read as "will try again"
        out.next_attempt_at = None
    if row.state == State.HELD:  # waiting for a slot is not an error
        out.held_until, out.held_reason, out.last_error = row.next_attempt_at, row.last_error, None
    return out


def delivery_detail(row: DeliveryRow, log: Iterable[AttemptRow]) -> DeliveryDetail:
    return DeliveryDetail(
        **delivery_out(row).model_dump(),
        log=[AttemptOut.model_validate(a) for a in log],
    )
