"""Recurring syndication: `[syndication.NAME]` jobs run on a cron schedule.

Every beat tick asks each job for its latest scheduled time at or before
`now` (`CronSchedule.previous`, wall-clock time in the job's zone). A run
for that time is claimed by inserting its `syndication_runs` row, unique per
(job, scheduled time), so it happens at most once whatever beats, workers or
restarts there are; a run whose worker died mid-way is taken over when its
lease expires, with the items chosen the first time. A scheduled time more
than `misfire_grace` seconds in the past is not run (a beat that was down
all evening does not send the evening digest at breakfast).

What a run sends goes through the normal path, `Runtime.publish`, so it is
formatted, stored, retried and shown like any article:

- `mode = "digest"`: one article, `digest-<job>-<YYYY-MM-DD-HHMM>` (local
  time of the run), whose body lists the chosen articles (title, link,
  summary), published to the job's channel. On a channel that
  `supports_digest` (WeChat) what is sent is one multi-article message of
  the chosen articles themselves (`format_articles`, each formatted by the
  channel, newest first, at most its `max_articles`): it is stored as the
  digest article's delivery, with that message as its payload, in the same
  single transaction;
- `mode = "each"`: each chosen article gets a delivery on the job's channel,
  the first at the scheduled time and the next ones `spacing` seconds apart
  (scheduled deliveries, released by the sweeper). An article already
  delivered there is not chosen.

The chosen articles are the newest (by `published_at`) published within
`window` before the scheduled time, not retracted, not digests themselves,
optionally only those carrying one of the job's `tags`, at most `max_items`.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from channels.base import Channel
from publisher.config.jobs import SyndicationConfig
from publisher.delivery.publishing import with_stored_media
from publisher.domain.article import Article, parse_article
from publisher.domain.errors import InputError, NotFound
from publisher.domain.states import Correction
from publisher.jobs.ports import JobContext
from publisher.store import PlannedDelivery
from publisher.store.models import SyndicationRunRow
from publisher.store.syndication import DIGEST_PREFIX, RunState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    job: str
    scheduled_for: datetime
    state: str
    items: list[str]
    article_id: str | None = None
    error: str | None = None


def due_time(job: SyndicationConfig, now: datetime) -> datetime | None:
    """The scheduled time to run now, or None (none yet, or missed past the grace)."""
    slot = job.cron.previous(now)
    if slot is None or (now - slot).total_seconds() > job.misfire_grace:
        return None
    return slot


def digest_id(job: SyndicationConfig, slot: datetime) -> str:
    local = slot.astimezone(job.cron.zone)
    return f"{DIGEST_PREFIX}{job.name}-{local:%Y-%m-%d-%H%M}"


class Syndicator:
    """Runs the configured jobs through one process's `Runtime`."""

    def __init__(self, runtime: JobContext) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.store = runtime.store

    def run_due(self, now: datetime | None = None) -> list[RunOutcome]:
        now = now or datetime.now(UTC)
        outcomes = []
        for job in self.settings.syndication.values():
            slot = due_time(job, now)
            if slot is None:
                continue
            outcome = self.run(job, slot, now=now)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def run(self, job: SyndicationConfig, slot: datetime, *, now: datetime) -> RunOutcome | None:
        """Run `job` for `slot` unless that run was already claimed; None if it was."""
        claimed = self._claim(job, slot, now)
        if claimed is None:
            return None
        run_id, items = claimed
        if not items:
            return self._finish(run_id, job, slot, RunState.EMPTY, items, now=now)
        try:
            if job.mode == "digest":
                chosen = self._chosen(items)
                article = self._digest(job, slot, chosen)
                channel = self.runtime.channels.get(job.channel)
                if channel is not None and channel.supports_digest:
                    self._publish_message(job, article, channel, channel.format_articles(chosen))
                else:
                    self.runtime.publish(article, only=[job.channel], actor=job.actor)
                return self._finish(run_id, job, slot, RunState.DONE, items, article.id, now=now)
            self._each(job, slot, items, now)
            return self._finish(run_id, job, slot, RunState.DONE, items, now=now)
        except InputError as exc:
            # The channel cannot take what this run makes; retrying cannot help.
            log.error("syndication %s at %s failed: %s", job.name, slot.isoformat(), exc)
            return self._finish(run_id, job, slot, RunState.FAILED, items, error=str(exc), now=now)

    # -- what a run sends ------------------------------------------------------------------

    def digest_article(self, job: SyndicationConfig, slot: datetime, items: list[str]) -> Article:
        return self._digest(job, slot, self._chosen(items))

    def _chosen(self, items: list[str]) -> list[Article]:
        """The chosen articles as stored now, in the chosen order (newest first)."""
        articles = [a for a in (self._article(i) for i in items) if a is not None]
        if not articles:
            raise InputError("items", "every chosen article was deleted")
        return articles

    def _digest(self, job: SyndicationConfig, slot: datetime, articles: list[Article]) -> Article:
        local = slot.astimezone(job.cron.zone)
        names = {"date": f"{local:%Y-%m-%d}", "time": f"{local:%H:%M}", "job": job.name}
        parts = [f"<p>{html.escape(job.intro)}</p>"] if job.intro else []
        parts.append("<ol>")
        for a in articles:
            parts.append(
                f'<li><p><a href="{html.escape(a.url)}">{html.escape(a.title)}</a></p>'
                f"<p>{html.escape(a.summary)}</p></li>"
            )
        parts.append("</ol>")
        languages = {a.language for a in articles}
        digest = parse_article(
            {
                "id": digest_id(job, slot),
                "url": job.url.format(**names) if job.url else self.settings.feeds.home_page_url,
                "title": job.title.format(**names),
                "body_html": "".join(parts),
                "summary": "; ".join(a.title for a in articles)[:1000],
                "cover_image": next(
                    (a.cover_image for a in articles if (a.cover_image or "").startswith("http")),
                    None,
                ),
                "language": languages.pop() if len(languages) == 1 else None,
                "published_at": slot,
                "channels": [job.channel],
            }
        )
        stored_cover = next((a.cover_image for a in articles if a.cover_is_local), None)
        if digest.cover_image is None and stored_cover:
            digest = digest.model_copy(update={"cover_image": stored_cover})
        return digest

    def _publish_message(
        self,
        job: SyndicationConfig,
        digest: Article,
        channel: Channel,
        payload: dict[str, Any],
    ) -> None:
        """`Runtime.publish` for the digest, but what the delivery sends is `payload`.

        One `Store.publish` transaction stores the digest article and its one
        delivery, whose payload is the multi-article message built from the
        chosen articles (not the digest article formatted); a run taken over
        publishes the same digest again, which stores nothing new.
        """
        planned = PlannedDelivery(
            channel=channel.name,
            channel_type=channel.type_name,
            max_attempts=channel.config.max_attempts,
            payload=payload,
            correction=channel.correction,
            correction_payload=payload if channel.correction == Correction.REPUBLISH else None,
            can_delete=channel.can_delete,
        )
        result = self.store.publish(
            with_stored_media(digest, self.store), [planned], actor=job.actor
        )
        self.runtime.dispatcher.enqueue(result.to_enqueue)

    def _each(
        self, job: SyndicationConfig, slot: datetime, items: list[str], now: datetime
    ) -> None:
        start = max(slot, now)
        for n, article_id in enumerate(items):
            article = self._article(article_id)
            if article is None:
                continue
            when = start + timedelta(seconds=job.spacing * n)
            self.runtime.publish(
                article.model_copy(update={"publish_at": when, "channels": None}),
                only=[job.channel],
                actor=job.actor,
            )

    def _article(self, article_id: str) -> Article | None:
        try:
            row, article, _ = self.store.article(article_id)
        except NotFound:
            return None
        return None if row.retracted_at else article

    # -- the run ledger --------------------------------------------------------------------

    def _claim(
        self, job: SyndicationConfig, slot: datetime, now: datetime
    ) -> tuple[int, list[str]] | None:
        claimed = self.store.claim_syndication_run(job, slot, now, self.settings.lease_seconds)
        if claimed is None:
            return None
        if claimed.taken_over:
            log.warning("syndication %s at %s: taking over a stalled run", job.name, slot)
        return claimed.run_id, claimed.items

    def _finish(
        self,
        run_id: int,
        job: SyndicationConfig,
        slot: datetime,
        state: str,
        items: list[str],
        article_id: str | None = None,
        *,
        error: str | None = None,
        now: datetime,
    ) -> RunOutcome:
        self.store.finish_syndication_run(
            run_id, state, article_id=article_id, error=error, now=now
        )
        log.info(
            "syndication %s at %s: %s (%d items)", job.name, slot.isoformat(), state, len(items)
        )
        return RunOutcome(job.name, slot, state, items, article_id, error)

    def runs(self, job: str | None = None) -> list[SyndicationRunRow]:
        return self.store.syndication_runs(job)


def describe(job: SyndicationConfig, now: datetime) -> dict[str, Any]:
    """A job's schedule in words an operator can check: its next run, local and UTC."""
    nxt = job.cron.next_after(now)
    return {
        "job": job.name,
        "schedule": job.schedule,
        "timezone": job.timezone,
        "next_run": nxt.isoformat() if nxt else None,
        "next_run_local": nxt.astimezone(job.cron.zone).isoformat() if nxt else None,
    }
