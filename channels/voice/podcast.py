"""The podcast document: RSS 2.0 with the iTunes tags and the Podcasting 2.0 namespace.

feedgen's podcast extension writes most iTunes tags but only the old
`itunes:explicit` values (yes/no/clean, which Apple and the W3C validator
now refuse) and nothing of the `podcast:` namespace, so the extension here
extends it: `itunes:explicit` true/false, `podcast:guid`, `podcast:locked`
and `podcast:transcript`, plus `dcterms:modified` on items, because RSS has no
"updated" and a corrected episode must say it changed.

Rendering is serialised like the site's RSS (feedgen's RFC 822 dates switch
the process locale, which is not thread-safe), and every date is explicit.
"""

from __future__ import annotations

import io
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from feedgen.ext.podcast import PodcastExtension
from feedgen.ext.podcast_entry import PodcastEntryExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

ITUNES_NS = "http://www.itunes.com/dtds/podcast-1.0.dtd"
PODCAST_NS = "https://podcastindex.org/namespace/1.0"
DCTERMS_NS = "http://purl.org/dc/terms/"
#: The Podcasting 2.0 namespace for `podcast:guid` (UUIDv5 of the feed URL).
PODCAST_GUID_NAMESPACE = uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6")
ARTWORK_SIZE = 3000  # px; Apple takes 1400–3000, square

_render_lock = threading.Lock()


def podcast_guid(feed_url: str) -> str:
    """`podcast:guid`: UUIDv5 of the feed URL without its scheme and trailing slashes."""
    bare = feed_url.split("://", 1)[-1].rstrip("/")
    return str(uuid.uuid5(PODCAST_GUID_NAMESPACE, bare))


class PodcastingExtension(PodcastExtension):
    """feedgen's iTunes channel tags, with `itunes:explicit` true/false and `podcast:*`."""

    def __init__(self) -> None:
        super().__init__()
        self.explicit = False
        self.guid: str | None = None
        self.locked: bool = True
        self.locked_owner: str | None = None

    def extend_ns(self) -> dict[str, str]:
        return {**super().extend_ns(), "podcast": PODCAST_NS, "dcterms": DCTERMS_NS}

    def extend_rss(self, rss_feed: Any) -> Any:
        rss_feed = super().extend_rss(rss_feed)
        channel = rss_feed[0]
        xml_elem(f"{{{ITUNES_NS}}}explicit", channel).text = "true" if self.explicit else "false"
        locked = xml_elem(f"{{{PODCAST_NS}}}locked", channel)
        locked.text = "yes" if self.locked else "no"
        if self.locked_owner:
            locked.attrib["owner"] = self.locked_owner
        if self.guid:
            xml_elem(f"{{{PODCAST_NS}}}guid", channel).text = self.guid
        return rss_feed


class PodcastingEntryExtension(PodcastEntryExtension):
    """feedgen's iTunes item tags, with `podcast:transcript` and `dcterms:modified`."""

    def __init__(self) -> None:
        super().__init__()
        self.transcript: tuple[str, str, str | None] | None = None  # url, type, language
        self.modified: datetime | None = None

    def extend_rss(self, entry: Any) -> Any:
        entry = super().extend_rss(entry)
        if self.transcript:
            url, kind, language = self.transcript
            element = xml_elem(f"{{{PODCAST_NS}}}transcript", entry, url=url, type=kind)
            if language:
                element.attrib["language"] = language
        if self.modified:
            xml_elem(f"{{{DCTERMS_NS}}}modified", entry).text = self.modified.isoformat()
        return entry


@dataclass(frozen=True)
class Show:
    """What the podcast says about itself (the `<channel>`)."""

    title: str
    description: str
    home_page_url: str
    feed_url: str
    image_url: str
    language: str
    author: str
    category: str
    subcategory: str | None
    explicit: bool
    owner_email: str | None
    kind: str  # itunes:type: episodic | serial
    locked: bool


@dataclass(frozen=True)
class Episode:
    """One item: the stored payload's facts plus the measured audio."""

    guid: str
    title: str
    url: str
    summary: str | None
    published: datetime
    updated: datetime
    audio_url: str
    audio_bytes: int
    seconds: float
    transcript_url: str | None
    language: str | None
    image_url: str | None


def render_podcast(show: Show, episodes: list[Episode], built_at: datetime) -> bytes:
    """The RSS document, newest episode first."""
    with _render_lock:
        fg = FeedGenerator()
        fg.register_extension("podcast", PodcastingExtension, PodcastingEntryExtension, atom=False)
        fg.title(show.title)
        fg.description(show.description)
        fg.link(href=show.feed_url, rel="self")  # before alternate: RSS takes the last link
        fg.link(href=show.home_page_url, rel="alternate")
        fg.language(show.language)
        fg.generator("publisher")
        fg.lastBuildDate(built_at)
        fg.pubDate(max((e.updated for e in episodes), default=built_at))
        fg.image(url=show.image_url, title=show.title, link=show.home_page_url)
        ext: PodcastingExtension = fg.podcast
        ext.itunes_author(show.author)
        ext.itunes_image(show.image_url)
        ext.itunes_type(show.kind)
        ext.itunes_summary(show.description)
        category = {"cat": show.category}
        if show.subcategory:
            category["sub"] = show.subcategory
        ext.itunes_category([category])
        if show.owner_email:
            ext.itunes_owner(name=show.author, email=show.owner_email)
        ext.explicit = show.explicit
        ext.locked = show.locked
        ext.locked_owner = show.owner_email
        ext.guid = podcast_guid(show.feed_url)
        for episode in episodes:
            _item(fg, episode)
        return bytes(fg.rss_str(pretty=True))


def _item(fg: FeedGenerator, episode: Episode) -> None:
    entry = fg.add_entry(order="append")
    entry.guid(episode.guid, permalink=False)
    entry.title(episode.title)
    entry.link(href=episode.url)
    entry.description(episode.summary or episode.title)
    entry.published(episode.published)
    entry.enclosure(episode.audio_url, str(episode.audio_bytes), "audio/mpeg")
    ext: PodcastingEntryExtension = entry.podcast
    ext.itunes_duration(str(max(1, round(episode.seconds))))
    ext.itunes_episode_type("full")
    if episode.image_url and episode.image_url.endswith((".jpg", ".png")):
        ext.itunes_image(episode.image_url)
    if episode.transcript_url:
        ext.transcript = (episode.transcript_url, "text/plain", episode.language)
    ext.modified = episode.updated


def generate_artwork(name: str, size: int = ARTWORK_SIZE) -> bytes:
    """Square JPEG show art from the newsroom's name, for a matrix that names none.

    Pillow's bundled font has Latin glyphs only: a name in another script would
    come out as empty boxes, so such a newsroom should set `image`.
    """
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (size, size), (178, 34, 34))
    draw = ImageDraw.Draw(image)
    draw.rectangle((size // 12, size // 12, size - size // 12, size - size // 12), outline="white",
                   width=size // 100)  # fmt: skip
    words = name.split() or [name]
    lines = _wrap(words, 12)
    font = ImageFont.load_default(size=size // (4 + max(len(lines), 2)))
    heights = [draw.textbbox((0, 0), line, font=font) for line in lines]
    total = sum(box[3] - box[1] for box in heights) * 1.3
    y = (size - total) / 2
    for line, box in zip(lines, heights, strict=True):
        width = box[2] - box[0]
        draw.text(((size - width) / 2 - box[0], y - box[1]), line, font=font, fill="white")
        y += (box[3] - box[1]) * 1.3
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def _wrap(words: list[str], width: int) -> list[str]:
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines
