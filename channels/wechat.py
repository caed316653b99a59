"""WeChat Official Account: an article as a draft, published with freepublish.

The platform facts (reference/channel-apis.md §1) that shape this module:

- Article HTML keeps only a small subset (no classes, scripts, links to the
  outside), and external `<img>` sources are filtered, so every body image is
  re-hosted through `media/uploadimg` and its `src` rewritten; an image that
  cannot be re-hosted becomes its alt text rather than failing the article.
- The cover must be a *permanent* material (`material/add_material`,
  `type=image`, which avoids the 64 KB thumb limit).
- Sending is four platform steps (upload, draft, publish, poll) and none of
  them is idempotent except mass send's `clientmsgid`. Every step is
  checkpointed with `attempt.step`, so a retry resumes where the last attempt
  stopped; a draft or publish request whose outcome is unknown is reconciled
  (looked up by `content_source_url` and title) before it is ever repeated.
- One draft holds up to 8 articles (a multi-article message). `format_articles`
  builds one from several articles, each formatted by `format` without its
  digest (the platform keeps a digest only on single-article drafts); `send`
  takes either shape through the same checkpointed steps, one cover per
  article, and reconciles by the whole list of (original URL, title).
- Publishing is asynchronous: `freepublish/get` says 1 (publishing) until it
  says 0 or a failure. The transport polls briefly, then raises a
  `RetryableError` so the engine polls later, with the publish_id kept.
- Tokens come from `stable_token`, shared by all workers through
  `publisher.coord.tokencache`; 40001/40014/42001 are `AuthExpiredError`.
- The access token travels in the query string and the app secret in a JSON
  body, so reasons never contain URLs, and platform messages are scrubbed.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any, ClassVar, NoReturn

import requests

from channels.base import Channel, ChannelContext, Correction, Receipt, SendAttempt, TextLimit
from channels.http import CodeTable, classify_code, json_body, request
from channels.images import BMP, GIF, JPEG, PNG, fetch_image
from publisher.config.settings import ChannelConfig
from publisher.coord.tokencache import FreshToken, TokenCache
from publisher.domain import html as htmlkit
from publisher.domain.article import Article
from publisher.domain.errors import (
    AuthExpiredError,
    ConfigError,
    DeliveryError,
    InputError,
    OutcomeUnknownError,
    PermanentError,
    ReauthRequiredError,
    RetryableError,
)
from publisher.domain.text import cut

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.weixin.qq.com"
BEIJING = timezone(timedelta(hours=8))

#: The "WeChat retry classes" table; codes not listed are permanent.
CODES = CodeTable.of(
    auth_expired=[40001, 40014, 42001],
    retryable=[-1, 45011, 45066, 45009, 45028],
    success=[45065],
    retry_after={"45011": 60.0, "45066": 60.0},
)
#: Credential errors only a person can fix (reference §1): announced as `reauth`.
REAUTHORISE = {
    "40013": "check the AppID in {appid_env}",
    "40125": "put the account's current AppSecret in {secret_env}",
    "40164": "add this server's IP to the account's IP whitelist",
    "40243": "the AppSecret is frozen: unfreeze or reset it, then update {secret_env}",
}
#: Quotas that come back after the daily reset (Beijing midnight).
DAILY_QUOTA_CODES = frozenset({"45009", "45028"})

PUBLISH_FAILURES = {
    2: "the originality check failed",
    3: "publishing failed",
    4: "the platform's review rejected the article",
    5: "every article was deleted after publishing",
    6: "every article was banned after publishing",
}

# The HTML the platform keeps (in practice; reference §1 "Allowed HTML").
KEPT_TAGS = frozenset(
    {"section", "p", "span", "strong", "em", "ul", "ol", "li", "blockquote", "pre", "code",
     "table", "thead", "tbody", "tfoot", "tr", "td", "th", "img", "br", "hr",
     "h1", "h2", "h3", "h4", "h5", "h6"}
)  # fmt: skip
RENAMED_TAGS = {"b": "strong", "i": "em", "figure": "section", "figcaption": "p", "div": "section"}
DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "noscript", "template", "form", "textarea",
     "select", "button", "svg", "math", "head", "title", "video", "audio", "canvas"}
)  # fmt: skip
VOID_TAGS = frozenset({"img", "br", "hr"})
_SPAN_ATTRIBUTE = re.compile(r"^[1-9][0-9]{0,2}$")
# The serializer below writes every image exactly like this, so send() can find them.
_IMG = re.compile(r'<img src="([^"]*)" alt="([^"]*)">')
_TOKEN_IN_TEXT = re.compile(r"access_token=[^&\s]+")


@dataclass
class _Reduced:
    """Article HTML reduced to the WeChat subset, in top-level blocks (cut points)."""

    blocks: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)


class _Reducer(HTMLParser):
    """An allowlist serializer: what it does not know, it does not write.

    Unknown tags are unwrapped (their text stays, so a link becomes its
    text), dropped tags lose their content too, attributes survive only on
    images (src, alt) and table cells (spans). Every value is re-escaped.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.result = _Reduced()
        self._out: list[str] = []
        self._open: list[str] = []
        self._dropping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROPPED_WITH_CONTENT:
            self._dropping += 1
            return
        name = RENAMED_TAGS.get(tag, tag)
        if self._dropping or name not in KEPT_TAGS:
            return
        if name == "img":
            self._image(dict(attrs))
        elif name in VOID_TAGS:
            self._out.append(f"<{name}>")
        else:
            self._out.append(f"<{name}{_cell_attributes(name, attrs)}>")
            self._open.append(name)
        self._block_end()

    def handle_endtag(self, tag: str) -> None:
        if tag in DROPPED_WITH_CONTENT:
            self._dropping = max(0, self._dropping - 1)
            return
        name = RENAMED_TAGS.get(tag, tag)
        if self._dropping or name in VOID_TAGS or name not in self._open:
            return
        while self._open:
            top = self._open.pop()
            self._out.append(f"</{top}>")
            if top == name:
                break
        self._block_end()

    def handle_data(self, data: str) -> None:
        if self._dropping or (not self._open and not data.strip()):
            return
        self._out.append(html.escape(data, quote=False))
        self._block_end()

    def close(self) -> None:
        super().close()
        while self._open:
            self._out.append(f"</{self._open.pop()}>")
        self._block_end()

    def _image(self, attrs: dict[str, str | None]) -> None:
        src = (attrs.get("src") or "").strip()
        alt = " ".join((attrs.get("alt") or "").split())
        if _rehostable(src):
            self._out.append(f'<img src="{html.escape(src)}" alt="{html.escape(alt)}">')
            if src not in self.result.images:
                self.result.images.append(src)
        elif alt:
            self._out.append(html.escape(alt, quote=False))

    def _block_end(self) -> None:
        if not self._open and self._out:
            self.result.blocks.append("".join(self._out))
            self._out = []


def reduce_html(body_html: str) -> _Reduced:
    """The WeChat subset of an article body (sanitized again first: defence in depth)."""
    reducer = _Reducer()
    reducer.feed(htmlkit.sanitize(body_html))
    reducer.close()
    return reducer.result


class WechatChannel(Channel):
    """`[channels.NAME] type = "wechat"`: options `appid_env`, `secret_env`, `mass_send`,
    `author` (default byline), `default_cover`, `token_refresh_margin`, `publish_wait`
    (seconds to poll inline), `publish_poll_interval`, `publish_reconcile_seconds`."""

    type_name: ClassVar[str] = "wechat"
    correction: ClassVar[Correction] = Correction.REPUBLISH
    can_delete: ClassVar[bool] = True

    title_limit: ClassVar[int] = 32
    author_limit: ClassVar[int] = 16
    digest_limit: ClassVar[int] = 128
    #: One draft holds several articles: a digest is one multi-article message.
    supports_digest: ClassVar[bool] = True
    #: Articles in one draft, i.e. in one multi-article message.
    max_articles: ClassVar[int] = 8
    #: "< 20 000 characters and < 1 MB": 20 000 characters of UTF-8 stay far below 1 MB.
    content_limit: ClassVar[int] = 20_000 - 1
    #: Room kept per body image: the platform's URL replaces ours after formatting.
    image_url_allowance: ClassVar[int] = 300
    cover_max_bytes: ClassVar[int] = 10 * 1024 * 1024
    cover_types: ClassVar[frozenset[str]] = frozenset({JPEG, PNG, GIF, BMP})
    inline_max_bytes: ClassVar[int] = 1024 * 1024 - 1
    inline_types: ClassVar[frozenset[str]] = frozenset({JPEG, PNG})
    # `utf16_length` is defined below the class: the lambdas look it up when measuring.
    text_limits: ClassVar[tuple[TextLimit, ...]] = (
        TextLimit("article.title", title_limit, lambda t: utf16_length(t)),
        TextLimit("article.author", author_limit, lambda t: utf16_length(t)),
        TextLimit("article.digest", digest_limit, lambda t: utf16_length(t)),
        TextLimit("article.content", content_limit, len),
    )
    #: Pause between inline status checks while publishing.
    poll_step: ClassVar[float] = 0.25
    #: Drafts looked at when reconciling (20 per page).
    reconcile_pages: ClassVar[int] = 10

    def __init__(self, config: ChannelConfig, context: ChannelContext) -> None:
        super().__init__(config, context)
        self._session: requests.Session | None = None
        self._token_cache: TokenCache | None = None
        self._token: str | None = None  # the last token sent, to invalidate if rejected

    # ---- format: pure ---------------------------------------------------------------------

    def default_cover(self) -> str | None:
        """The `default_cover` option: a URL, or a path relative to the matrix file."""
        value = self.config.option("default_cover")
        if not value or "://" in str(value):
            return str(value) if value else None
        return str((self.context.settings.config_path.parent / str(value)).resolve())

    def format(self, article: Article) -> dict[str, Any]:
        """The draft article payload, plus the image references `send` must upload."""
        reduced = reduce_html(article.body_html)
        blocks = self._fit(reduced.blocks)
        content = "".join(blocks)
        inline = [src for src in reduced.images if f'src="{html.escape(src)}"' in content]
        author = article.author or str(self.config.option("author") or "")
        cover = article.cover_image or self.default_cover()
        return {
            "article": {
                "article_type": "news",
                "title": cut(article.title, self.title_limit, measure=utf16_length),
                "author": cut(author, self.author_limit, measure=utf16_length),
                "digest": cut(article.summary, self.digest_limit, measure=utf16_length),
                "content": content,
                "content_source_url": article.url,
                "need_open_comment": int(_truthy(self.config.option("need_open_comment"))),
                "only_fans_can_comment": 0,
            },
            "cover_image": cover or (inline[0] if inline else None),
            "inline_images": inline,
        }

    def format_articles(self, articles: Sequence[Article]) -> dict[str, Any]:
        """One multi-article message: each article as `format` makes it, in this order.

        `digest` is left out: the platform keeps one only on single-article
        drafts. Each article keeps its own cover (or the default cover) and
        its own body images.
        """
        if not 1 <= len(articles) <= self.max_articles:
            raise InputError(
                "articles",
                f"a WeChat message holds 1 to {self.max_articles} articles, not {len(articles)}",
            )
        parts = []
        for article in articles:
            part = self.format(article)
            part["article"].pop("digest", None)
            parts.append(part)
        return {"articles": parts}

    def _fit(self, blocks: list[str]) -> list[str]:
        """Whole top-level blocks while they fit; then an ellipsis ("read more" links out)."""
        ending = "<p>…</p>"
        kept: list[str] = []
        used = len(ending)
        for block in blocks:
            size = len(block) + block.count("<img ") * self.image_url_allowance
            if used + size > self.content_limit:
                return [*kept, ending]
            kept.append(block)
            used += size
        return kept

    # ---- send: resumable ------------------------------------------------------------------

    def send(self, post: dict[str, Any], attempt: SendAttempt) -> Receipt:
        """Cover → body images → draft → publish → poll (→ mass send), each step checkpointed.

        `post` is one article (`format`) or a multi-article message
        (`format_articles`): then each article's cover and body images are
        uploaded, all articles go into one draft, and the receipt is the
        message's article_id with the first article's URL.
        """
        if "articles" in post:
            articles = self._prepare_articles(post["articles"], attempt)
        else:
            cover_id = self._ensure_cover(post, attempt)
            content = self._ensure_inline_images(post, attempt)
            articles = [{**post["article"], "content": content, "thumb_media_id": cover_id}]
        draft_id = self._ensure_draft(post, attempt, articles)
        article_id, url = self._ensure_published(post, attempt, draft_id)
        if _truthy(self.config.option("mass_send")):
            self._ensure_mass_sent(attempt, draft_id)
        return Receipt(remote_id=article_id, remote_url=url)

    def delete(self, remote_id: str) -> None:
        """Remove a published article (`freepublish/delete`, every position in it).

        53600 (no such live article) means an earlier attempt already removed it.
        """
        try:
            self._call(
                "remove article",
                "freepublish/delete",
                payload={"article_id": remote_id, "index": 0},
            )
        except PermanentError as exc:
            if exc.code != "53600":
                raise
        log.info("%s: removed published article %s", self.name, remote_id)

    def refresh_auth(self) -> None:
        """Drop the token the platform rejected (only if it is still the cached one)."""
        if self._token is not None and self._token_cache is not None:
            self._token_cache.invalidate(self._token)
        self._token = None

    def _ensure_cover(self, post: dict[str, Any], attempt: SendAttempt) -> str:
        done = attempt.checkpoint.get("cover_media_id")
        if done:
            return str(done)
        ref = post.get("cover_image")
        if not ref:
            raise PermanentError(
                "WeChat articles need a cover image: set cover_image, add an image to the "
                "body, or set the channel's default_cover"
            )
        media_id = self._upload_cover(ref)
        attempt.step("cover_media_id", media_id)
        return media_id

    def _prepare_articles(
        self, parts: list[dict[str, Any]], attempt: SendAttempt
    ) -> list[dict[str, Any]]:
        """The draft's articles of a multi-article message: covers, then body images."""
        if not 1 <= len(parts) <= self.max_articles:
            raise PermanentError(
                f"a WeChat message holds 1 to {self.max_articles} articles, not {len(parts)}"
            )
        covers = self._ensure_covers(parts, attempt)
        refs = [ref for part in parts for ref in part.get("inline_images", [])]
        hosted = self._host_images(refs, attempt)
        return [
            {
                **part["article"],
                "content": rewrite_images(part["article"]["content"], hosted),
                "thumb_media_id": cover_id,
            }
            for part, cover_id in zip(parts, covers, strict=True)
        ]

    def _ensure_covers(self, parts: list[dict[str, Any]], attempt: SendAttempt) -> list[str]:
        """One permanent cover per article, checkpointed by position; a cover shared by
        several articles (the default cover) is uploaded once."""
        missing = [n for n, part in enumerate(parts, 1) if not part.get("cover_image")]
        if missing:
            which = ", ".join(f"{n} ({parts[n - 1]['article']['title']})" for n in missing)
            raise PermanentError(
                f"WeChat articles need a cover image; none for article {which}: set "
                "cover_image, add an image to the body, or set the channel's default_cover"
            )
        done: dict[str, str] = dict(attempt.checkpoint.get("cover_media_ids") or {})
        for index, part in enumerate(parts):
            if str(index) in done:
                continue
            same = [
                done[str(n)]
                for n, other in enumerate(parts)
                if str(n) in done and other["cover_image"] == part["cover_image"]
            ]
            done[str(index)] = same[0] if same else self._upload_cover(part["cover_image"])
            attempt.step("cover_media_ids", dict(done))
        return [done[str(index)] for index in range(len(parts))]

    def _upload_cover(self, ref: str) -> str:
        """Upload a cover as permanent material (`type=image`); its media_id."""
        image = fetch_image(
            ref,
            self.context,
            max_bytes=self.cover_max_bytes,
            allowed_types=self.cover_types,
            timeout=self.config.timeout,
        )
        data = self._call(
            "upload cover",
            "material/add_material",
            params={"type": "image"},
            files={"media": (image.filename, image.data, image.content_type)},
        )
        return _required(data, "media_id", "upload cover")

    def _ensure_inline_images(self, post: dict[str, Any], attempt: SendAttempt) -> str:
        hosted = self._host_images(post.get("inline_images", []), attempt)
        return rewrite_images(post["article"]["content"], hosted)

    def _host_images(self, refs: list[str], attempt: SendAttempt) -> dict[str, str | None]:
        """Each body image re-hosted once (checkpointed): reference → platform URL or None."""
        hosted: dict[str, str | None] = dict(attempt.checkpoint.get("inline_images") or {})
        for ref in refs:
            if ref not in hosted:
                hosted[ref] = self._rehost(ref)
                attempt.step("inline_images", dict(hosted))
        return hosted

    def _rehost(self, ref: str) -> str | None:
        """The platform URL for a body image, or None: the image becomes its alt text.

        Only the image's own problems degrade it (its source is gone, too big,
        wrong type, refused by the platform); a platform outage or an expired
        token is raised, so the whole send is retried instead.
        """
        try:
            image = fetch_image(
                ref,
                self.context,
                max_bytes=self.inline_max_bytes,
                allowed_types=self.inline_types,
                timeout=self.config.timeout,
            )
        except DeliveryError as exc:  # its source is gone, slow, too big or not an image
            log.warning("%s: body image left out, its alt text kept: %s", self.name, exc.reason)
            return None
        try:
            data = self._call(
                "upload body image",
                "media/uploadimg",
                files={"media": (image.filename, image.data, image.content_type)},
            )
        except PermanentError as exc:  # the platform refused this one image
            log.warning("%s: body image left out, its alt text kept: %s", self.name, exc.reason)
            return None
        return _required(data, "url", "upload body image")

    def _ensure_draft(
        self, post: dict[str, Any], attempt: SendAttempt, articles: list[dict[str, Any]]
    ) -> str:
        checkpoint = attempt.checkpoint
        if checkpoint.get("draft_media_id"):
            return str(checkpoint["draft_media_id"])
        if checkpoint.get("draft_requested") or attempt.outcome_unknown:
            found = self._find_draft(post)
            if found is not None:
                log.info("%s: reconciled: the draft already exists", self.name)
                attempt.step("draft_media_id", found)
                return found
        with _marked(attempt, "draft_requested", True):
            data = self._call("create draft", "draft/add", payload={"articles": articles})
        media_id = _required(data, "media_id", "create draft")
        attempt.step("draft_media_id", media_id)
        return media_id

    def _find_draft(self, post: dict[str, Any]) -> str | None:
        """The draft an earlier, ambiguous draft/add created."""
        found = self._find(post, "look up drafts", "draft/batchget", "media_id")
        return found[0] if found else None

    def _find(
        self, post: dict[str, Any], what: str, path: str, id_key: str
    ) -> tuple[str, dict[str, Any]] | None:
        """Page through a listing for this post, matched by original URL and title.

        Every article must match, in order, and nothing more: a multi-article
        message that starts with an article is not that article's own post.
        Returns the id and the first article.
        """
        wanted = [
            (part["article"]["content_source_url"], part["article"]["title"])
            for part in post.get("articles") or [post]
        ]
        for page in range(self.reconcile_pages):
            payload = {"offset": page * 20, "count": 20, "no_content": 1}
            items = self._call(what, path, payload=payload).get("item") or []
            for item in items:
                news = (item.get("content") or {}).get("news_item") or []
                if [(n.get("content_source_url"), n.get("title")) for n in news] == wanted:
                    return str(item[id_key]), news[0]
            if len(items) < 20:
                break
        return None

    def _ensure_published(
        self, post: dict[str, Any], attempt: SendAttempt, draft_id: str
    ) -> tuple[str, str | None]:
        checkpoint = attempt.checkpoint
        if not checkpoint.get("article_id") and not checkpoint.get("publish_id"):
            self._submit(post, attempt, draft_id)
        if not checkpoint.get("article_id"):
            self._await_publish(attempt)
        return str(checkpoint["article_id"]), checkpoint.get("article_url")

    def _submit(self, post: dict[str, Any], attempt: SendAttempt, draft_id: str) -> None:
        requested = attempt.checkpoint.get("publish_requested_at")
        if requested is not None and self._reconcile_publish(post, attempt, draft_id, requested):
            return
        with _marked(attempt, "publish_requested_at", time.time()):
            data = self._call(
                "submit for publishing", "freepublish/submit", payload={"media_id": draft_id}
            )
        attempt.step("publish_id", str(_required(data, "publish_id", "submit for publishing")))

    def _reconcile_publish(
        self, post: dict[str, Any], attempt: SendAttempt, draft_id: str, requested: float
    ) -> bool:
        """After an ambiguous submit: True if it was published; wait while it may still be.

        freepublish has no idempotency, so a second submit is only made once
        the article has not appeared for `publish_reconcile_seconds` and its
        draft is still in the draft box.
        """
        found = self._find_published(post)
        if found is not None:
            attempt.step("article_id", found[0])
            attempt.step("article_url", found[1])
            return True
        waited = time.time() - requested
        grace = self._option_float("publish_reconcile_seconds", 120.0)
        if waited < grace:
            raise RetryableError(
                "publish: the last submission's outcome is unknown; checking again",
                retry_after=self._option_float("publish_poll_interval", 10.0),
            )
        if not self._draft_exists(draft_id):
            raise PermanentError(
                "publish: the draft left the draft box but no published article appeared"
            )
        return False

    def _find_published(self, post: dict[str, Any]) -> tuple[str, str | None] | None:
        found = self._find(post, "look up published articles", "freepublish/batchget", "article_id")
        return (found[0], found[1].get("url")) if found else None

    def _draft_exists(self, draft_id: str) -> bool:
        try:
            self._call("look up the draft", "draft/get", payload={"media_id": draft_id})
        except PermanentError as exc:
            if exc.code == "40007":
                return False
            raise
        return True

    def _await_publish(self, attempt: SendAttempt) -> None:
        """Poll for a short while; past that, let the engine poll later (publish_id kept)."""
        publish_id = attempt.checkpoint["publish_id"]
        deadline = time.monotonic() + self._option_float("publish_wait", 3.0)
        while True:
            data = self._call(
                "check publishing", "freepublish/get", payload={"publish_id": publish_id}
            )
            status = _int(data.get("publish_status"))
            if status == 0:
                self._record_published(attempt, data)
                return
            if status != 1:
                self._publish_failed(attempt, status)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RetryableError(
                    "publish: the platform is still publishing the article",
                    code="publish_status:1",
                    retry_after=self._option_float("publish_poll_interval", 10.0),
                )
            time.sleep(min(self.poll_step, remaining))

    def _record_published(self, attempt: SendAttempt, data: dict[str, Any]) -> None:
        article_id = _required(data, "article_id", "check publishing")
        items = (data.get("article_detail") or {}).get("item") or []
        url = next((i.get("article_url") for i in items if i.get("article_url")), None)
        attempt.step("article_url", url)
        attempt.step("article_id", article_id)
        log.info("%s: delivery %s published as %s", self.name, attempt.delivery_id, article_id)

    def _publish_failed(self, attempt: SendAttempt, status: int | None) -> NoReturn:
        description = PUBLISH_FAILURES.get(status or -1, "unknown publish status")
        if status in (2, 3, 4):  # the draft is still there: a manual retry may submit it again
            attempt.step("publish_id", None)
            attempt.step("publish_requested_at", None)
        raise PermanentError(
            f"publish: {description} (publish_status {status})", code=f"publish_status:{status}"
        )

    def _ensure_mass_sent(self, attempt: SendAttempt, draft_id: str) -> None:
        """Push to followers; the clientmsgid makes a repeat answer 45065, i.e. done."""
        if attempt.checkpoint.get("mass_msg_id"):
            return
        payload = {
            "filter": {"is_to_all": True},
            "mpnews": {"media_id": draft_id},
            "msgtype": "mpnews",
            "send_ignore_reprint": 0,
            "clientmsgid": clientmsgid(attempt.idempotency_key),
        }
        try:
            data = self._call("push to followers", "message/mass/sendall", payload=payload)
        except PermanentError as exc:
            raise type(exc)(  # keeps a credential error a `reauth` one
                f"{exc.reason}; the article itself is published", code=exc.code
            ) from None
        attempt.step("mass_msg_id", str(data.get("msg_id") or "sent"))

    # ---- transport ------------------------------------------------------------------------

    def _call(
        self,
        what: str,
        path: str,
        *,
        payload: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> dict[str, Any]:
        """One authenticated API call; a platform errcode becomes a classified error.

        Only draft/add and freepublish/submit can leave a second copy behind,
        so only their timeouts stay `OutcomeUnknownError`; any other call is
        safe to repeat and its timeout is a plain `RetryableError`.
        """
        token = self._tokens().get()
        self._token = token
        kwargs: dict[str, Any] = {"params": {**(params or {}), "access_token": token}}
        if payload is not None:
            kwargs["data"] = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            kwargs["headers"] = {"Content-Type": "application/json; charset=utf-8"}
        if files is not None:
            kwargs["files"] = files
        try:
            response = request(
                self._http(), "POST", self._url(path), timeout=self.config.timeout, what=what,
                **kwargs,
            )  # fmt: skip
        except OutcomeUnknownError as exc:
            if path in ("draft/add", "freepublish/submit"):
                raise
            raise RetryableError(exc.reason) from None
        data = json_body(response, what)
        self._raise_for_errcode(data, what, token)
        return data

    def _raise_for_errcode(self, data: dict[str, Any], what: str, token: str | None) -> None:
        code = data.get("errcode", 0)
        if code in (0, "0", None) or str(code) in CODES.success:
            return
        message = self._scrub(str(data.get("errmsg") or "error"))[:300]
        if str(code) in REAUTHORISE:
            hint = REAUTHORISE[str(code)].format(
                appid_env=self.config.option("appid_env"),
                secret_env=self.config.option("secret_env"),
            )
            raise ReauthRequiredError(f"{what}: {message} (code {code}); {hint}", code=code)
        error = classify_code(CODES, code, f"{what}: {message}")
        if isinstance(error, AuthExpiredError) and token is not None:
            self._tokens().invalidate(token)  # before any other worker asks for it
        if isinstance(error, RetryableError) and error.code in DAILY_QUOTA_CODES:
            error.retry_after = seconds_until_daily_reset()
        raise error

    def _fetch_token(self, force: bool) -> FreshToken:
        """`stable_token`: the same token for every caller while it is valid."""
        what = "get access token"
        body = {
            "grant_type": "client_credential",
            "appid": self._secret("appid"),
            "secret": self._secret("secret"),
            "force_refresh": force,
        }
        try:
            response = request(
                self._http(), "POST", self._url("stable_token"), timeout=self.config.timeout,
                what=what, data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
        except OutcomeUnknownError as exc:
            raise RetryableError(exc.reason) from None
        data = json_body(response, what)
        self._raise_for_errcode(data, what, None)
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise RetryableError(f"{what}: the answer holds no token")
        return FreshToken(token, float(data.get("expires_in") or 7200))

    def _tokens(self) -> TokenCache:
        if self._token_cache is None:
            if self.context.redis is None:
                raise PermanentError("WeChat needs Redis for its shared access-token cache")
            appid = self._secret("appid")
            where = hashlib.sha256(self._base_url().encode()).hexdigest()[:12]
            self._token_cache = TokenCache(
                self.context.redis,
                self.context.settings,
                f"wechat:{appid}:{where}",
                self._fetch_token,
                refresh_margin=self._option_float("token_refresh_margin", 60.0),
                lock_timeout=max(30.0, 2 * self.config.timeout + 5),
            )
        return self._token_cache

    def _secret(self, key: str) -> str:
        try:
            return self.config.secret(key)
        except ConfigError as exc:  # names the variable, never a value
            raise PermanentError(str(exc)) from None

    def _scrub(self, text: str) -> str:
        """Platform messages may echo what they were sent; keep credentials out of reasons."""
        text = _TOKEN_IN_TEXT.sub("access_token=***", text)
        for value in (self._token, self._secret_or_none("secret")):
            if value:
                text = text.replace(value, "***")
        return text

    def _secret_or_none(self, key: str) -> str | None:
        try:
            return self.config.secret(key)
        except ConfigError:
            return None

    def _http(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
        return self._session

    def _base_url(self) -> str:
        return (self.config.base_url or DEFAULT_BASE_URL).rstrip("/")

    def _url(self, path: str) -> str:
        return f"{self._base_url()}/cgi-bin/{path}"

    def _option_float(self, key: str, default: float) -> float:
        value = self.config.option(key, default)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise PermanentError(f"channels.{self.name}.{key} must be a number") from None


def rewrite_images(content: str, hosted: dict[str, str | None]) -> str:
    """Point each body image at its platform URL, or replace it with its alt text."""

    def replace(match: re.Match[str]) -> str:
        src, alt = html.unescape(match.group(1)), match.group(2)
        url = hosted.get(src)
        if url:
            return f'<img src="{html.escape(url)}" alt="{alt}">'
        return alt  # already escaped by the serializer

    return _IMG.sub(replace, content)


def clientmsgid(idempotency_key: str) -> str:
    """Mass send's de-duplication key (≤ 64 bytes), the same for every attempt of a delivery."""
    return "pub-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]


def utf16_length(text: str) -> int:
    """字 as counted conservatively: characters outside the BMP (most emoji) count twice."""
    return len(text.encode("utf-16-le")) // 2


def seconds_until_daily_reset(now: datetime | None = None) -> float:
    """Daily quotas reset at midnight, Beijing time."""
    current = (now or datetime.now(BEIJING)).astimezone(BEIJING)
    midnight = (current + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - current).total_seconds() + 60.0


def _rehostable(src: str) -> bool:
    """Body images the transport can fetch; local paths in body HTML are never read."""
    return src.startswith(("http://", "https://", "media/"))


def _cell_attributes(name: str, attrs: list[tuple[str, str | None]]) -> str:
    if name not in ("td", "th"):
        return ""
    kept = [
        f' {key}="{value}"'
        for key, value in attrs
        if key in ("colspan", "rowspan") and value and _SPAN_ATTRIBUTE.match(value)
    ]
    return "".join(kept)


def _required(data: dict[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if value in (None, ""):
        raise RetryableError(f"{what}: the platform's answer has no {key}")
    return str(value)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


@contextmanager
def _marked(attempt: SendAttempt, name: str, value: Any) -> Iterator[None]:
    """Checkpoint a "request sent" marker around a non-idempotent call.

    The marker stays when the outcome is unknown (timeout, 5xx, garbled
    answer), so the next attempt reconciles first; it is cleared when the
    platform clearly refused or the request never left, so the next attempt
    simply sends again.
    """
    attempt.step(name, value)
    try:
        yield
    except DeliveryError as exc:
        if not _may_have_happened(exc):
            attempt.step(name, None)
        raise


def _may_have_happened(exc: DeliveryError) -> bool:
    if isinstance(exc, OutcomeUnknownError):
        return True
    answered_without_code = exc.code is None and exc.http_status not in (None, 429)
    return answered_without_code
