"""A stand-in for the WeChat Official Account API, faithful to `reference/channel-apis.md` §1.

It exists because nothing like it does: no server-side emulator of token,
material, draft, freepublish and mass send was found, and the real platform
needs a certified account and a whitelisted IP. Clients written for the real
API (our channel, wechatpy) run against it unchanged once pointed at its
base URL.

What it reproduces, because the channel's correctness depends on it:

- HTTP 200 for everything, errors as `{"errcode", "errmsg": "... rid: ..."}`;
  41001 without a token, 40001 for an invalid or expired one, 47001 for a
  body that is not JSON.
- `stable_token` returns the same token while it is valid, with what is left
  of its lifetime, and rotates it `token_overlap` seconds before expiry;
  `force_refresh` rotates at once and the old token dies after the overlap.
  `/token` is separate, and each call ends older `/token` tokens after the
  overlap. `token_lifetime` is configurable so tests can watch a token expire.
- Drafts validated like the platform: title ≤ 32, author ≤ 16, digest ≤ 128
  (code points), content < 20 000 characters and < 1 MB, a *permanent*
  `thumb_media_id` (else 40007); scripts, event handlers and external
  `<img>` sources are removed from stored content; bodies are raw UTF-8, so a
  `\\uXXXX` escape for a non-ASCII character is stored literally, garbled.
- `freepublish/submit` only accepts a job: it completes `publish_delay`
  seconds later (status 1, then 0 or a failure), the draft then leaves the
  draft box, and the article gets a page this sandbox serves to followers.
- `message/mass/sendall` de-duplicates `clientmsgid` (45065 with the first
  `msg_id`), enforces a daily quota (45028) and 60 calls a minute (45011).

Faults come from `sandbox/faults.py`: queue one for an endpoint path. One
extra pseudo-path, `job:freepublish`, is consumed when a publish job is
accepted: mode `error` with `code` 2, 3 or 4 makes that job end with that
`publish_status`. `/_control/stats` gives the counts tests check, above all
`duplicate_posts`: drafts or published articles that are a second copy of
one article (same `content_source_url`), which must stay zero.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import nh3
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile

from sandbox.faults import FaultInjector, control_router, install_fault_middleware

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
_MEDIA_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "bmp": "image/bmp",
}

# What the platform lets through in article HTML (in practice: inline style only).
_KEPT_TAGS = {
    "section", "div", "p", "span", "strong", "b", "em", "i", "u", "s", "del", "ins", "sub", "sup",
    "small", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "code",
    "table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "img", "br", "hr", "a",
    "figure", "figcaption",
}  # fmt: skip
_KEPT_ATTRIBUTES = {
    "*": {"style"},
    "img": {"src", "alt", "width", "height", "data-src"},
    "a": {"href"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}
_IMG_WITHOUT_SRC = re.compile(r"<img(?![^>]*\ssrc=)[^>]*>", re.I)
_SCRIPTY = re.compile(r"<script\b|\son[a-z]+\s*=|javascript:", re.I)
_IMG_SRC = re.compile(r"<img\b[^>]*?\ssrc\s*=\s*[\"']?([^\"'\s>]+)", re.I)
_TAG = re.compile(r"<[^>]+>")
_UNICODE_ESCAPE = re.compile(r"(\\+)u([0-9a-fA-F]{4})")

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
class _Token:
    value: str
    expires_at: float


@dataclass
class _Material:
    media_id: str
    kind: str
    data: bytes
    content_type: str
    url: str | None


@dataclass
class _Draft:
    media_id: str
    articles: list[dict[str, Any]]
    update_time: int


@dataclass
class _Job:
    publish_id: str
    draft: _Draft
    ready_at: float
    outcome: int  # the publish_status the job ends with
    msg_data_id: int
    status: int = 1
    article_id: str | None = None


@dataclass
class _Published:
    article_id: str
    draft_media_id: str
    articles: list[dict[str, Any]]
    update_time: int
    deleted: list[bool] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return not all(self.deleted)


@dataclass
class _Counters:
    token_fetches: int = 0
    drafts_created: int = 0
    publish_submits: int = 0
    mass_sends: int = 0
    duplicate_posts: int = 0
    external_images_received: int = 0
    scripts_received: int = 0
    escaped_unicode_bodies: int = 0


class WechatState:
    """Everything the sandbox holds, behind one lock (handlers and control run in threads)."""

    def __init__(
        self,
        *,
        appid: str,
        secret: str,
        token_lifetime: float,
        token_overlap: float | None,
        publish_delay: float,
        mass_quota_per_day: int,
        mass_rate_per_minute: int,
        force_refresh_interval: float,
        force_refresh_per_day: int,
    ) -> None:
        self.appid = appid
        self.secret = secret
        self.token_lifetime = token_lifetime
        self.token_overlap = (
            min(300.0, token_lifetime / 24) if token_overlap is None else token_overlap
        )
        self.publish_delay = publish_delay
        self.mass_quota_per_day = mass_quota_per_day
        self.mass_rate_per_minute = mass_rate_per_minute
        self.force_refresh_interval = force_refresh_interval
        self.force_refresh_per_day = force_refresh_per_day
        self.lock = threading.RLock()
        self.stable_tokens: list[_Token] = []
        self.classic_tokens: list[_Token] = []
        self.force_refreshes: list[float] = []
        self._clear()

    def _clear(self) -> None:
        self.counters = _Counters()
        self.materials: dict[str, _Material] = {}
        self.files: dict[str, _Material] = {}  # served under /mmbiz/<name>
        self.drafts: dict[str, _Draft] = {}
        self.jobs: dict[str, _Job] = {}
        self.published: dict[str, _Published] = {}
        self.received: list[dict[str, Any]] = []
        self.clientmsgids: dict[str, tuple[int, float]] = {}
        self.mass_calls: list[float] = []
        self.mass_days: dict[str, int] = {}
        self.sequence = 0

    def reset(self) -> None:
        """Forget content and counters; issued tokens stay valid so client caches do too."""
        with self.lock:
            self._clear()

    def next_id(self) -> int:
        self.sequence += 1
        return self.sequence

    # ---- tokens ---------------------------------------------------------------------------

    def check_credentials(self, grant_type: Any, appid: Any, secret: Any) -> None:
        if grant_type != "client_credential":
            raise WechatApiError(40002)
        if appid != self.appid:
            raise WechatApiError(40013)
        if not isinstance(secret, str) or not secrets.compare_digest(secret, self.secret):
            raise WechatApiError(40125)

    def stable_token(self, force_refresh: bool) -> dict[str, Any]:
        """Same token while valid; rotate `token_overlap` s before expiry or when forced."""
        with self.lock:
            now = time.time()
            self.stable_tokens = [t for t in self.stable_tokens if t.expires_at > now]
            current = self.stable_tokens[-1] if self.stable_tokens else None
            if force_refresh:
                self._check_force_quota(now)
                for old in self.stable_tokens:
                    old.expires_at = min(old.expires_at, now + self.token_overlap)
                current = None
            elif current is not None and current.expires_at - now <= self.token_overlap:
                current = None  # rotation window: new token, the old one lives out its time
            if current is None:
                current = _Token(_new_token(), now + self.token_lifetime)
                self.stable_tokens.append(current)
            self.counters.token_fetches += 1
            return {
                "access_token": current.value,
                "expires_in": self._seconds(current.expires_at - now),
            }

    def classic_token(self) -> dict[str, Any]:
        """`/cgi-bin/token`: a new token every call; older ones die after the overlap."""
        with self.lock:
            now = time.time()
            for old in self.classic_tokens:
                old.expires_at = min(old.expires_at, now + self.token_overlap)
            self.classic_tokens = [t for t in self.classic_tokens if t.expires_at > now]
            token = _Token(_new_token(), now + self.token_lifetime)
            self.classic_tokens.append(token)
            self.counters.token_fetches += 1
            return {"access_token": token.value, "expires_in": self._seconds(self.token_lifetime)}

    def _check_force_quota(self, now: float) -> None:
        self.force_refreshes = [t for t in self.force_refreshes if now - t < 86400]
        if len(self.force_refreshes) >= self.force_refresh_per_day:
            raise WechatApiError(45009)
        if self.force_refreshes and now - self.force_refreshes[-1] < self.force_refresh_interval:
            raise WechatApiError(45011)
        self.force_refreshes.append(now)

    def _seconds(self, remaining: float) -> float | int:
        """Whole seconds like the platform, except for the sub-minute lifetimes of tests."""
        return int(remaining) if self.token_lifetime >= 60 else round(max(0.0, remaining), 3)

    def check_token(self, token: str | None) -> None:
        if not token:
            raise WechatApiError(41001)
        now = time.time()
        with self.lock:
            for known in (*self.stable_tokens, *self.classic_tokens):
                if secrets.compare_digest(known.value, token) and known.expires_at > now:
                    return
        raise WechatApiError(40001)

    # ---- media ----------------------------------------------------------------------------

    def add_file(
        self, kind: str, filename: str, data: bytes, base: str, *, permanent: bool
    ) -> _Material:
        """Check an upload against its kind's limits and keep it (served under /mmbiz/)."""
        if kind not in UPLOAD_RULES:
            raise WechatApiError(40004)
        limit, extensions, sniffable = UPLOAD_RULES[kind]
        extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        sniffed = _sniff(data)
        if extension not in extensions or (sniffable and sniffed not in sniffable):
            raise WechatApiError(40005)
        if len(data) > limit:
            raise WechatApiError(40009)
        with self.lock:
            media_id = secrets.token_urlsafe(32)
            name = f"{secrets.token_hex(12)}.{extension}"
            is_image = sniffed is not None and kind in ("image", "uploadimg", "thumb")
            url = f"{base}/mmbiz/{name}" if is_image else None
            material = _Material(
                media_id, kind, data, _MEDIA_TYPES.get(sniffed or "", "application/octet-stream"),
                url,
            )  # fmt: skip
            self.files[name] = material
            if permanent:
                self.materials[media_id] = material
            return material

    def permanent_image(self, media_id: Any) -> _Material:
        material = self.materials.get(media_id) if isinstance(media_id, str) else None
        if material is None or material.kind not in ("image", "thumb"):
            raise WechatApiError(40007)
        return material

    # ---- drafts ---------------------------------------------------------------------------

    def add_draft(self, articles: Any, base: str) -> dict[str, Any]:
        if not isinstance(articles, list) or not 1 <= len(articles) <= MAX_ARTICLES:
            raise WechatApiError(47003, "articles must hold 1 to 8 articles")
        with self.lock:
            self._advance()
            stored = [self._article(a, i, len(articles), base) for i, a in enumerate(articles)]
            draft = _Draft(secrets.token_urlsafe(48), stored, int(time.time()))
            if any(self._has_copy(a["content_source_url"]) for a in stored):
                self.counters.duplicate_posts += 1
            for index, article in enumerate(stored, 1):
                article["url"] = f"{base}/preview/{draft.media_id}/{index}"
            self.drafts[draft.media_id] = draft
            self.counters.drafts_created += 1
            return {"media_id": draft.media_id}

    def update_draft(self, media_id: Any, index: Any, article: Any, base: str) -> None:
        with self.lock:
            self._advance()
            draft = self.draft(media_id)
            if not isinstance(index, int) or not 0 <= index < len(draft.articles):
                raise WechatApiError(47003, "index out of range")
            stored = self._article(article, index, len(draft.articles), base)
            stored["url"] = draft.articles[index]["url"]
            draft.articles[index] = stored
            draft.update_time = int(time.time())

    def _article(self, raw: Any, index: int, count: int, base: str) -> dict[str, Any]:
        """Validate one article like `draft/add` does and store what the platform keeps."""
        if not isinstance(raw, dict):
            raise WechatApiError(47003, f"articles[{index}] must be an object")
        self.received.append(dict(raw))
        article_type = raw.get("article_type") or "news"
        if article_type not in ("news", "newspic"):
            raise WechatApiError(47003, "article_type")
        title = _text_field(raw, "title", TITLE_LIMIT, 45003, required=True)
        author = _text_field(raw, "author", AUTHOR_LIMIT, 45110)
        digest = _text_field(raw, "digest", DIGEST_LIMIT, 45004)
        raw_content = raw.get("content")
        if not isinstance(raw_content, str) or not raw_content.strip():
            raise WechatApiError(47003, "content is empty")
        if len(raw_content) >= CONTENT_CHARS or len(raw_content.encode()) >= CONTENT_BYTES:
            raise WechatApiError(45002)
        source_url = raw.get("content_source_url") or ""
        if not isinstance(source_url, str) or len(source_url.encode()) > SOURCE_URL_BYTES:
            raise WechatApiError(45005)
        thumb = self._thumb(raw, article_type)
        flags = {k: _flag(raw, k) for k in ("need_open_comment", "only_fans_can_comment")}
        self._note_hostile(raw_content, base)
        content = self._clean(raw_content, base)
        if not digest and count == 1:
            digest = html.unescape(_TAG.sub("", content))[:AUTO_DIGEST_CHARS]
        return {
            "article_type": article_type,
            "title": title,
            "author": author,
            "digest": digest if count == 1 else "",
            "content": content,
            "content_source_url": source_url,
            "thumb_media_id": thumb.media_id if thumb else "",
            "thumb_url": thumb.url if thumb else "",
            "show_cover_pic": 0,
            **flags,
        }

    def _thumb(self, raw: dict[str, Any], article_type: str) -> _Material | None:
        if article_type == "news":
            return self.permanent_image(raw.get("thumb_media_id"))
        images = (raw.get("image_info") or {}).get("image_list")
        if not isinstance(images, list) or not 1 <= len(images) <= 20:
            raise WechatApiError(47003, "image_info.image_list must hold 1 to 20 images")
        covers = [self.permanent_image(i.get("image_media_id")) for i in images]
        return covers[0]

    def _note_hostile(self, content: str, base: str) -> None:
        if _SCRIPTY.search(content):
            self.counters.scripts_received += 1
        external = [s for s in _IMG_SRC.findall(content) if not _own_image(s, base)]
        self.counters.external_images_received += len(external)

    def _clean(self, content: str, base: str) -> str:
        """What the platform stores: no JS, no classes, no external images, inline style only."""

        def keep(tag: str, attribute: str, value: str) -> str | None:
            if tag == "img" and attribute in ("src", "data-src"):
                return value if _own_image(value, base) else None
            if tag == "a" and attribute == "href":
                return value if value.startswith(f"{base}/s/") else None
            return value

        cleaned = nh3.clean(
            content,
            tags=_KEPT_TAGS,
            clean_content_tags={"script", "style", "iframe", "form", "noscript"},
            attributes=_KEPT_ATTRIBUTES,
            attribute_filter=keep,
            url_schemes={"http", "https"},
            link_rel=None,
            strip_comments=True,
        )
        return _IMG_WITHOUT_SRC.sub("", cleaned)

    def _has_copy(self, source_url: str) -> bool:
        """Is there already a live draft or published article for this original URL?"""
        if not source_url:
            return False
        drafts = (a for d in self.drafts.values() for a in d.articles)
        published = (
            a
            for p in self.published.values()
            for a, gone in zip(p.articles, p.deleted, strict=True)
            if not gone
        )
        return any(a["content_source_url"] == source_url for a in (*drafts, *published))

    def draft(self, media_id: Any) -> _Draft:
        draft = self.drafts.get(media_id) if isinstance(media_id, str) else None
        if draft is None:
            raise WechatApiError(40007)
        return draft

    def get_draft(self, media_id: Any) -> dict[str, Any]:
        with self.lock:
            self._advance()
            return {"news_item": [dict(a) for a in self.draft(media_id).articles]}

    def delete_draft(self, media_id: Any) -> None:
        with self.lock:
            self._advance()
            self.draft(media_id)
            del self.drafts[media_id]

    def batch_drafts(self, offset: Any, count: Any, no_content: Any) -> dict[str, Any]:
        with self.lock:
            self._advance()
            drafts = sorted(self.drafts.values(), key=lambda d: -d.update_time)
            page = _page(drafts, offset, count)
            items = [
                {
                    "media_id": d.media_id,
                    "content": {"news_item": _items(d.articles, no_content)},
                    "update_time": d.update_time,
                }
                for d in page
            ]
            return {"total_count": len(drafts), "item_count": len(items), "item": items}

    def count_drafts(self) -> dict[str, Any]:
        with self.lock:
            self._advance()
            return {"total_count": len(self.drafts)}

    # ---- publishing -----------------------------------------------------------------------

    def submit(self, media_id: Any, outcome: int) -> dict[str, Any]:
        with self.lock:
            self._advance()
            draft = self.draft(media_id)
            job = _Job(
                publish_id=str(2_247_483_000 + self.next_id()),
                draft=draft,
                ready_at=time.monotonic() + self.publish_delay,
                outcome=outcome,
                msg_data_id=2_247_483_000 + self.next_id(),
            )
            self.jobs[job.publish_id] = job
            self.counters.publish_submits += 1
            return {
                "errcode": 0,
                "errmsg": "ok",
                "publish_id": job.publish_id,
                "msg_data_id": job.msg_data_id,
            }

    def publish_status(self, publish_id: Any, base: str) -> dict[str, Any]:
        with self.lock:
            self._advance(base)
            job = self.jobs.get(str(publish_id)) if publish_id is not None else None
            if job is None:
                raise WechatApiError(47003, "publish_id not found")
            answer: dict[str, Any] = {"publish_id": job.publish_id, "publish_status": job.status}
            published = self.published.get(job.article_id or "")
            if job.status == 0 and published is not None:
                if not published.live:
                    answer["publish_status"] = 5
                answer["article_id"] = published.article_id
                answer["article_detail"] = {
                    "count": len(published.articles),
                    "item": [
                        {"idx": i, "article_url": a["url"]}
                        for i, a in enumerate(published.articles, 1)
                    ],
                }
            answer["fail_idx"] = [1] if job.status in (2, 3, 4) else []
            return answer

    def _advance(self, base: str = "") -> None:
        """Finish the publish jobs whose time has come (the platform works asynchronously)."""
        now = time.monotonic()
        for job in self.jobs.values():
            if job.status == 1 and now >= job.ready_at:
                self._finish(job, base)

    def _finish(self, job: _Job, base: str) -> None:
        already = any(p.draft_media_id == job.draft.media_id for p in self.published.values())
        if job.outcome != 0 or (job.draft.media_id not in self.drafts and not already):
            job.status = job.outcome or 3  # failed, or the draft was deleted meanwhile
            return
        if already:  # the same draft submitted twice: a second public copy
            self.counters.duplicate_posts += 1
        job.article_id = self._publish(job.draft, base)
        job.status = 0

    def _publish(self, draft: _Draft, base: str) -> str:
        """Turn a draft into a public article; the draft leaves the draft box."""
        article_id = secrets.token_urlsafe(24)
        base = base or _base_of(draft)
        articles = []
        for index, article in enumerate(draft.articles, 1):
            public = dict(article)
            public["url"] = f"{base}/s/{article_id}/{index}"
            articles.append(public)
        self.published[article_id] = _Published(
            article_id, draft.media_id, articles, int(time.time()), [False] * len(articles)
        )
        self.drafts.pop(draft.media_id, None)
        return article_id

    def get_article(self, article_id: Any) -> dict[str, Any]:
        with self.lock:
            self._advance()
            published = self.published.get(article_id) if isinstance(article_id, str) else None
            if published is None:
                raise WechatApiError(53600)
            return {
                "news_item": [
                    {**a, "is_deleted": gone}
                    for a, gone in zip(published.articles, published.deleted, strict=True)
                ]
            }

    def batch_published(self, offset: Any, count: Any, no_content: Any) -> dict[str, Any]:
        with self.lock:
            self._advance()
            live = sorted(
                (p for p in self.published.values() if p.live), key=lambda p: -p.update_time
            )
            items = [
                {
                    "article_id": p.article_id,
                    "content": {
                        "news_item": [
                            {**a, "is_deleted": gone}
                            for a, gone in zip(
                                _items(p.articles, no_content), p.deleted, strict=True
                            )
                        ]
                    },
                    "update_time": p.update_time,
                }
                for p in _page(live, offset, count)
            ]
            return {"total_count": len(live), "item_count": len(items), "item": items}

    def delete_published(self, article_id: Any, index: Any) -> None:
        with self.lock:
            self._advance()
            published = self.published.get(article_id) if isinstance(article_id, str) else None
            if published is None or not published.live:
                raise WechatApiError(53600)
            position = index if isinstance(index, int) else 0
            if not 0 <= position <= len(published.articles):
                raise WechatApiError(47003, "index out of range")
            if position == 0:
                published.deleted = [True] * len(published.articles)
            else:
                published.deleted[position - 1] = True

    # ---- mass send ------------------------------------------------------------------------

    def mass_send(self, body: dict[str, Any], base: str) -> dict[str, Any]:
        with self.lock:
            self._advance(base)
            now = time.time()
            self._check_mass_rate(now)
            clientmsgid = body.get("clientmsgid")
            if clientmsgid is not None:
                if (
                    not isinstance(clientmsgid, str)
                    or len(clientmsgid.encode()) > CLIENTMSGID_BYTES
                ):
                    raise WechatApiError(45067)
                known = self.clientmsgids.get(clientmsgid)
                if known is not None and now - known[1] < CLIENTMSGID_DAYS * 86400:
                    raise WechatApiError(45065, msg_id=known[0])
            self._mass_target(body, base, dry_run=True)
            day = datetime.fromtimestamp(now, CHINA).date().isoformat()
            if self.mass_days.get(day, 0) >= self.mass_quota_per_day:
                raise WechatApiError(45028)
            self._mass_target(body, base, dry_run=False)
            self.mass_days[day] = self.mass_days.get(day, 0) + 1
            msg_id = 1_000_000_000 + self.next_id()
            if clientmsgid is not None:
                self.clientmsgids[clientmsgid] = (msg_id, now)
            self.counters.mass_sends += 1
            return {
                "errcode": 0,
                "errmsg": "send job submission success",
                "msg_id": msg_id,
                "msg_data_id": 2_247_483_000 + self.next_id(),
            }

    def _check_mass_rate(self, now: float) -> None:
        self.mass_calls = [t for t in self.mass_calls if now - t < 60]
        if len(self.mass_calls) >= self.mass_rate_per_minute:
            raise WechatApiError(45011)
        self.mass_calls.append(now)

    def _mass_target(self, body: dict[str, Any], base: str, *, dry_run: bool) -> None:
        """mpnews needs a draft, or a draft already published; a live draft gets published."""
        msgtype = body.get("msgtype")
        if msgtype == "text":
            if not isinstance((body.get("text") or {}).get("content"), str):
                raise WechatApiError(47003, "text.content")
            return
        if msgtype != "mpnews":
            raise WechatApiError(47003, "msgtype")
        media_id = (body.get("mpnews") or {}).get("media_id")
        if media_id in self.drafts:
            if not dry_run:
                self._publish(self.drafts[media_id], base)
            return
        if not any(p.draft_media_id == media_id and p.live for p in self.published.values()):
            raise WechatApiError(40007)

    # ---- views ----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self.lock:
            self._advance()
            return {
                "drafts": len(self.drafts),
                "published": sum(1 for p in self.published.values() if p.live),
                "publishing": sum(1 for j in self.jobs.values() if j.status == 1),
                "materials": len(self.materials),
                **vars(self.counters),
            }

    def live_articles(self) -> list[tuple[_Published, int, dict[str, Any]]]:
        with self.lock:
            self._advance()
            ordered = sorted(self.published.values(), key=lambda p: -p.update_time)
            return [
                (p, i, a)
                for p in ordered
                for i, (a, gone) in enumerate(zip(p.articles, p.deleted, strict=True), 1)
                if not gone
            ]


def create_app(
    *,
    appid: str = "wx-sandbox",
    secret: str = DEFAULT_SECRET,
    token_lifetime: float = 7200.0,
    token_overlap: float | None = None,
    publish_delay: float = 0.3,
    mass_quota_per_day: int = 100,
    mass_rate_per_minute: int = 60,
    force_refresh_interval: float = 30.0,
    force_refresh_per_day: int = 20,
) -> FastAPI:
    """The sandbox app. `token_overlap` defaults to the platform's 300 s, scaled down
    (lifetime / 24) for short test lifetimes. The real mass quota of a subscription
    account is 1 a day; the default is generous so demos can push every article."""
    state = WechatState(
        appid=appid,
        secret=secret,
        token_lifetime=token_lifetime,
        token_overlap=token_overlap,
        publish_delay=publish_delay,
        mass_quota_per_day=mass_quota_per_day,
        mass_rate_per_minute=mass_rate_per_minute,
        force_refresh_interval=force_refresh_interval,
        force_refresh_per_day=force_refresh_per_day,
    )
    injector = FaultInjector()
    app = FastAPI(title="WeChat Official Account sandbox", docs_url="/_docs")
    app.state.wechat = state
    install_fault_middleware(app, injector, _injected_error)
    app.include_router(control_router(injector, state.stats, state.reset))
    _install_error_handler(app)
    _auth_routes(app, state)
    _media_routes(app, state)
    _draft_routes(app, state)
    _publish_routes(app, state, injector)
    _mass_routes(app, state)
    _follower_routes(app, state)
    return app


# ---- HTTP layer ---------------------------------------------------------------------------


def _injected_error(code: int, path: str) -> Response:
    return JSONResponse(error_body(code, ERRMSG.get(code, "system error")))


def _install_error_handler(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WechatApiError)
        return JSONResponse(error_body(exc.code, exc.errmsg, **exc.extra))

    app.add_exception_handler(WechatApiError, handle)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _authorize(request: Request, state: WechatState) -> None:
    state.check_token(request.query_params.get("access_token"))


async def _json(request: Request, *, raw_utf8: bool = False) -> dict[str, Any]:
    """The JSON object body, or 47001. With `raw_utf8`, `\\uXXXX` escapes of
    non-ASCII characters are kept literally, as the draft API does."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
        literal = _UNICODE_ESCAPE.sub(_keep_escape_literal, text) if raw_utf8 else text
        data = json.loads(literal)
    except (UnicodeDecodeError, ValueError):
        raise WechatApiError(47001) from None
    if not isinstance(data, dict):
        raise WechatApiError(47001)
    if literal != text:
        state: WechatState = request.app.state.wechat
        with state.lock:
            state.counters.escaped_unicode_bodies += 1
    return data


async def _authed_json(request: Request, state: WechatState, **kw: bool) -> dict[str, Any]:
    _authorize(request, state)
    return await _json(request, **kw)


def _auth_routes(app: FastAPI, state: WechatState) -> None:
    @app.post("/cgi-bin/stable_token")
    async def stable_token(request: Request) -> Response:
        body = await _json(request)
        state.check_credentials(body.get("grant_type"), body.get("appid"), body.get("secret"))
        force = body.get("force_refresh", False)
        if not isinstance(force, bool):
            raise WechatApiError(47003, "force_refresh must be a boolean")
        return JSONResponse(state.stable_token(force))

    @app.get("/cgi-bin/token")
    async def token(request: Request) -> Response:
        query = request.query_params
        state.check_credentials(query.get("grant_type"), query.get("appid"), query.get("secret"))
        return JSONResponse(state.classic_token())


def _media_routes(app: FastAPI, state: WechatState) -> None:
    async def upload(request: Request) -> tuple[str, bytes]:
        _authorize(request, state)
        form = await request.form()
        media = form.get("media")
        if not isinstance(media, UploadFile):
            raise WechatApiError(41005)
        return media.filename or "", await media.read()

    @app.post("/cgi-bin/material/add_material")
    async def add_material(request: Request) -> Response:
        kind = request.query_params.get("type", "")
        filename, data = await upload(request)
        material = state.add_file(kind, filename, data, _base(request), permanent=True)
        answer: dict[str, Any] = {"media_id": material.media_id}
        if material.url:
            answer["url"] = material.url
        return JSONResponse(answer)

    @app.post("/cgi-bin/media/uploadimg")
    async def uploadimg(request: Request) -> Response:
        filename, data = await upload(request)
        material = state.add_file("uploadimg", filename, data, _base(request), permanent=False)
        return JSONResponse({"url": material.url})

    @app.get("/mmbiz/{name}")
    async def image(name: str) -> Response:
        material = state.files.get(name)
        if material is None:
            return Response(status_code=404)
        return Response(material.data, media_type=material.content_type)


def _draft_routes(app: FastAPI, state: WechatState) -> None:
    @app.post("/cgi-bin/draft/add")
    async def add(request: Request) -> Response:
        body = await _authed_json(request, state, raw_utf8=True)
        return JSONResponse(state.add_draft(body.get("articles"), _base(request)))

    @app.post("/cgi-bin/draft/update")
    async def update(request: Request) -> Response:
        body = await _authed_json(request, state, raw_utf8=True)
        state.update_draft(
            body.get("media_id"), body.get("index"), body.get("articles"), _base(request)
        )
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    @app.post("/cgi-bin/draft/get")
    async def get(request: Request) -> Response:
        body = await _authed_json(request, state)
        return JSONResponse(state.get_draft(body.get("media_id")))

    @app.post("/cgi-bin/draft/delete")
    async def delete(request: Request) -> Response:
        body = await _authed_json(request, state)
        state.delete_draft(body.get("media_id"))
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    @app.post("/cgi-bin/draft/batchget")
    async def batchget(request: Request) -> Response:
        body = await _authed_json(request, state)
        answer = state.batch_drafts(body.get("offset"), body.get("count"), body.get("no_content"))
        return JSONResponse(answer)

    @app.get("/cgi-bin/draft/count")
    async def count(request: Request) -> Response:
        _authorize(request, state)
        return JSONResponse(state.count_drafts())


def _publish_routes(app: FastAPI, state: WechatState, injector: FaultInjector) -> None:
    @app.post("/cgi-bin/freepublish/submit")
    async def submit(request: Request) -> Response:
        body = await _authed_json(request, state)
        fault = injector.take(PUBLISH_FAULT_PATH)
        outcome = fault.code if fault is not None and fault.code in (2, 3, 4) else 0
        return JSONResponse(state.submit(body.get("media_id"), outcome))

    @app.post("/cgi-bin/freepublish/get")
    async def get(request: Request) -> Response:
        body = await _authed_json(request, state)
        return JSONResponse(state.publish_status(body.get("publish_id"), _base(request)))

    @app.post("/cgi-bin/freepublish/getarticle")
    async def getarticle(request: Request) -> Response:
        body = await _authed_json(request, state)
        return JSONResponse(state.get_article(body.get("article_id")))

    @app.post("/cgi-bin/freepublish/batchget")
    async def batchget(request: Request) -> Response:
        body = await _authed_json(request, state)
        answer = state.batch_published(
            body.get("offset"), body.get("count"), body.get("no_content")
        )
        return JSONResponse(answer)

    @app.post("/cgi-bin/freepublish/delete")
    async def delete(request: Request) -> Response:
        body = await _authed_json(request, state)
        state.delete_published(body.get("article_id"), body.get("index"))
        return JSONResponse({"errcode": 0, "errmsg": "ok"})


def _mass_routes(app: FastAPI, state: WechatState) -> None:
    @app.post("/cgi-bin/message/mass/sendall")
    async def sendall(request: Request) -> Response:
        body = await _authed_json(request, state)
        return JSONResponse(state.mass_send(body, _base(request)))

    @app.post("/cgi-bin/message/mass/get")
    async def mass_get(request: Request) -> Response:
        body = await _authed_json(request, state)
        return JSONResponse({"msg_id": body.get("msg_id"), "msg_status": "SEND_SUCCESS"})


def _follower_routes(app: FastAPI, state: WechatState) -> None:
    @app.get("/", response_class=HTMLResponse)
    async def home() -> str:
        rows = [
            f'<li><a href="{html.escape(a["url"])}">{html.escape(a["title"])}</a>'
            f" <small>{html.escape(a['author'])} · {_date(p.update_time)}</small>"
            f"<p>{html.escape(a['digest'])}</p></li>"
            for p, _i, a in state.live_articles()
        ]
        items = "".join(rows) or "<li>Nothing published yet.</li>"
        return _page_html("公众号 · sandbox", f"<h1>公众号 · sandbox</h1><ul>{items}</ul>")

    @app.get("/s/{article_id}/{index}", response_class=HTMLResponse)
    async def article(article_id: str, index: int) -> Response:
        for p, i, a in state.live_articles():
            if p.article_id == article_id and i == index:
                return HTMLResponse(_article_html(a, _date(p.update_time)))
        return HTMLResponse(_page_html("Not found", "<p>此内容已被删除</p>"), status_code=404)

    @app.get("/preview/{media_id}/{index}", response_class=HTMLResponse)
    async def preview(media_id: str, index: int) -> Response:
        draft = state.drafts.get(media_id)
        if draft is None or not 1 <= index <= len(draft.articles):
            return HTMLResponse(_page_html("Expired", "<p>预览链接已过期</p>"), status_code=404)
        return HTMLResponse(_article_html(draft.articles[index - 1], "draft preview"))

    @app.get("/_control/received")
    async def received() -> list[dict[str, Any]]:
        """Articles exactly as clients posted them to draft/add, before any cleaning."""
        with state.lock:
            return list(state.received)


def _article_html(article: dict[str, Any], when: str) -> str:
    source = article["content_source_url"]
    original = (
        f'<p class="original"><a href="{html.escape(source)}">阅读原文</a></p>' if source else ""
    )
    cover = f'<img class="cover" src="{html.escape(article["thumb_url"])}" alt="">'
    body = (
        f"<article><h1>{html.escape(article['title'])}</h1>"
        f"<p class='meta'>{html.escape(article['author'])} · {when}</p>"
        f"{cover if article['thumb_url'] else ''}"
        f"<div class='content'>{article['content']}</div>{original}</article>"
    )
    return _page_html(article["title"], body)


def _page_html(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{max-width:40em;margin:auto;"
        "font-family:sans-serif;padding:1em}} img{{max-width:100%}}</style></head>"
        f"<body>{body}</body></html>"
    )


# ---- helpers ------------------------------------------------------------------------------


def _new_token() -> str:
    return secrets.token_urlsafe(96)


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    return None


def _own_image(src: str, base: str) -> bool:
    return bool(base) and src.startswith(f"{base}/mmbiz/")


def _text_field(
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


def _flag(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key, 0)
    if value not in (0, 1) or isinstance(value, float):
        raise WechatApiError(47003, f"{key} must be 0 or 1")
    return int(value)


def _page(items: list[Any], offset: Any, count: Any) -> list[Any]:
    if not isinstance(offset, int) or offset < 0:
        raise WechatApiError(47003, "offset")
    if not isinstance(count, int) or not 1 <= count <= 20:
        raise WechatApiError(47003, "count must be 1 to 20")
    return items[offset : offset + count]


def _items(articles: list[dict[str, Any]], no_content: Any) -> list[dict[str, Any]]:
    if no_content == 1:
        return [{k: v for k, v in a.items() if k != "content"} for a in articles]
    return [dict(a) for a in articles]


def _keep_escape_literal(match: re.Match[str]) -> str:
    """Double the backslash of a `\\uXXXX` escape of a non-ASCII character."""
    slashes, code = match.group(1), match.group(2)
    if len(slashes) % 2 == 1 and int(code, 16) >= 0x80:
        return slashes + "\\u" + code
    return match.group(0)


def _base_of(draft: _Draft) -> str:
    url = draft.articles[0].get("url", "") if draft.articles else ""
    return url.split("/preview/", 1)[0]


def _date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, CHINA).strftime("%Y-%m-%d %H:%M")
