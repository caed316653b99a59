"""Everything the WeChat sandbox holds, and every rule it applies to a request."""

from __future__ import annotations

import html
import secrets
import threading
import time
from datetime import datetime
from typing import Any

import nh3

from sandbox.wechat.platform import (
    AUTHOR_LIMIT,
    AUTO_DIGEST_CHARS,
    CHINA,
    CLIENTMSGID_BYTES,
    CLIENTMSGID_DAYS,
    CONTENT_BYTES,
    CONTENT_CHARS,
    DIGEST_LIMIT,
    IMG_SRC,
    IMG_WITHOUT_SRC,
    KEPT_ATTRIBUTES,
    KEPT_TAGS,
    MAX_ARTICLES,
    MEDIA_TYPES,
    SCRIPTY,
    SOURCE_URL_BYTES,
    TAG,
    TITLE_LIMIT,
    UPLOAD_RULES,
    Counters,
    Draft,
    Job,
    Material,
    Published,
    Token,
    WechatApiError,
    base_of,
    flag_field,
    new_token,
    news_items,
    own_image,
    page_of,
    sniff,
    text_field,
)


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
        daily_quota: dict[str, int] | None = None,
    ) -> None:
        self.appid = appid
        #: Calls a day per API path (e.g. {"/cgi-bin/freepublish/submit": 100}); unlisted: none.
        self.daily_quota = dict(daily_quota or {})
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
        self.stable_tokens: list[Token] = []
        self.classic_tokens: list[Token] = []
        self.force_refreshes: list[float] = []
        self._clear()

    def _clear(self) -> None:
        self.counters = Counters()
        self.materials: dict[str, Material] = {}
        self.files: dict[str, Material] = {}  # served under /mmbiz/<name>
        self.drafts: dict[str, Draft] = {}
        self.jobs: dict[str, Job] = {}
        self.published: dict[str, Published] = {}
        self.received: list[dict[str, Any]] = []
        self.clientmsgids: dict[str, tuple[int, float]] = {}
        self.mass_calls: list[float] = []
        self.mass_days: dict[str, int] = {}
        self.sequence = 0
        self.calls: dict[tuple[str, str], int] = {}  # (Beijing day, path) -> calls

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
                current = Token(new_token(), now + self.token_lifetime)
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
            token = Token(new_token(), now + self.token_lifetime)
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
    ) -> Material:
        """Check an upload against its kind's limits and keep it (served under /mmbiz/)."""
        if kind not in UPLOAD_RULES:
            raise WechatApiError(40004)
        limit, extensions, sniffable = UPLOAD_RULES[kind]
        extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        sniffed = sniff(data)
        if extension not in extensions or (sniffable and sniffed not in sniffable):
            raise WechatApiError(40005)
        if len(data) > limit:
            raise WechatApiError(40009)
        with self.lock:
            media_id = secrets.token_urlsafe(32)
            name = f"{secrets.token_hex(12)}.{extension}"
            is_image = sniffed is not None and kind in ("image", "uploadimg", "thumb")
            url = f"{base}/mmbiz/{name}" if is_image else None
            material = Material(
                media_id, kind, data, MEDIA_TYPES.get(sniffed or "", "application/octet-stream"),
                url,
            )  # fmt: skip
            self.files[name] = material
            if permanent:
                self.materials[media_id] = material
            return material

    def permanent_image(self, media_id: Any) -> Material:
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
            draft = Draft(secrets.token_urlsafe(48), stored, int(time.time()), self.next_id())
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
        title = text_field(raw, "title", TITLE_LIMIT, 45003, required=True)
        author = text_field(raw, "author", AUTHOR_LIMIT, 45110)
        digest = text_field(raw, "digest", DIGEST_LIMIT, 45004)
        raw_content = raw.get("content")
        if not isinstance(raw_content, str) or not raw_content.strip():
            raise WechatApiError(47003, "content is empty")
        if len(raw_content) >= CONTENT_CHARS or len(raw_content.encode()) >= CONTENT_BYTES:
            raise WechatApiError(45002)
        source_url = raw.get("content_source_url") or ""
        if not isinstance(source_url, str) or len(source_url.encode()) > SOURCE_URL_BYTES:
            raise WechatApiError(45005)
        thumb = self._thumb(raw, article_type)
        flags = {k: flag_field(raw, k) for k in ("need_open_comment", "only_fans_can_comment")}
        self._note_hostile(raw_content, base)
        content = self._clean(raw_content, base)
        if not digest and count == 1:
            digest = html.unescape(TAG.sub("", content))[:AUTO_DIGEST_CHARS]
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

    def _thumb(self, raw: dict[str, Any], article_type: str) -> Material | None:
        if article_type == "news":
            return self.permanent_image(raw.get("thumb_media_id"))
        images = (raw.get("image_info") or {}).get("image_list")
        if not isinstance(images, list) or not 1 <= len(images) <= 20:
            raise WechatApiError(47003, "image_info.image_list must hold 1 to 20 images")
        covers = [self.permanent_image(i.get("image_media_id")) for i in images]
        return covers[0]

    def _note_hostile(self, content: str, base: str) -> None:
        if SCRIPTY.search(content):
            self.counters.scripts_received += 1
        external = [s for s in IMG_SRC.findall(content) if not own_image(s, base)]
        self.counters.external_images_received += len(external)

    def _clean(self, content: str, base: str) -> str:
        """What the platform stores: no JS, no classes, no external images, inline style only."""

        def keep(tag: str, attribute: str, value: str) -> str | None:
            if tag == "img" and attribute in ("src", "data-src"):
                return value if own_image(value, base) else None
            if tag == "a" and attribute == "href":
                return value if value.startswith(f"{base}/s/") else None
            return value

        cleaned = nh3.clean(
            content,
            tags=KEPT_TAGS,
            clean_content_tags={"script", "style", "iframe", "form", "noscript"},
            attributes=KEPT_ATTRIBUTES,
            attribute_filter=keep,
            url_schemes={"http", "https"},
            link_rel=None,
            strip_comments=True,
        )
        return IMG_WITHOUT_SRC.sub("", cleaned)

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

    def draft(self, media_id: Any) -> Draft:
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
            drafts = sorted(self.drafts.values(), key=lambda d: (-d.update_time, -d.seq))
            self.counters.draft_pages += 1
            page = page_of(drafts, offset, count)
            items = [
                {
                    "media_id": d.media_id,
                    "content": {"news_item": news_items(d.articles, no_content)},
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
            job = Job(
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

    def _finish(self, job: Job, base: str) -> None:
        already = any(p.draft_media_id == job.draft.media_id for p in self.published.values())
        if job.outcome != 0 or (job.draft.media_id not in self.drafts and not already):
            job.status = job.outcome or 3  # failed, or the draft was deleted meanwhile
            return
        if already:  # the same draft submitted twice: a second public copy
            self.counters.duplicate_posts += 1
        job.article_id = self._publish(job.draft, base)
        job.status = 0

    def _publish(self, draft: Draft, base: str) -> str:
        """Turn a draft into a public article; the draft leaves the draft box."""
        article_id = secrets.token_urlsafe(24)
        base = base or base_of(draft)
        articles = []
        for index, article in enumerate(draft.articles, 1):
            public = dict(article)
            public["url"] = f"{base}/s/{article_id}/{index}"
            articles.append(public)
        self.published[article_id] = Published(
            article_id, draft.media_id, articles, int(time.time()), [False] * len(articles),
            self.next_id(),
        )  # fmt: skip
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
                (p for p in self.published.values() if p.live),
                key=lambda p: (-p.update_time, -p.seq),
            )
            self.counters.published_pages += 1
            items = [
                {
                    "article_id": p.article_id,
                    "content": {
                        "news_item": [
                            {**a, "is_deleted": gone}
                            for a, gone in zip(
                                news_items(p.articles, no_content), p.deleted, strict=True
                            )
                        ]
                    },
                    "update_time": p.update_time,
                }
                for p in page_of(live, offset, count)
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

    # ---- daily API quotas (45009) ---------------------------------------------------------

    def count_call(self, path: str) -> None:
        """One call against `path`'s daily quota (Beijing day); 45009 once it is used up."""
        limit = self.daily_quota.get(path)
        if limit is None:
            return
        with self.lock:
            key = (_today(), path)
            if self.calls.get(key, 0) >= limit:
                self.counters.quota_refusals += 1
                raise WechatApiError(45009)
            self.calls[key] = self.calls.get(key, 0) + 1

    def quota(self, path: Any) -> dict[str, Any]:
        """`openapi/quota/get`: the daily limit, what is used and what remains."""
        if not isinstance(path, str) or not path.startswith("/cgi-bin/"):
            raise WechatApiError(47003, "cgi_path")
        with self.lock:
            limit = self.daily_quota.get(path, 10_000_000)
            used = self.calls.get((_today(), path), 0)
        return {
            "errcode": 0,
            "errmsg": "ok",
            "quota": {"daily_limit": limit, "used": used, "remain": max(0, limit - used)},
        }

    def clear_quota(self) -> None:
        """`clear_quota`: every daily count back to zero (the platform allows 10 a month)."""
        with self.lock:
            self.calls.clear()

    # ---- history --------------------------------------------------------------------------

    def seed_published(self, count: int, age: float, base: str) -> int:
        """`count` articles published `age` seconds ago by someone else (the web console,
        another tool): the deep history a lookup has to walk through. Later seeds of the
        same age come out newer, like later publishing."""
        with self.lock:
            when = int(time.time() - age)
            for _ in range(count):
                number = self.next_id()
                article_id = f"seed-{number}"
                article = {
                    "title": f"往期文章 {number}", "author": "编辑部", "digest": "",
                    "content": "<p>往期</p>",
                    "content_source_url": f"https://news.example.org/archive/{number}.html",
                    "thumb_media_id": "", "thumb_url": "", "url": f"{base}/s/{article_id}/1",
                }  # fmt: skip
                self.published[article_id] = Published(
                    article_id, f"seed-draft-{number}", [article], when, [False], number
                )
            return len(self.published)

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

    def live_articles(self) -> list[tuple[Published, int, dict[str, Any]]]:
        with self.lock:
            self._advance()
            ordered = sorted(self.published.values(), key=lambda p: (-p.update_time, -p.seq))
            return [
                (p, i, a)
                for p in ordered
                for i, (a, gone) in enumerate(zip(p.articles, p.deleted, strict=True), 1)
                if not gone
            ]


def _today() -> str:
    """Quota days are Beijing days."""
    return datetime.fromtimestamp(time.time(), CHINA).date().isoformat()
