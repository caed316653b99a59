"""The rules the W3C Feed Validation Service applies, as far as our documents use them.

Written from RFC 4287 (Atom 1.0) and the RSS 2.0 specification
(rssboard.org/rss-specification), each rule with its section. Each checker
returns the problems it finds, worded like the validator's messages, so a
test asserts an empty list and a failure says what is wrong.
"""

from __future__ import annotations

import re
from collections import Counter
from email.utils import parsedate_to_datetime

from lxml import etree

ATOM = "{http://www.w3.org/2005/Atom}"
# RFC 3339 section 5.6 date-time (RFC 4287 3.3).
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
# RFC 822 section 5 as RSS 2.0 uses it (four-digit years allowed, as the validator does).
RFC822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d{2}:\d{2}:\d{2} ([+-]\d{4}|GMT|UT|Z)$"
)
MIME = re.compile(r"^[A-Za-z0-9][\w!#$&^.+-]*/[A-Za-z0-9][\w!#$&^.+-]*$")  # RFC 4288 4.2
IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]+$")  # RFC 3987: scheme, no spaces


def atom_problems(body: bytes, served_at: str) -> list[str]:
    root = etree.fromstring(body)
    problems: list[str] = []
    if root.tag != f"{ATOM}feed":
        return [f"root is {root.tag}, not atom:feed"]
    problems += _once(root, ("id", "title", "updated"), "feed")  # 4.1.1
    problems += _links(root, "feed")
    selves = [link.get("href") for link in root.findall(f"{ATOM}link") if link.get("rel") == "self"]
    if selves != [served_at]:  # 4.2.7.2; the validator: "Self reference doesn't match"
        problems.append(f"feed: rel=self is {selves}, the document is served at {served_at}")
    feed_has_author = root.find(f"{ATOM}author") is not None
    for n, entry in enumerate(root.findall(f"{ATOM}entry")):
        where = f"entry {n}"
        problems += _once(entry, ("id", "title", "updated"), where)  # 4.1.2
        problems += _links(entry, where)
        if not feed_has_author and entry.find(f"{ATOM}author") is None:
            problems.append(f"{where}: no author, and the feed has none")  # 4.1.1
        for name in ("updated", "published"):  # 3.3
            for date in entry.findall(f"{ATOM}{name}"):
                if not RFC3339.match(date.text or ""):
                    problems.append(f"{where}: {name} {date.text!r} is not an RFC 3339 date")
        for content in entry.findall(f"{ATOM}content"):  # 4.1.3.1
            kind = content.get("type", "text")
            if kind not in ("text", "html", "xhtml") and not MIME.match(kind):
                problems.append(f"{where}: content type {kind!r}: Not a valid MIME type")
        if entry.find(f"{ATOM}content") is None and not _has_alternate(entry):
            problems.append(f"{where}: no content and no alternate link")  # 4.1.1.1
    for ident in root.iter(f"{ATOM}id"):  # 4.2.6
        if not IRI.match(ident.text or ""):
            problems.append(f"id {ident.text!r} is not an IRI")
    return problems


def _once(parent: etree._Element, names: tuple[str, ...], where: str) -> list[str]:
    return [
        f"{where}: {len(parent.findall(ATOM + n))} atom:{n} elements, must be exactly one"
        for n in names
        if len(parent.findall(ATOM + n)) != 1
    ]


def _has_alternate(parent: etree._Element) -> bool:
    return any(
        link.get("rel", "alternate") == "alternate" for link in parent.findall(f"{ATOM}link")
    )


def _links(parent: etree._Element, where: str) -> list[str]:
    problems: list[str] = []
    links = parent.findall(f"{ATOM}link")
    alternates = Counter(
        (link.get("type"), link.get("hreflang"))
        for link in links
        if link.get("rel", "alternate") == "alternate"
    )
    for key, count in alternates.items():  # 4.1.1 / 4.1.2
        if count > 1:
            problems.append(
                f"{where}: Duplicate alternate links with the same type and hreflang {key}"
            )
    for link in links:  # 4.2.7
        if not IRI.match(link.get("href") or ""):
            problems.append(f"{where}: link href {link.get('href')!r} is not an IRI")
        if link.get("type") is not None and not MIME.match(link.get("type", "")):
            problems.append(f"{where}: link type {link.get('type')!r}: Not a valid MIME type")
        if link.get("length") is not None and not (link.get("length") or "").isdigit():
            problems.append(f"{where}: link length {link.get('length')!r} is not a number")
        if link.get("rel") == "enclosure" and link.get("type") is None:
            problems.append(f"{where}: enclosure without a type")
    return problems


def rss_problems(body: bytes, served_at: str) -> list[str]:
    root = etree.fromstring(body)
    problems: list[str] = []
    if root.tag != "rss" or root.get("version") != "2.0":
        return [f"root is {root.tag} version {root.get('version')}, not rss 2.0"]
    channel = root.find("channel")
    assert channel is not None
    for name in ("title", "link", "description"):  # required channel elements
        if channel.find(name) is None or not (channel.findtext(name) or "").strip():
            problems.append(f"channel: missing {name}")
    selves = [
        link.get("href") for link in channel.findall(f"{ATOM}link") if link.get("rel") == "self"
    ]
    if selves != [served_at]:
        problems.append(f"channel: atom:link rel=self is {selves}, served at {served_at}")
    for name in ("pubDate", "lastBuildDate"):
        problems += _rss_date(channel, name, "channel")
    for n, item in enumerate(channel.findall("item")):
        where = f"item {n}"
        if item.find("title") is None and item.find("description") is None:
            problems.append(f"{where}: needs a title or a description")
        problems += _rss_date(item, "pubDate", where)
        guid = item.find("guid")
        if guid is None:
            problems.append(f"{where}: no guid")
        elif guid.get("isPermaLink", "true") == "true" and not IRI.match(guid.text or ""):
            problems.append(f"{where}: permalink guid {guid.text!r} is not a URL")
        enclosures = item.findall("enclosure")
        if len(enclosures) > 1:
            problems.append(f"{where}: {len(enclosures)} enclosures, RSS allows one")
        for enclosure in enclosures:  # url, length and type are all required
            if not IRI.match(enclosure.get("url") or ""):
                problems.append(f"{where}: enclosure url {enclosure.get('url')!r}")
            if not (enclosure.get("length") or "").isdigit():
                problems.append(f"{where}: enclosure length {enclosure.get('length')!r}")
            if not MIME.match(enclosure.get("type") or ""):
                problems.append(f"{where}: enclosure type {enclosure.get('type')!r}")
    return problems


def _rss_date(parent: etree._Element, name: str, where: str) -> list[str]:
    problems = []
    for date in parent.findall(name):
        text = date.text or ""
        if not RFC822.match(text):
            problems.append(f"{where}: {name} {text!r} is not an RFC 822 date")
        else:
            parsedate_to_datetime(text)  # a real date, not just the right shape
    return problems
