"""The W3C Feed Validation Service's rules for RSS 2.0 and the iTunes tags, as a checker.

The validator (github.com/w3c/feedvalidator, `rss.py`, `item.py`,
`itunes.py`, `validators.py`) is not on PyPI, so its error rules that a
podcast document can break are restated here: required channel and item
elements, RFC 822 dates, enclosure attributes and iTunes formats, the
`itunes:explicit` true/false values, the category list, the duration
syntax, episode and channel types, lengths, `rel="self"` and the owner's
e-mail. Each returns a message naming the rule, so a failure says which.
"""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime

from lxml import etree

ITUNES = "{http://www.itunes.com/dtds/podcast-1.0.dtd}"
ATOM = "{http://www.w3.org/2005/Atom}"
PODCAST = "{https://podcastindex.org/namespace/1.0}"
DCTERMS = "{http://purl.org/dc/terms/}"

#: The validator's valid_itunes_categories (Apple's list since 2019).
CATEGORIES: dict[str, set[str]] = {
    "Arts": {"Books", "Design", "Fashion & Beauty", "Food", "Performing Arts", "Visual Arts"},
    "Business": {"Careers", "Entrepreneurship", "Investing", "Management", "Marketing",
                 "Non-Profit"},
    "Comedy": {"Comedy Interviews", "Improv", "Stand-Up"},
    "Education": {"Courses", "How To", "Language Learning", "Self-Improvement"},
    "Government": set(),
    "History": set(),
    "News": {"Business News", "Daily News", "Entertainment News", "News Commentary",
             "Politics", "Sports News", "Tech News"},
    "Society & Culture": {"Documentary", "Personal Journals", "Philosophy",
                          "Places & Travel", "Relationships"},
    "Technology": set(),
}  # fmt: skip
ENCLOSURE_FORMATS = {"m4a", "mp3", "mov", "mp4", "m4v", "pdf", "epub"}
_DURATION = re.compile(r"^(\d+|(\d+:)?[0-5]?\d:[0-5]\d)$")
_EMAIL = re.compile(r"^[\w.+-]+@[\w-]+(\.[\w-]+)+$")
_HTTP_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")
_W3CDTF = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")


def problems(document: bytes) -> list[str]:
    """Every error the validator would report for this RSS podcast document."""
    root = etree.fromstring(document)
    found: list[str] = []
    if root.tag != "rss" or root.get("version") != "2.0":
        return ["root: not <rss version='2.0'>"]
    channel = root.find("channel")
    if channel is None:
        return ["MissingElement: channel"]
    found += _channel(channel)
    guids: set[str] = set()
    for item in channel.findall("item"):
        found += _item(item, guids)
    return found


def _channel(channel: etree._Element) -> list[str]:
    found = [f"MissingElement: channel/{n}" for n in ("title", "link", "description")
             if not (channel.findtext(n) or "").strip()]  # fmt: skip
    if not _HTTP_URL.match(channel.findtext("link") or ""):
        found.append("InvalidURLAttribute: channel/link")
    selves = [a for a in channel.findall(f"{ATOM}link") if a.get("rel") == "self"]
    if len(selves) != 1 or not _HTTP_URL.match(selves[0].get("href") or ""):
        found.append("MissingSelf: one atom:link rel='self' with an absolute href")
    language = channel.findtext("language")
    if not language or not _LANGUAGE.match(language):
        found.append(f"MissingItunesElement/InvalidLanguage: language {language!r}")
    for name in ("lastBuildDate", "pubDate"):
        found += _rfc822(channel, name, "channel")
    for name in ("author", "explicit", "image", "owner", "summary", "type"):
        if len(channel.findall(f"{ITUNES}{name}")) > 1:
            found.append(f"DuplicateElement: itunes:{name}")
    explicit = channel.findtext(f"{ITUNES}explicit")
    if explicit is None:
        found.append("MissingItunesElement: itunes:explicit")
    elif explicit.lower() not in ("true", "false"):
        found.append(f"InvalidTrueFalse: itunes:explicit {explicit!r}")
    categories = channel.findall(f"{ITUNES}category")
    if not categories:
        found.append("MissingItunesElement: itunes:category")
    for category in categories:
        text = category.get("text")
        if text not in CATEGORIES:
            found.append(f"InvalidItunesCategory: {text!r}")
            continue
        for sub in category.findall(f"{ITUNES}category"):
            if sub.get("text") not in CATEGORIES[text]:
                found.append(f"InvalidItunesCategory: {text!r} / {sub.get('text')!r}")
    image = channel.find(f"{ITUNES}image")
    if image is None or not _HTTP_URL.match(image.get("href") or ""):
        found.append("MissingAttribute/InvalidURL: itunes:image href")
    owner = channel.find(f"{ITUNES}owner")
    if owner is None or not _EMAIL.match(owner.findtext(f"{ITUNES}email") or ""):
        found.append("MissingItunesEmail: itunes:owner/itunes:email")
    if len(channel.findtext(f"{ITUNES}author") or "") > 255:
        found.append("TooLong: itunes:author over 255 characters")
    if len(channel.findtext(f"{ITUNES}summary") or "") > 4000:
        found.append("TooLong: itunes:summary over 4000 characters")
    if len((channel.findtext("description") or "").encode()) > 4000:
        found.append("TooLong: description over 4000 bytes (PSP-1)")
    kind = channel.findtext(f"{ITUNES}type")
    if kind is not None and kind not in ("episodic", "serial"):
        found.append(f"InvalidItunesChannelType: {kind!r}")
    return found


def _item(item: etree._Element, guids: set[str]) -> list[str]:
    found: list[str] = []
    if not item.findtext("title") and not item.findtext("description"):
        found.append("ItemMustContainTitleOrDescription")
    guid = item.findtext("guid")
    if not guid:
        found.append("MissingGuid")
    elif guid in guids:
        found.append(f"DuplicateValue: guid {guid}")
    guids.add(guid or "")
    found += _rfc822(item, "pubDate", "item")
    author = item.findtext("author")
    if author is not None and not _EMAIL.match(author.split(" ")[0]):
        found.append("InvalidContact: RSS author must be an e-mail address")
    enclosures = item.findall("enclosure")
    if len(enclosures) != 1:
        found.append("DuplicateEnclosure/MissingEnclosure: one enclosure per podcast item")
    for enclosure in enclosures:
        url, length, kind = (enclosure.get(a) for a in ("url", "length", "type"))
        if not url or not _HTTP_URL.match(url):
            found.append("MissingAttribute: enclosure url")
        elif url.rsplit(".", 1)[-1] not in ENCLOSURE_FORMATS:
            found.append(f"UnsupportedItunesFormat: {url}")
        if not (length or "").isdigit() or int(length or 0) <= 0:
            found.append(f"InvalidIntegerAttribute: enclosure length {length!r}")
        if not kind or "/" not in kind:
            found.append(f"InvalidMIMEAttribute: enclosure type {kind!r}")
    duration = item.findtext(f"{ITUNES}duration")
    if duration is not None and not _DURATION.match(duration):
        found.append(f"InvalidDuration: {duration!r}")
    episode_type = item.findtext(f"{ITUNES}episodeType")
    if episode_type is not None and episode_type not in ("full", "trailer", "bonus"):
        found.append(f"InvalidItunesEpisodeType: {episode_type!r}")
    explicit = item.findtext(f"{ITUNES}explicit")
    if explicit is not None and explicit.lower() not in ("true", "false"):
        found.append(f"InvalidTrueFalse: item itunes:explicit {explicit!r}")
    modified = item.findtext(f"{DCTERMS}modified")
    if modified is not None and not _W3CDTF.match(modified):
        found.append(f"InvalidW3CDTFDate: dcterms:modified {modified!r}")
    return found


def _rfc822(parent: etree._Element, name: str, where: str) -> list[str]:
    value = parent.findtext(name)
    if value is None:
        return []
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return [f"InvalidRFC2822Date: {where}/{name} {value!r}"]
    if parsed.tzinfo is None or not re.search(r"\b\d{4}\b", value):
        return [f"InvalidRFC2822Date: {where}/{name} {value!r} (zone and 4-digit year)"]
    return []
