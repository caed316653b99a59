"""The WeChat sandbox's platform facts: limits, error codes, the records it keeps.

Everything here is what reference/channel-apis.md §1 and §7 say the real
platform does; `state` applies it and `app` speaks HTTP.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

DEFAULT_SECRET = "sandbox-secret-0123456789abcdef"  # a test credential, not a secret
DEFAULT_SECRET = "sandbox-secret-0123456789abcdef"  # a test credential, not a secret
PUBLISH_FAULT_PATH = "job:freepublish"

TITLE_LIMIT = 32
AUTHOR_LIMIT = 16
DIGEST_LIMIT = 128
CONTENT_CHARS = 20_000
CONTENT_BYTES = 1_000_000
SOURCE_URL_BYTES = 1024
MAX_ARTICLES = 8
AUTO_DIGEST_CHARS = 54
CLIENTMSGID_BYTES = 64
CLIENTMSGID_DAYS = 1
CHINA = timezone(timedelta(hours=8))  # quota days and page dates are Beijing time

# (size limit, accepted extensions, accepted sniffed types) per upload kind
UPLOAD_RULES: dict[str, tuple[int, frozenset[str], frozenset[str]]] = {
    "image": (
        10 * 1024 * 1024,
        frozenset({"bmp", "png", "jpeg", "jpg", "gif"}),
        frozenset({"bmp", "png", "jpeg", "gif"}),
    ),
    "thumb": (64 * 1024, frozenset({"jpg", "jpeg"}), frozenset({"jpeg"})),
    "uploadimg": (1024 * 1024 - 1, frozenset({"jpg", "jpeg", "png"}), frozenset({"jpeg", "png"})),
    "voice": (2 * 1024 * 1024, frozenset({"mp3", "wma", "wav", "amr"}), frozenset()),
    "video": (10 * 1024 * 1024, frozenset({"mp4"}), frozenset()),
}
MEDIA_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "bmp": "image/bmp",
}

# What the platform lets through in article HTML (in practice: inline style only).
KEPT_TAGS = {
    "section", "div", "p", "span", "strong", "b", "em", "i", "u", "s", "del", "ins", "sub", "sup",
    "small", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "code",
    "table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "img", "br", "hr", "a",
    "figure", "figcaption",
}  # fmt: skip
KEPT_ATTRIBUTES = {
    "*": {"style"},
    "img": {"src", "alt", "width", "height", "data-src"},
    "a": {"href"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}
IMG_WITHOUT_SRC = re.compile(r"<img(?![^>]*\ssrc=)[^>]*>", re.I)
SCRIPTY = re.compile(r"<script\b|\son[a-z]+\s*=|javascript:", re.I)
IMG_SRC = re.compile(r"<img\b[^>]*?\ssrc\s*=\s*[\"']?([^\"'\s>]+)", re.I)
TAG = re.compile(r"<[^>]+>")
UNICODE_ESCAPE = re.compile(r"(\\+)u([0-9a-fA-F]{4})")

ERRMSG = {
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40004: "invalid media type",
    40005: "invalid file type",
    40007: "invalid media_id",
    40009: "invalid image size",
    40013: "invalid appid",
    40125: "invalid appsecret",
    41001: "access_token missing",
    41005: "media data missing",
    45002: "content size out of limit",
    45003: "title size out of limit",
    45004: "description size out of limit",
    45005: "url size out of limit",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit mustslower retry next minute",
    45028: "has no masssend quota",
    45065: "clientmsgid exist",
    45067: "clientmsgid size out of limit",
    45110: "author size out of limit",
    47001: "data format error",
    47003: "argument invalid!",
    53600: "Article ID 无效",
}


class WechatApiError(Exception):
    """A platform error: the HTTP layer turns it into HTTP 200 + errcode."""

    def __init__(self, code: int, detail: str = "", **extra: Any) -> None:
        message = ERRMSG.get(code, "system error")
        super().__init__(f"{message} {detail}".strip())
        self.code = code
        self.errmsg = f"{message} {detail}".strip()
        self.extra = extra


def error_body(code: int, errmsg: str, **extra: Any) -> dict[str, Any]:
    return {"errcode": code, "errmsg": f"{errmsg} rid: {secrets.token_hex(4)}", **extra}


@dataclass
class Token:
    value: str
    expires_at: float


@dataclass
class Material:
    media_id: str
    kind: str
    data: bytes
    content_type: str
    url: str | None


@dataclass
class Draft:
    media_id: str
    articles: list[dict[str, Any]]
    update_time: int
    seq: int = 0  # orders drafts saved in the same second, newest first


@dataclass
class Job:
    publish_id: str
    draft: Draft
    ready_at: float
    outcome: int  # the publish_status the job ends with
    msg_data_id: int
    status: int = 1
    article_id: str | None = None


@dataclass
class Published:
    article_id: str
    draft_media_id: str
    articles: list[dict[str, Any]]
    update_time: int
    deleted: list[bool] = field(default_factory=list)
    seq: int = 0  # orders items published in the same second, newest first

    @property
    def live(self) -> bool:
        return not all(self.deleted)


@dataclass
class Counters:
    token_fetches: int = 0
    drafts_created: int = 0
    publish_submits: int = 0
    mass_sends: int = 0
    duplicate_posts: int = 0
    external_images_received: int = 0
    scripts_received: int = 0
    escaped_unicode_bodies: int = 0
    published_pages: int = 0  # freepublish/batchget answers: what a lookup cost
    draft_pages: int = 0
    quota_refusals: int = 0  # 45009 answers


def new_token() -> str:
    return secrets.token_urlsafe(96)


def sniff(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    return None


def own_image(src: str, base: str) -> bool:
    return bool(base) and src.startswith(f"{base}/mmbiz/")


def text_field(
    raw: dict[str, Any], key: str, limit: int, code: int, *, required: bool = False
) -> str:
    value = raw.get(key) or ""
    if not isinstance(value, str):
        raise WechatApiError(47003, f"{key} must be a string")
    if required and not value.strip():
        raise WechatApiError(47003, f"{key} is empty")
    if len(value) > limit:  # 字: counted in code points
        raise WechatApiError(code)
    return value


def flag_field(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key, 0)
    if value not in (0, 1) or isinstance(value, float):
        raise WechatApiError(47003, f"{key} must be 0 or 1")
    return int(value)


def page_of(items: list[Any], offset: Any, count: Any) -> list[Any]:
    if not isinstance(offset, int) or offset < 0:
        raise WechatApiError(47003, "offset")
    if not isinstance(count, int) or not 1 <= count <= 20:
        raise WechatApiError(47003, "count must be 1 to 20")
    return items[offset : offset + count]


def news_items(articles: list[dict[str, Any]], no_content: Any) -> list[dict[str, Any]]:
    if no_content == 1:
        return [{k: v for k, v in a.items() if k != "content"} for a in articles]
    return [dict(a) for a in articles]


def keep_escape_literal(match: re.Match[str]) -> str:
    """Double the backslash of a `\\uXXXX` escape of a non-ASCII character."""
    slashes, code = match.group(1), match.group(2)
    if len(slashes) % 2 == 1 and int(code, 16) >= 0x80:
        return slashes + "\\u" + code
    return match.group(0)


def base_of(draft: Draft) -> str:
    url = draft.articles[0].get("url", "") if draft.articles else ""
    return url.split("/preview/", 1)[0]


def beijing_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, CHINA).strftime("%Y-%m-%d %H:%M")
