"""Rebuilding a feed channel's documents, which is what delivers its items.

A rebuild reads the channel's newest N items together with every delivery
waiting on it, renders every document the channel owns, and hands both to
the store's build transaction (`publisher.store.feed_builds`): the documents
are saved in the store (what the API serves) and written atomically under
`PUBLISHER_DATA_DIR/feeds/` (temp file + rename, so a reader never sees half
a document), and the deliveries they cover are marked `delivered` with the
document URL and the build's id as the receipt, all before one commit. Then
the WebSub hub, if any, is pinged for each document: the hub fetches what
the API now serves.

An item the channel cannot render (say a title with U+FFFF, which lxml
refuses) fails its own delivery with the reason; the document is built
without it, so one bad item never blocks the others.

Files a channel made for one item (`FeedChannel.item_files`: a voice
episode's MP3, transcript and manifest) go with the item: when a removal
takes a retracted article out, or a correction's new version replaces the
old files, the build that makes the document without them live deletes
them from the store in its own transaction, then removes their copies under
`PUBLISHER_DATA_DIR/media/`. An item that merely scrolls out of the newest N
keeps its files: followers' apps may still hold the older document.
"""

from __future__ import annotations

import html
import logging
import os
import tempfile
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from channels.feed import FeedChannel, FeedDocument, FeedItem
from publisher.config.settings import Settings
from publisher.delivery import websub
from publisher.delivery.attempts import decide
from publisher.domain.errors import RetryableError
from publisher.store import Store
from publisher.store.feed_builds import BuiltDocument, commit_feed_build
from publisher.store.feed_snapshot import FeedSnapshot, SnapshotItem, read_feed

log = logging.getLogger(__name__)


@dataclass
class Rebuild:
    """What one rebuild did, for the task's log line and for tests."""

    documents: list[FeedDocument] = field(default_factory=list)
    kept: bool = False
    covered: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    discarded: list[str] = field(default_factory=list)  # media refs deleted with the build


def rebuild_feed(settings: Settings, store: Store, channel: FeedChannel) -> Rebuild:
    started_at = datetime.now(UTC)
    snapshot = read_feed(store, channel.name, settings.feeds.items)
    snapshot = replace(snapshot, items=within_byte_budget(snapshot.items, settings.feeds.max_bytes))
    documents, errors, held = render_isolating_errors(channel, snapshot)
    failed, retry = classify(settings, channel, snapshot, errors)
    files, discard = media_changes(channel, snapshot, failed.keys() | retry.keys())
    built = [BuiltDocument(d.filename, d.content_type, d.body, held) for d in documents]

    def write() -> None:
        for document in documents:
            write_atomically(settings.feeds_dir / document.filename, document.body)

    kept = commit_feed_build(
        store,
        snapshot,
        built,
        document_url=channel.feed_url(channel.filenames()[0]),
        failed=failed,
        write=write,
        started_at=started_at,
        files=files,
        discard=discard,
        retry=retry,
    )
    if kept:
        remove_local_copies(settings.data_dir, discard)
        websub.ping_hub(settings.feeds.hub_url, [channel.feed_url(d.filename) for d in documents])
    return Rebuild(documents, kept, snapshot.waiting, failed, discard if kept else [])


def media_changes(
    channel: FeedChannel, snapshot: FeedSnapshot, unrendered: Collection[int]
) -> tuple[dict[int, tuple[str, ...]], list[str]]:
    """The files each item this build delivers holds, and the files no document holds
    any more: those of the articles the waiting removals take out, and those a
    corrected item held before its new version (rendered now) replaced them.

    A file any item of the new document holds is never discarded, and an item
    that could not be rendered keeps its old files (a retry may yet need none).
    """
    holds = {
        s.delivery_id: channel.item_files(FeedItem(s.payload, s.updated))
        for s in snapshot.items
        if s.delivery_id not in unrendered
    }
    held = {ref for refs in holds.values() for ref in refs}
    gone: set[str] = set()
    for item in snapshot.dropped:
        gone.update(item.files)
        gone.update(channel.item_files(FeedItem(item.payload, item.updated)))
    for item in snapshot.items:
        if item.waiting and item.delivery_id in holds:
            gone.update(item.files)
    # Only rows that hold files, or held some: a text feed's burst costs no extra writes.
    delivered = {
        s.delivery_id: holds[s.delivery_id]
        for s in snapshot.items
        if s.waiting and (holds.get(s.delivery_id) or (s.delivery_id in holds and s.files))
    }
    return delivered, sorted(gone - held)


def remove_local_copies(data_dir: Path, refs: list[str]) -> None:
    """The copies under `<data dir>/media/` (the demo's, for listening without the API)."""
    for ref in refs:
        (data_dir / "media" / Path(ref).name).unlink(missing_ok=True)


def within_byte_budget(items: list[SnapshotItem], budget: int) -> list[SnapshotItem]:
    """Items (newest first) whose full HTML fits `[feeds] max_bytes` together; every
    later item carries its summary as its content, so a few huge articles can
    neither make a document of tens of MB nor a rebuild of hundreds."""
    spent = 0
    kept: list[SnapshotItem] = []
    for item in items:
        content = str(item.payload.get("content_html") or "")
        spent += len(content.encode("utf-8", "replace"))
        if spent > budget:
            summary = html.escape(
                str(item.payload.get("summary") or item.payload.get("title") or "")
            )
            item = replace(item, payload={**item.payload, "content_html": f"<p>{summary}</p>"})
        kept.append(item)
    return kept


def render_without_bad_items(
    channel: FeedChannel, snapshot: FeedSnapshot
) -> tuple[list[FeedDocument], dict[int, str], int]:
    """The documents, the waiting deliveries whose item could not be rendered
    (id → reason), and how many items the documents hold."""
    documents, errors, held = render_isolating_errors(channel, snapshot)
    return documents, {d: _cannot(exc) for d, exc in errors.items()}, held


def render_isolating_errors(
    channel: FeedChannel, snapshot: FeedSnapshot
) -> tuple[list[FeedDocument], dict[int, Exception], int]:
    """The documents, what each waiting item that could not be rendered raised, and
    how many items the documents hold.

    The whole set is rendered at once, as always; only when that fails is each
    item tried alone, so the cost of isolating a bad item is paid only then.
    """
    items = [(s, FeedItem(s.payload, s.updated)) for s in snapshot.items]
    try:
        return channel.render([i for _, i in items], snapshot.read_at), {}, len(items)
    except Exception:  # any renderer error: find the item that caused it
        bad: dict[int, Exception] = {}
        for source, item in items:
            try:
                channel.render([item], snapshot.read_at)
            except Exception as exc:  # the reason goes to the editor
                bad[source.delivery_id] = exc
                if not source.waiting:
                    log.warning("feed %s: delivered item %s no longer renders: %s",
                                channel.name, source.delivery_id, exc)  # fmt: skip
        if not bad:  # each renders alone: what failed was for the moment (a service)
            return channel.render([i for _, i in items], snapshot.read_at), {}, len(items)
        good = [i for s, i in items if s.delivery_id not in bad]
        errors = {d: e for d, e in bad.items() if _is_waiting(snapshot, d)}
        return channel.render(good, snapshot.read_at), errors, len(good)


def classify(
    settings: Settings,
    channel: FeedChannel,
    snapshot: FeedSnapshot,
    errors: dict[int, Exception],
) -> tuple[dict[int, str], dict[int, tuple[str, datetime]]]:
    """Which items failed for good (id → reason) and which may render later (id →
    reason, when): an item whose rendering calls a service (a voice episode's
    speech service answering 503) is retried like a send, by the one retry
    decision (`attempts.decide`), spending one of its attempts per build."""
    failed: dict[int, str] = {}
    retry: dict[int, tuple[str, datetime]] = {}
    by_id = {s.delivery_id: s for s in snapshot.items}
    for delivery_id, exc in errors.items():
        item = by_id[delivery_id]
        if not isinstance(exc, RetryableError):
            failed[delivery_id] = _cannot(exc)
            continue
        verdict = decide(
            exc,
            attempt_number=item.attempts + 1,
            max_attempts=item.max_attempts,
            backoff=settings.channels.get(channel.name),
        )
        if verdict.retry_at is None:
            failed[delivery_id] = _cannot(verdict.reason)
        else:
            retry[delivery_id] = (_cannot(exc), verdict.retry_at)
    return failed, retry


def _cannot(problem: object) -> str:
    return f"cannot be put in the feed: {problem}"


def _is_waiting(snapshot: FeedSnapshot, delivery_id: int) -> bool:
    return any(i.waiting and i.delivery_id == delivery_id for i in snapshot.items)


def write_atomically(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
