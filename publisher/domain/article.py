"""The article: parsed from JSON or Markdown-with-front-matter, validated, sanitized.

An `Article` is immutable and already safe: its HTML went through the one
sanitizer, its text fields hold no control characters, its times are
timezone-aware. Every problem is reported as an `InputError` naming the
field, so the CLI and the HTTP API can say exactly what to fix.

A time written without a UTC offset is read as wall-clock time in an IANA
zone (the article's `timezone`, else the newsroom's default); a wall-clock
time that a daylight-saving change skips or repeats is refused, never guessed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from publisher.domain import budgets, frontmatter, markdown, validchars
from publisher.domain import html as htmlkit
from publisher.domain.errors import InputError
from publisher.domain.i18n import Phrase
from publisher.domain.text import cut
from publisher.domain.times import load_zone, parse_time

MAX_BODY_CHARS = 1_000_000  # WeChat's article limit is 1 MB; nothing larger can go everywhere
MAX_FILE_BYTES = 4 * MAX_BODY_CHARS
SUMMARY_CHARS = 200  # a summary derived from the body
SUMMARY_LIMIT = 1000  # a summary the editor writes
MAX_TAGS = 30
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
LANGUAGE_PATTERN = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
KNOWN_FIELDS = {
    "id", "url", "title", "body_html", "body_markdown", "summary", "author", "source",
    "tags", "cover_image", "cover_alt", "language", "published_at", "publish_at", "timezone",
    "channels", "overrides",
}  # fmt: skip
#: Mastodon's media description limit, the tightest alt text any channel carries.
ALT_CHARS = 1500
#: The most an override value may hold before its channel's own rule is applied.
OVERRIDE_CHARS = 5000
OVERRIDE_KEY = re.compile(r"^[a-z][a-z_]{0,31}$")
#: Fields added after articles were first stored: left out of the hash while unset,
#: so an article stored before them keeps its hash (re-posting it changes nothing).
_HASHED_ONLY_WHEN_SET: dict[str, Any] = {"cover_alt": None, "overrides": {}}


class Article(BaseModel):
    """A validated article. Build it with `parse_article` or `load_article_file`."""

    model_config = ConfigDict(frozen=True)

    id: str
    url: str
    title: str
    body_html: str
    summary: str
    author: str | None = None
    source: str | None = None
    tags: tuple[str, ...] = ()
    cover_image: str | None = None  # an http(s) URL, or an absolute path to a local file
    #: The cover's alternative text (Mastodon's media description).
    cover_alt: str | None = None
    language: str | None = None
    published_at: datetime | None = None
    publish_at: datetime | None = None
    #: The IANA zone the editor's local times were read in (e.g. "Asia/Shanghai").
    timezone: str | None = None
    channels: tuple[str, ...] | None = None
    #: Copy written by hand for one channel: channel name -> {key: text}. Which keys
    #: a channel takes, and their limits, is the channel type's (`check_overrides`).
    overrides: dict[str, dict[str, str]] = Field(default_factory=dict)

    @property
    def text(self) -> str:
        return htmlkit.to_text(self.body_html)

    @property
    def cover_is_local(self) -> bool:
        cover = self.cover_image or ""
        return bool(cover) and not cover.startswith(("http://", "https://"))

    def content_hash(self) -> str:
        """Identifies the content followers see; scheduling and routing are not content."""
        content = self.model_dump(mode="json", exclude={"publish_at", "timezone", "channels"})
        for name, unset in _HASHED_ONLY_WHEN_SET.items():
            if content.get(name) == unset:
                del content[name]
        blob = json.dumps(content, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Article:
        """Rebuild an article the store wrote; it was validated on the way in."""
        return cls.model_validate(data)


def load_article_file(
    path: Path, *, default_timezone: str | None = None, timezone: str | None = None
) -> Article:
    """Parse a `.json` file or a Markdown file with YAML front matter.

    `timezone` replaces the file's own `timezone` field (the CLI's `--tz`);
    `default_timezone` applies when neither names one.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(
            "file", Phrase("cannot read {path}: {reason}", path=path, reason=exc.strerror)
        ) from None
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(
            "file",
            Phrase("{size:,} bytes; the limit is {limit:,}", size=len(raw), limit=MAX_FILE_BYTES),
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("file", "is not valid UTF-8") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                "file",
                Phrase("invalid JSON at line {line}: {reason}", line=exc.lineno, reason=exc.msg),
            ) from None
    else:
        data = parse_front_matter(text)
    if not isinstance(data, dict):
        raise InputError("file", "must hold an object of article fields")
    if timezone:
        data = {**data, "timezone": timezone}
    return parse_article(data, base_dir=path.parent.resolve(), default_timezone=default_timezone)


def parse_front_matter(text: str) -> dict[str, Any]:
    match = re.match(r"\A\ufeff?---\s*\n(.*?)\n---\s*(?:\n|\Z)(.*)\Z", text, re.S)
    if not match:
        raise InputError("file", "Markdown must start with YAML front matter between --- lines")
    meta = frontmatter.load(match.group(1)) or {}
    if not isinstance(meta, dict):
        raise InputError("front matter", "must be a mapping of article fields")
    if "body_html" in meta or "body_markdown" in meta:
        raise InputError("body_markdown", "the body of a Markdown file goes after the front matter")
    return {**meta, "body_markdown": match.group(2)}


def parse_article(
    data: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
    default_timezone: str | None = None,
) -> Article:
    """Validate raw fields into an `Article`, or raise `InputError` for the first problem.

    `base_dir` is the article file's folder; only then may `cover_image` be a
    relative path, and it must stay inside that folder. `default_timezone`
    (the newsroom's, from settings) reads times without an offset when the
    article names no `timezone` of its own.
    """
    validchars.check_fields(data)  # before anything else reads a string
    unknown = sorted(set(data) - KNOWN_FIELDS)
    if unknown:
        raise InputError(unknown[0], "is not an article field")
    body_html = _body(data)
    summary = _text(data, "summary", required=False, limit=SUMMARY_LIMIT)
    zone_name = _timezone(data.get("timezone"))
    zone = load_zone("timezone", zone_name) if zone_name else None
    if zone is None and default_timezone:
        zone = load_zone("timezone", default_timezone)
    return Article(
        id=_id(data.get("id")),
        url=_url("url", data.get("url"), required=True) or "",
        title=_text(data, "title", required=True, limit=300) or "",
        body_html=body_html,
        summary=summary or _derive_summary(body_html),
        author=_text(data, "author", required=False, limit=200),
        source=_text(data, "source", required=False, limit=200),
        tags=_tags(data.get("tags")),
        cover_image=_cover(data.get("cover_image"), base_dir),
        cover_alt=_text(data, "cover_alt", required=False, limit=ALT_CHARS),
        language=_language(data.get("language")),
        published_at=parse_time("published_at", data.get("published_at"), zone),
        publish_at=parse_time("publish_at", data.get("publish_at"), zone),
        timezone=zone_name,
        channels=_channels(data.get("channels")),
        overrides=parse_overrides(data.get("overrides")),
    )


def _id(value: Any) -> str:
    if value is None or value == "":
        raise InputError("id", "is required")
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise InputError(
            "id", "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def _text(data: Mapping[str, Any], field: str, *, required: bool, limit: int) -> str | None:
    value = data.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InputError(field, "is required")
        return None
    if not isinstance(value, str):
        raise InputError(field, Phrase("must be a string, not {type}", type=type(value).__name__))
    bad = htmlkit.find_control(value.replace("\n", " "))
    if bad is not None:
        raise InputError(
            field, Phrase("contains the control character U+{code:04X}", code=ord(bad))
        )
    value = " ".join(value.split())
    if len(value) > limit:
        raise InputError(
            field,
            Phrase("is {size:,} characters; the limit is {limit:,}", size=len(value), limit=limit),
        )
    return value


def _url(field: str, value: Any, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise InputError(field, "is required")
        return None
    if not isinstance(value, str):
        raise InputError(field, "must be a string")
    value = value.strip(" ")
    bad = htmlkit.find_control(value)
    if bad is not None:
        raise InputError(
            field, Phrase("contains the control character U+{code:04X}", code=ord(bad))
        )
    try:
        parts = urlsplit(value)
        scheme, host = parts.scheme, parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        scheme, host = "", None
    if scheme not in ("http", "https") or not host:
        raise InputError(
            field, Phrase("{value!r} is not an absolute http(s) URL", value=value[:80])
        )
    bad = next((c for c in value if c.isspace() or htmlkit.find_control(c)), None)
    if bad is not None:  # CR, LF, TAB would flow raw into feeds and posts
        raise InputError(
            field,
            Phrase("contains whitespace or a control character (U+{code:04X})", code=ord(bad)),
        )
    if len(value) > 2000:
        raise InputError(field, "is longer than 2,000 characters")
    return value


def _body(data: Mapping[str, Any]) -> str:
    has_html = data.get("body_html") not in (None, "")
    has_markdown = data.get("body_markdown") not in (None, "")
    if has_html and has_markdown:
        raise InputError("body_html", "give body_html or body_markdown, not both")
    field = "body_html" if has_html else "body_markdown"
    value = data.get(field)
    if not has_html and not has_markdown:
        raise InputError("body_html", "is required (or body_markdown)")
    if not isinstance(value, str):
        raise InputError(field, "must be a string")
    if len(value) > MAX_BODY_CHARS:
        raise InputError(
            field,
            Phrase(
                "is {size:,} characters; the limit is {limit:,}",
                size=len(value),
                limit=MAX_BODY_CHARS,
            ),
        )
    if has_html:
        budgets.check_markup(field, value)
        source = value
    else:
        source = markdown.render(field, value)
    clean = htmlkit.sanitize(source)
    if not htmlkit.to_text(clean) and "<img" not in clean:
        raise InputError(field, "has no text left after removing unsafe markup")
    return clean


def _derive_summary(body_html: str) -> str:
    first = htmlkit.to_text(body_html).split("\n\n", 1)[0]
    return cut(first, SUMMARY_CHARS)


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise InputError("tags", "must be a list of strings")
    if len(value) > MAX_TAGS:  # before any work: 20,000 tags used to take seconds
        raise InputError("tags", f"at most {MAX_TAGS} tags")
    tags: dict[str, None] = {}  # insertion-ordered, so de-duplication is linear
    for i, tag in enumerate(value):
        if not isinstance(tag, str) or not tag.strip():
            raise InputError(f"tags[{i}]", "must be a non-empty string")
        tag = " ".join(tag.split()).lstrip("#")
        if htmlkit.find_control(tag) or len(tag) > 50:
            raise InputError(f"tags[{i}]", "must be at most 50 printable characters")
        if tag:
            tags[tag] = None
    return tuple(tags)


def _cover(value: Any, base_dir: Path | None) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InputError("cover_image", "must be a URL or a file path")
    if value.startswith(("http://", "https://")):
        return _url("cover_image", value, required=False)
    if "://" in value:
        raise InputError("cover_image", "only http(s) URLs or relative file paths are accepted")
    if base_dir is None:
        raise InputError(
            "cover_image", "a file path is only accepted in an article file; use a URL"
        )
    path = (base_dir / value).resolve()
    if not path.is_relative_to(base_dir):
        raise InputError("cover_image", "the file must be inside the article's folder")
    if not path.is_file():
        raise InputError(
            "cover_image", Phrase("{path} does not exist next to the article", path=value)
        )
    return str(path)


def _language(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not LANGUAGE_PATTERN.match(value):
        raise InputError(
            "language",
            Phrase("{value!r} is not a language tag such as 'en' or 'zh-CN'", value=value),
        )
    return value


def _timezone(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InputError("timezone", "must be an IANA time zone name such as 'Asia/Shanghai'")
    name = value.strip()
    load_zone("timezone", name)
    return name


def _channels(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InputError("channels", "must be a list of channel names")
    if not value:
        raise InputError("channels", "must name at least one channel")
    return tuple(dict.fromkeys(value))


def parse_overrides(value: Any) -> dict[str, dict[str, str]]:
    """The shape of `overrides`; each channel checks its own keys and limits on publish.

    An empty value is no override (a form's blank field), and line breaks
    are kept: a hand-written microblog text may have paragraphs.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError("overrides", "must map channel names to tables of override keys and texts")
    result: dict[str, dict[str, str]] = {}
    for channel, fields in value.items():
        where = f"overrides.{channel}"
        if not isinstance(channel, str) or not ID_PATTERN.match(channel):
            raise InputError("overrides", f"{str(channel)[:80]!r} is not a channel name")
        if not isinstance(fields, dict):
            raise InputError(where, "must map override keys (text, title, ...) to text")
        kept: dict[str, str] = {}
        for key, text in fields.items():
            if not isinstance(key, str) or not OVERRIDE_KEY.match(key):
                raise InputError(where, f"{str(key)[:40]!r} is not an override key")
            kept_text = _override_text(f"{where}.{key}", text)
            if kept_text:
                kept[key] = kept_text
        if kept:
            result[channel] = kept
    return result


def _override_text(field: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(field, f"must be a string, not {type(value).__name__}")
    value = value.replace("\r\n", "\n")
    bad = htmlkit.find_control(value.replace("\n", " "))
    if bad is not None:
        raise InputError(field, f"contains the control character U+{ord(bad):04X}")
    lines = [" ".join(line.split()) for line in value.split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    if len(text) > OVERRIDE_CHARS:
        raise InputError(field, f"is {len(text):,} characters; the limit is {OVERRIDE_CHARS:,}")
    return text
