"""The channel interface: a pure formatter and a transport that returns a receipt.

A channel type declares its facts as class attributes the core reads (what
it can do on an update or a retraction, whether it takes a multi-article
digest and how many articles one holds, which payload fields the platform
measures and by what rule); the engine does the shared work (claiming,
retries, backoff, the attempt log) once, and no core module needs to know
which platform it is talking to. A
transport either returns a `Receipt` or raises one of the classified
`DeliveryError`s from `publisher.domain.errors`; it never returns a bare bool.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from channels.links import LinkTracking
from channels.overrides import OverrideRule
from channels.overrides import check as check_override_rules
from publisher.config.settings import ChannelConfig, Settings
from publisher.domain.article import Article
from publisher.domain.errors import InputError, PermanentError
from publisher.domain.posts import POSTS_KEY as POSTS_KEY  # re-exported for channels
from publisher.domain.posts import remote_posts as remote_posts
from publisher.domain.states import Correction
from publisher.domain.text import Measure

if TYPE_CHECKING:
    import redis


@dataclass(frozen=True)
class Receipt:
    """Where the post now lives on the platform."""

    remote_id: str
    remote_url: str | None = None


@dataclass(frozen=True)
class TextLimit:
    """One payload field the platform measures its own way, and the most it accepts.

    `field` is a dotted path into the payload ("status", "article.title").
    `measure` is the platform's rule (Weibo's 字, Mastodon's weighted
    graphemes); a formatter cuts with it, so `fits` holds for every payload
    `format` returns.
    """

    field: str
    limit: int
    measure: Measure

    def used(self, post: Mapping[str, Any]) -> int | None:
        """How much of the limit `post` uses, or None if it has no such field."""
        value: Any = post
        for key in self.field.split("."):
            if not isinstance(value, Mapping) or key not in value:
                return None
            value = value[key]
        return self.measure(value) if isinstance(value, str) else None

    def fits(self, post: Mapping[str, Any]) -> bool:
        used = self.used(post)
        return used is None or used <= self.limit


@dataclass
class SendAttempt:
    """What a transport knows about the attempt it is making.

    `idempotency_key` is the same for every attempt of one delivery of one
    article version, so a platform that de-duplicates on it (Mastodon's
    `Idempotency-Key`, WeChat's `clientmsgid`) never posts twice.
    `checkpoint` holds what earlier attempts of this delivery completed
    (e.g. a WeChat draft's media_id); call `save_checkpoint` after each
    step so a retry resumes instead of restarting. `outcome_unknown` is True
    when the previous attempt ended without knowing whether the platform
    accepted the post: reconcile before sending again.
    """

    delivery_id: int
    number: int
    idempotency_key: str
    checkpoint: dict[str, Any] = field(default_factory=dict)
    outcome_unknown: bool = False
    save_checkpoint: Callable[[dict[str, Any]], None] = lambda data: None

    def step(self, name: str, value: Any) -> None:
        """Record one completed step and persist the whole checkpoint."""
        self.checkpoint[name] = value
        self.save_checkpoint(dict(self.checkpoint))

    def note(self, text: str) -> None:
        """Tell the editor about something the send did differently (an image left out,
        a generated cover). Kept in the checkpoint, so a note made by an attempt
        that later failed still reaches the attempt log of the one that delivers."""
        notes = notes_of(self.checkpoint)
        if text not in notes:
            self.step(NOTES_KEY, [*notes, text])


#: Where `SendAttempt.note` keeps its notes in the checkpoint.
NOTES_KEY = "notes"


def notes_of(checkpoint: dict[str, Any] | None) -> list[str]:
    """The notes a delivery's attempts made, oldest first, for the attempt log."""
    notes = (checkpoint or {}).get(NOTES_KEY)
    return [str(n) for n in notes] if isinstance(notes, list) else []


@dataclass
class ChannelContext:
    """What a channel may use beyond its own config: settings and shared Redis.

    `redis` is None where nothing is sent (preview); channels that need it
    for token caches or rate limits only touch it inside `send`.
    """

    settings: Settings
    redis: redis.Redis | None = None
    read_media: Callable[[str], tuple[bytes, str]] | None = None  # ref -> (bytes, content type)
    #: (bytes, content type, suffix, name) -> ref; files a channel makes (an episode's MP3).
    save_media: Callable[..., str] | None = None


class Channel(ABC):
    """One configured channel: `[channels.NAME]` of a given type."""

    type_name: ClassVar[str]
    #: How a correction of a delivered article reaches this platform.
    correction: ClassVar[Correction] = Correction.NONE
    #: Can a delivered post be removed (a retraction)? If not, it is reported.
    can_delete: ClassVar[bool] = False
    #: True for feed-like channels whose output is a document, not a post.
    is_feed: ClassVar[bool] = False
    #: The account's default budget of posts an hour (the `posts_per_hour` key
    #: overrides it); None: no budget of our own, the platform's answer guards.
    posts_per_hour: ClassVar[float | None] = None
    #: Can one post carry several articles (a digest as one multi-article message)?
    #: If so, `format_articles` builds it and `send` takes it like any payload.
    supports_digest: ClassVar[bool] = False
    #: The most articles one post may carry (above 1 only where `supports_digest`).
    max_articles: ClassVar[int] = 1
    #: The payload fields the platform measures, each with its rule and limit.
    text_limits: ClassVar[tuple[TextLimit, ...]] = ()
    #: The `overrides.<name>.<key>` an editor may write for this type, with their limits.
    override_rules: ClassVar[tuple[OverrideRule, ...]] = ()

    def __init__(self, config: ChannelConfig, context: ChannelContext) -> None:
        self.config = config
        self.context = context
        self.tracking = LinkTracking.of(config)  # `utm`: checked when the channel is built

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def queue(self) -> str:
        return queue_for(self.type_name)

    @abstractmethod
    def format(self, article: Article) -> dict[str, Any]:
        """The post payload for this channel: pure, JSON-serialisable, shown by preview."""

    @abstractmethod
    def send(self, post: dict[str, Any], attempt: SendAttempt) -> Receipt:
        """Deliver `post`; raise a `DeliveryError` subclass on failure."""

    def link(self, article: Article) -> str:
        """The article link as this channel prints it (with its `utm` parameters)."""
        return self.tracking.link(article)

    def check_overrides(self, article: Article) -> None:
        """Raise `InputError` for an override of this channel the platform would refuse."""
        check_override_rules(self, article)

    def measure_override(self, key: str, value: str, article: Article) -> int:
        """What `value` uses of its limit, by the platform's rule (default: code points).
        A type whose count covers more than the value (the link it appends) says so here."""
        return len(value)

    def refresh_auth(self) -> None:  # noqa: B027 - optional hook
        """Called after an `AuthExpiredError`, before the immediate retry."""

    def format_articles(self, articles: Sequence[Article]) -> dict[str, Any]:
        """One post carrying several articles (channels that `supports_digest`); pure.

        Everywhere else a digest is one article listing the others, formatted
        by `format`: asking this of such a channel is a caller's mistake.
        """
        raise InputError(
            "articles",
            f"a {self.type_name} channel cannot carry several articles in one post; "
            "publish a digest article instead",
        )

    def update(
        self, remote_id: str, post: dict[str, Any], attempt: SendAttempt | None = None
    ) -> Receipt:
        """Change a delivered post in place (channels whose correction is EDIT);
        `attempt` carries the delivery's checkpoint, for an edit made in steps."""
        raise PermanentError(f"{self.type_name} cannot change a delivered post")

    def format_correction(self, article: Article) -> dict[str, Any]:
        """The follow-up post for a correction (FOLLOW_UP channels); pure, like `format`."""
        return self.format(article)

    def send_correction(
        self, post: dict[str, Any], original_url: str | None, attempt: SendAttempt
    ) -> Receipt:
        """Post a FOLLOW_UP correction; `original_url` is the corrected post's address."""
        return self.send(post, attempt)

    def delete(self, remote_id: str) -> None:
        """Remove a delivered post (a retraction); one already gone counts as removed."""
        raise PermanentError(f"{self.type_name} cannot remove a delivered post")


def queue_for(type_name: str) -> str:
    """One queue per channel type, so a slow platform never holds up the others."""
    return f"deliver.{type_name}"
