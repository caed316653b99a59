"""Finding what an ambiguous request created: a bounded, resumable walk of a listing.

After a `draft/add` or `freepublish/submit` whose answer never came, the only
way to know whether it happened is to look in `draft/batchget` or
`freepublish/batchget` (reference §7: newest first, pages of ≤ 20, each item
with a Unix `update_time`). The walk is built so that it can never report a
false "not there":

- it stops only at the end of the list or at the first item older than the
  request (less `margin` for clock skew): everything the request could have
  created is newer than that, so a walk that got there is *complete*;
- a transient error on any page, or running out of this attempt's time
  budget, leaves it *incomplete*: the place it got to is checkpointed and a
  `RetryableError` says so, so the next attempt resumes there instead of
  starting over or concluding anything;
- items can move while it walks: new ones push older ones down (they are
  read twice, harmless), deletions pull them up (the walk steps back by the
  drop in `total_count`, so nothing is skipped).

What the caller may do with a complete "not found" is its own rule (publishing
also checks that the draft is still in the draft box before submitting again).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from channels.base import SendAttempt
from channels.wechat.client import WechatApi
from publisher.domain.errors import RetryableError

PAGE_SIZE = 20  # the most `batchget` returns


@dataclass(frozen=True)
class Listing:
    """One of the platform's listings and where its walk is checkpointed."""

    path: str
    id_key: str
    what: str
    checkpoint_key: str


PUBLISHED = Listing(
    "freepublish/batchget", "article_id", "look up published articles", "publish_lookup"
)
DRAFTS = Listing("draft/batchget", "media_id", "look up drafts", "draft_lookup")


@dataclass(frozen=True)
class Found:
    """The listed item that is our post: its id and its first article."""

    item_id: str
    first: dict[str, Any]


def wanted_articles(post: dict[str, Any]) -> list[tuple[str, str]]:
    """(original URL, title) of every article of a post, in order: what a match must show.

    Every article must match, in order, and nothing more: a multi-article
    message that starts with an article is not that article's own post.
    """
    return [
        (part["article"]["content_source_url"], part["article"]["title"])
        for part in post.get("articles") or [post]
    ]


def find_in_listing(
    api: WechatApi,
    listing: Listing,
    post: dict[str, Any],
    attempt: SendAttempt,
    *,
    since: float,
    margin: float,
    budget: float,
) -> Found | None:
    """Our post in `listing`, or None once a complete walk did not find it.

    `since` is when the ambiguous request was sent (this machine's clock);
    `budget` the seconds this attempt may spend walking. Raises
    `RetryableError` when the walk is incomplete; its progress is kept in the
    checkpoint under `listing.checkpoint_key`, and cleared once it concludes,
    so a later walk starts from the newest item again.
    """
    wanted = wanted_articles(post)
    state = _resumed(attempt.checkpoint.get(listing.checkpoint_key), since)
    deadline = time.monotonic() + budget
    oldest_wanted = since - margin
    while True:
        if time.monotonic() > deadline:
            _pause(attempt, listing, state)
            raise RetryableError(
                f"{listing.what}: out of time at item {state['offset']}; the lookup resumes there",
                retry_after=1.0,
            )
        payload = {"offset": state["offset"], "count": PAGE_SIZE, "no_content": 1}
        try:
            data = api.call(listing.what, listing.path, payload=payload)
        except RetryableError as exc:
            _pause(attempt, listing, state)
            raise RetryableError(
                f"{exc.reason}; the lookup resumes at item {state['offset']}",
                code=exc.code,
                http_status=exc.http_status,
                retry_after=exc.retry_after,
            ) from None
        total = _count(data.get("total_count"))
        if state["total"] is not None and total is not None and total < state["total"]:
            # Items were removed above us, pulling unread ones up: step back over them.
            state["offset"] = max(0, state["offset"] - (state["total"] - total))
            state["total"] = total
            continue
        state["total"] = total
        items = [i for i in data.get("item") or [] if isinstance(i, dict)]
        for item in items:
            news = (item.get("content") or {}).get("news_item") or []
            if [(n.get("content_source_url"), n.get("title")) for n in news] == wanted:
                attempt.step(listing.checkpoint_key, None)
                return Found(str(item[listing.id_key]), news[0])
            updated = _count(item.get("update_time"))
            if updated is not None and updated < oldest_wanted:
                attempt.step(listing.checkpoint_key, None)  # complete: older than the request
                return None
        state["offset"] += len(items)
        if len(items) < PAGE_SIZE:
            attempt.step(listing.checkpoint_key, None)  # complete: the end of the list
            return None


def _resumed(saved: Any, since: float) -> dict[str, Any]:
    """The walk's saved place, if it belongs to this request; else the top of the list."""
    if isinstance(saved, dict) and saved.get("since") == since:
        offset = saved.get("offset")
        total = saved.get("total")
        return {
            "since": since,
            "offset": offset if isinstance(offset, int) and offset >= 0 else 0,
            "total": total if isinstance(total, int) else None,
        }
    return {"since": since, "offset": 0, "total": None}


def _pause(attempt: SendAttempt, listing: Listing, state: dict[str, Any]) -> None:
    attempt.step(listing.checkpoint_key, dict(state))


def _count(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
