"""Long copy as a Mastodon thread: numbered parts, each a reply to the one before.

With `thread = true` on a Mastodon channel, the copy is the whole article
(title, body, link, hashtags) and, where it exceeds the instance's limit,
it is split by `publisher.domain.text.pack` at sentence boundaries (CJK
punctuation included) into parts that each fit with their "2/5" number.

One delivery posts every part, and the checkpoint makes it resumable:

- `checkpoint["posts"]` (`channels.base.POSTS_KEY`) lists the live part
  ids in thread order, the first being the receipt's (what followers open);
  a retraction deletes each of them once.
- `checkpoint["thread"]` holds the plan of the version being written (its
  part texts, fixed once planned, so a retry never re-splits differently)
  and how many parts already carry it.

Each part is posted with its own `Idempotency-Key`, derived from the key of
the delivery that started the thread, so a worker killed after the server
took part k+1 but before the checkpoint saved it gets that same status back
on the retry instead of posting it twice. A correction (a new version) edits
the parts in place (`PUT`), appends replies when the new copy needs more
parts, and deletes the surplus (last first) when it needs fewer; a part
the instance no longer has (a new version after a retraction) is posted
again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from channels.base import POSTS_KEY, Receipt, SendAttempt, remote_posts
from channels.http import json_body
from channels.mastodon_api import MastodonApi, receipt, status_path
from channels.mastodon_status import PARAGRAPH, Limits, StatusParts
from publisher.domain.article import Article
from publisher.domain.text import cut, pack

log = logging.getLogger(__name__)

#: Payload: the whole copy the parts are split from (present when `thread = true`).
THREAD_TEXT = "thread_text"
#: Payload: the parts for stock limits (what preview shows); checkpoint: the progress.
THREAD = "thread"


def thread_text(article: Article, parts: StatusParts, written: bool) -> str:
    """The copy a thread carries: the editor's `text` as written, or the article's
    title, body, link and hashtags, one paragraph each."""
    tags = " ".join(f"#{t}" for t in parts.hashtags)
    if written:
        return PARAGRAPH.join(p for p in (parts.title, parts.url) if p)
    return PARAGRAPH.join(p for p in (parts.title, article.text, parts.url, tags) if p)


def split(text: str, limits: Limits) -> list[str]:
    """`text` as one status if it fits, else as numbered parts that each fit.

    The number ("2/5", after a space) counts against the limit; the room left
    for text depends on how many digits the count has, so the split is redone
    until the count's width settles (once, in practice).
    """
    if limits.fits(text):
        return [text]
    count = 9
    for _ in range(4):
        room = limits.max_characters - limits.measure(_numbered("", count, count))
        if room < 1:
            return [cut(text, limits.max_characters, limits.measure)]
        chunks = pack(text.split(PARAGRAPH), room, limits.measure, paragraph_break=PARAGRAPH)
        if len(str(len(chunks))) <= len(str(count)):
            return [_numbered(c, i, len(chunks)) for i, c in enumerate(chunks, 1)]
        count = len(chunks)
    raise AssertionError("the part count kept growing")  # pragma: no cover


def _numbered(text: str, index: int, count: int) -> str:
    return f"{text} {index}/{count}"


def part_key(thread_key: str, index: int) -> str:
    """A distinct Idempotency-Key per part (index from 0), stable across retries."""
    return f"{thread_key}-{index + 1}"


@dataclass
class ThreadWriter:
    """Brings the thread on the instance to one version's parts, a step at a time.

    `body` turns a part's text into the JSON of a create; `first_media` gives
    the media ids the first part carries (uploaded once, checkpointed).
    """

    api: MastodonApi
    attempt: SendAttempt
    body: Callable[[str], dict[str, Any]]
    first_media: Callable[[], list[str]]

    def write(self, texts: list[str], remote_id: str | None = None) -> Receipt:
        """Post, edit or delete parts until the thread is `texts`; its first part's receipt.

        `remote_id` is the post delivered before (a correction), for a thread
        begun before the checkpoint listed its parts (a single status then).
        """
        checkpoint = self.attempt.checkpoint
        ids = remote_posts(checkpoint, remote_id)
        state = dict(_mapping(checkpoint.get(THREAD)))
        version = self.attempt.idempotency_key
        if state.get("version") != version:
            # A new version (or the first): plan it once; a retry reuses the plan.
            state = {
                "key": state.get("key") or version,
                "version": version,
                "texts": texts,
                "done": 0,
                "url": state.get("url"),
            }
            self._save(ids, state)
        planned = [str(t) for t in state["texts"]]
        for index in range(int(state["done"]), len(planned)):
            text = planned[index]
            if index >= len(ids):
                ids.append(self._post(text, index, ids, state, str(state["key"])))
            elif not self._edit(ids[index], text, index, state):
                # The part is gone (deleted by hand, or by a retraction before this
                # version): post it again, under a key of this version's own.
                ids[index] = self._post(text, index, ids, state, version)
            state["done"] = index + 1
            self._save(ids, state)
        while len(ids) > len(planned):  # the copy got shorter: the last parts go
            self._delete(ids[-1])
            ids.pop()
            self._save(ids, state)
        return Receipt(remote_id=ids[0], remote_url=state.get("url"))

    def _post(self, text: str, index: int, ids: list[str], state: dict[str, Any], key: str) -> str:
        body = self.body(text)
        if index == 0:
            media = self.first_media()
            if media:
                body["media_ids"] = media
        else:
            body["in_reply_to_id"] = ids[index - 1]
        what = f"post part {index + 1} of the thread"
        data = self.api.json(
            "POST", "/api/v1/statuses", what=what, json=body,
            headers={"Idempotency-Key": part_key(key, index)},
        )  # fmt: skip
        posted = receipt(data, what)
        if key != state["version"]:
            # A key from an earlier version may return a part that version
            # posted (its text): bring it to this version's text.
            self._edit(posted.remote_id, text, index, state)
        elif index == 0:
            state["url"] = posted.remote_url
        log.info("thread part %s posted as %s", index + 1, posted.remote_id)
        return posted.remote_id

    def _edit(self, remote_id: str, text: str, index: int, state: dict[str, Any]) -> bool:
        """Edit one part; False if the instance no longer has it."""
        body = self.body(text)
        body.pop("visibility", None)  # Mastodon cannot change visibility on edit
        what = f"edit part {index + 1} of the thread"
        response = self.api.call(
            "PUT", status_path(remote_id), what=what, json=body, tolerate=(404,)
        )
        if response.status_code == 404:
            return False
        edited = receipt(json_body(response, what), what)
        if index == 0:
            state["url"] = edited.remote_url
        return True

    def _delete(self, remote_id: str) -> None:
        self.api.call(
            "DELETE", status_path(remote_id), what="delete a surplus part", tolerate=(404,)
        )
        log.info("thread part %s deleted (the copy got shorter)", remote_id)

    def _save(self, ids: list[str], state: dict[str, Any]) -> None:
        self.attempt.checkpoint[POSTS_KEY] = list(ids)
        self.attempt.step(THREAD, dict(state))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
