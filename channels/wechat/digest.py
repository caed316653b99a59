"""Multi-article messages: up to 8 articles in one draft, published as one message.

`format_message` builds one from several articles, each formatted like a
single article but without its digest (the platform keeps a digest only on
single-article drafts); `prepare_message` gives every article its own cover
and re-hosted body images through the same checkpointed steps, and the
publishing steps then reconcile by the whole list of (original URL, title).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from channels.base import SendAttempt
from channels.wechat.formatting import rewrite_images
from channels.wechat.media import WechatMedia
from publisher.domain.article import Article
from publisher.domain.errors import InputError, PermanentError

#: Articles in one draft, i.e. in one multi-article message.
MAX_ARTICLES = 8


def format_message(
    articles: Sequence[Article], format_one: Callable[[Article], dict[str, Any]]
) -> dict[str, Any]:
    """One multi-article message: each article as `format_one` makes it, in this order."""
    if not 1 <= len(articles) <= MAX_ARTICLES:
        raise InputError(
            "articles", f"a WeChat message holds 1 to {MAX_ARTICLES} articles, not {len(articles)}"
        )
    parts = []
    for article in articles:
        part = format_one(article)
        part["article"].pop("digest", None)
        parts.append(part)
    return {"articles": parts}


def prepare_message(
    parts: list[dict[str, Any]], attempt: SendAttempt, media: WechatMedia
) -> list[dict[str, Any]]:
    """The draft's articles of a multi-article message: covers, then body images."""
    if not 1 <= len(parts) <= MAX_ARTICLES:
        raise PermanentError(
            f"a WeChat message holds 1 to {MAX_ARTICLES} articles, not {len(parts)}"
        )
    covers = media.ensure_covers(parts, attempt)
    refs = [ref for part in parts for ref in part.get("inline_images", [])]
    hosted = media.host_images(refs, attempt)
    return [
        {
            **part["article"],
            "content": rewrite_images(part["article"]["content"], hosted),
            "thumb_media_id": cover_id,
        }
        for part, cover_id in zip(parts, covers, strict=True)
    ]
