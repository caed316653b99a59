"""A stand-in for the Sina Weibo open API, faithful to `statuses/share`.

No emulator of Weibo exists (see the platform reference, §2 and §6), so this
one reproduces what a client must cope with: the 140 字 counter (the same
`weibo_length` our formatter uses), the rule that a share must link to one
of the app's safe domains, the ban on `#话题#`, 20019 for a text the account
already posted (the only duplicate guard Weibo has), the hourly per-user
limit (10023), token errors (21301/21327/21332) and the error shape
`{"request", "error_code", "error"}` with HTTP 400/403. A share may be
form-urlencoded or multipart with a `pic`; the token may come as
`access_token` or as `Authorization: OAuth2 <token>`.

`pic` must be a multipart file part (else 20007), under 5 MB (20006) and a
JPEG/PNG/GIF that really decodes (20005). `user_timeline` pages newest first
with `count`/`page` and the real API's `since_id`/`max_id`;
`/_control/statuses` adds older history (`count`, `age_seconds`);
`api_hourly_limits` gives a path an hourly per-user limit answered with
10024, as the platform does for one API.

Followers see the account at `GET /` (newest first) and one status at
`GET /status/<id>`. Faults come from the shared `sandbox.faults` control
API; `/_control/slow` additionally answers the next posts with 20032
("published, server slow") after storing them, as the platform does.
Everything is kept in memory behind one lock.
"""

from __future__ import annotations

import hashlib
import html
import io
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import regex
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image as PILImage
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from channels.weibo_length import MAX_LENGTH, WEIBO_URL_PATTERN, weibo_length
from sandbox.faults import FaultInjector, control_router, install_fault_middleware

SHARE_PATH = "/2/statuses/share.json"
MAX_PIC_BYTES = 5 * 1024 * 1024
HOUR = 3600.0
DEFAULT_TOKEN = "sandbox-weibo-token"
DEFAULT_SCREEN_NAME = "newsroom"
FIRST_STATUS_ID = 4_990_000_000_000_001  # 16 digits like real ids, below 2**53 for JS clients
FIRST_UID = 5_000_000_001
CHINA = timezone(timedelta(hours=8))
_TOPIC = regex.compile(r"#[^#\n]+#")
_PIC_TYPES = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"GIF8": "image/gif",
}
_BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# code -> (HTTP status, message as Weibo words it, typos included).
ERRORS: dict[int, tuple[int, str]] = {
    10001: (400, "system error!"),
    10002: (400, "service unavailable!"),
    10003: (400, "remote service error"),
    10009: (400, "too many pending tasks, system is busy"),
    10010: (400, "job expired"),
    10011: (400, "RPC error"),
    10014: (403, "Insufficient app permissions"),
    10016: (400, "miss required parameter (status), see doc for more info"),
    10017: (400, "parameter (status)'s value invalid"),
    10018: (400, "request body length over limit"),
    10022: (403, "IP requests out of rate limit!"),
    10023: (403, "User requests out of rate limit!"),
    10024: (403, "User requests for (statuses/share) out of rate limit!"),
    20005: (400, "unsupported image type, only suport JPG, GIF, PNG"),
    20006: (400, "image size too large"),
    20007: (400, "does multipart has image"),
    20008: (400, "content is null!"),
    20012: (400, "Text too long, please input text less than 140 characters!"),
    20016: (400, "Out of limit!"),
    20017: (400, "Repeat content!"),
    20018: (400, "contain illegal website!"),
    20019: (400, "Repeat conetnt!"),
    20020: (400, "Contain advertising!"),
    20021: (400, "Content is illegal!"),
    20032: (400, "Update success, while server slow now, please wait 1-2 minutes"),
    20101: (400, "target weibo does not exist!"),
    20102: (403, "not your own weibo!"),
    21301: (403, "auth faild!"),
    21315: (403, "Token expired"),
    21316: (403, "Token revoked"),
    21317: (403, "Token rejected"),
    21319: (403, "Accessor was revoked"),
    21321: (403, "Applications over the unaudited use restrictions!"),
    21327: (403, "expired_token"),
    21332: (403, "invalid_access_token"),
}


class WeiboError(Exception):
    """A platform error: the handler turns it into Weibo's error shape."""

    def __init__(self, code: int, detail: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


def error_response(code: int, path: str, detail: str | None = None) -> JSONResponse:
    """`{"request", "error_code", "error"}` with the HTTP status Weibo uses for the code."""
    status, message = ERRORS.get(code, (400, "sandbox injected error"))
    body = {"request": path, "error_code": code, "error": detail or message}
    return JSONResponse(body, status_code=status)


def weibo_time(moment: datetime) -> str:
    """Weibo's `created_at`, e.g. "Wed Oct 24 23:49:17 +0800 2012", whatever the locale."""
    local = moment.astimezone(CHINA)
    day, month = _DAYS[local.weekday()], _MONTHS[local.month - 1]
    return f"{day} {month} {local:%d %H:%M:%S} +0800 {local.year}"


def short_link(url: str) -> str:
    """A t.cn-style link, the same for the same URL (as t.cn does)."""
    number = int.from_bytes(hashlib.sha1(url.encode()).digest()[:6], "big")
    code = ""
    for _ in range(7):
        number, digit = divmod(number, 62)
        code += _BASE62[digit]
    return f"http://t.cn/{code}"


@dataclass(frozen=True)
class WeiboUser:
    uid: int
    screen_name: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.uid,
            "idstr": str(self.uid),
            "screen_name": self.screen_name,
            "name": self.screen_name,
            "profile_url": f"u/{self.uid}",
            "verified": True,
        }


@dataclass
class StoredStatus:
    """One status: `submitted` is the text as sent, `text` as Weibo shows it."""

    id: int
    submitted: str
    text: str
    user: WeiboUser
    created_at: datetime
    pic: bytes | None = None
    pic_type: str | None = None

    def to_json(self, base_url: str = "") -> dict[str, Any]:
        data: dict[str, Any] = {
            "created_at": weibo_time(self.created_at),
            "id": self.id,
            "idstr": str(self.id),
            "mid": str(self.id),
            "text": self.text,
            "source": '<a href="https://news.example.org/" rel="nofollow">publisher</a>',
            "favorited": False,
            "truncated": False,
            "pic_urls": [],
            "user": self.user.to_json(),
            "reposts_count": 0,
            "comments_count": 0,
            "attitudes_count": 0,
            "visible": {"type": 0, "list_id": 0},
        }
        if self.pic is not None:
            pic_url = f"{base_url}/pic/{self.id}"
            data.update(thumbnail_pic=pic_url, bmiddle_pic=pic_url, original_pic=pic_url)
            data.update(pic_ids=[str(self.id)], pic_urls=[{"thumbnail_pic": pic_url}])
        return data


@dataclass
class WeiboState:
    """The whole platform: accounts, statuses and counters, behind one lock.

    `repeat_window` is how long an identical text is refused with 20019
    (0 turns the guard off, to show what a double-posting client would do).
    `clock` is injectable so the hourly limit can be tested without waiting.
    """

    safe_domains: tuple[str, ...] = ("news.example.org",)
    tokens: dict[str, str] = field(default_factory=lambda: {DEFAULT_TOKEN: DEFAULT_SCREEN_NAME})
    hourly_limit: int = 30
    #: Requests an hour per user on one API path (e.g. {"/2/statuses/user_timeline.json": 150}):
    #: past it, 10024 "User requests for (...) out of rate limit!".
    api_hourly_limits: dict[str, int] = field(default_factory=dict)
    repeat_window: float = 24 * HOUR
    clock: Callable[[], float] = time.time
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._users: dict[str, WeiboUser] = {}
        for name in self.tokens.values():
            self._users.setdefault(name, WeiboUser(FIRST_UID + len(self._users), name))
        self.reset()

    def reset(self) -> None:
        """Forget every status, counter and expired token; accounts stay."""
        with self.lock:
            self.statuses: dict[int, StoredStatus] = {}
            self.expired: set[str] = set()
            self.links: dict[str, str] = {}
            self.posts = 0
            self.duplicate_posts = 0
            self.slow_posts = 0
            self.rejected: dict[int, int] = {}
            self._recent: dict[int, deque[float]] = {}
            self._api_calls: dict[tuple[int, str], deque[float]] = {}
            self.timeline_pages = 0
            self._next_id = FIRST_STATUS_ID

    # --- accounts -----------------------------------------------------------------

    def user_for(self, token: str | None) -> WeiboUser:
        """The account a token belongs to, or the token error Weibo gives."""
        if not token:
            raise WeiboError(21301)
        with self.lock:
            if token in self.expired:
                raise WeiboError(21327)
            name = self.tokens.get(token)
        if name is None:
            raise WeiboError(21332)
        return self._users[name]

    def expire_token(self, token: str) -> None:
        """From now on the token gets 21327, as after its lifetime (1-90 days)."""
        with self.lock:
            self.expired.add(token)

    # --- statuses -----------------------------------------------------------------

    def share(self, user: WeiboUser, text: str | None, pic: bytes | None = None) -> StoredStatus:
        """Check a share (content, then the hourly limit, then repeats) and store it."""
        pic_type = _check_pic(pic)
        text = _check_text(text, self.safe_domains)
        with self.lock:
            self._check_rate(user)
            now = self.clock()
            earlier = self._same_text(user, text)
            if earlier is not None and now - earlier.created_at.timestamp() < self.repeat_window:
                raise WeiboError(20019)
            status = self._store(user, text, now, pic, pic_type)
            self.posts += 1
            self.duplicate_posts += earlier is not None
            self._recent.setdefault(user.uid, deque()).append(now)
        return status

    def take_slow(self) -> bool:
        """Whether this post should be answered with 20032 (after it is stored)."""
        with self.lock:
            if self.slow_posts <= 0:
                return False
            self.slow_posts -= 1
            return True

    def timeline(
        self, user: WeiboUser, count: int, page: int, since_id: int = 0, max_id: int = 0
    ) -> list[StoredStatus]:
        """The account's statuses, newest first, one page of `count`; like the real API,
        `max_id` keeps ids ≤ it and `since_id` ids > it (ids grow with time)."""
        with self.lock:
            own = [
                s
                for s in self.statuses.values()
                if s.user == user and s.id > since_id and (not max_id or s.id <= max_id)
            ]
        own.reverse()
        return own[(page - 1) * count : page * count]

    def count_call(self, user: WeiboUser, path: str) -> None:
        """One request against the user's hourly limit on `path`; 10024 past it."""
        limit = self.api_hourly_limits.get(path)
        if limit is None:
            return
        with self.lock:
            calls = self._api_calls.setdefault((user.uid, path), deque())
            cutoff = self.clock() - HOUR
            while calls and calls[0] <= cutoff:
                calls.popleft()
            if len(calls) >= limit:
                raise WeiboError(
                    10024, f"User requests for ({path.split('/')[-1]}) out of rate limit!"
                )
            calls.append(self.clock())

    def seed(self, user: WeiboUser, count: int, age: float) -> int:
        """`count` statuses the account posted `age` seconds ago (by hand, other tools):
        the history a reconciliation has to look through."""
        with self.lock:
            when = self.clock() - age
            for _ in range(count):
                number = self._next_id
                self._store(user, f"往期微博 {number} https://news.example.org/{number}", when,
                            None, None)  # fmt: skip
            return len(self.statuses)

    def show(self, status_id: int) -> StoredStatus:
        with self.lock:
            status = self.statuses.get(status_id)
        if status is None:
            raise WeiboError(20101)
        return status

    def destroy(self, user: WeiboUser, status_id: int) -> StoredStatus:
        """Delete one of the account's own statuses (a retraction)."""
        with self.lock:
            status = self.statuses.get(status_id)
            if status is None:
                raise WeiboError(20101)
            if status.user != user:
                raise WeiboError(20102)
            return self.statuses.pop(status_id)

    def newest_first(self) -> list[StoredStatus]:
        with self.lock:
            return list(reversed(self.statuses.values()))

    def original_url(self, link: str) -> str:
        return self.links.get(link, link)

    def note_rejected(self, code: int) -> None:
        with self.lock:
            self.rejected[code] = self.rejected.get(code, 0) + 1

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "timeline_pages": self.timeline_pages,
                "posts": self.posts,
                "duplicate_posts": self.duplicate_posts,
                "live": len(self.statuses),
                "rejected": {str(code): n for code, n in sorted(self.rejected.items())},
            }

    def _check_rate(self, user: WeiboUser) -> None:
        """10023 once the account posted `hourly_limit` times in the last hour."""
        recent = self._recent.setdefault(user.uid, deque())
        cutoff = self.clock() - HOUR
        while recent and recent[0] <= cutoff:
            recent.popleft()
        if len(recent) >= self.hourly_limit:
            raise WeiboError(10023)

    def _same_text(self, user: WeiboUser, text: str) -> StoredStatus | None:
        for status in reversed(self.statuses.values()):
            if status.user == user and status.submitted == text:
                return status
        return None

    def _store(
        self, user: WeiboUser, text: str, now: float, pic: bytes | None, pic_type: str | None
    ) -> StoredStatus:
        shown = WEIBO_URL_PATTERN.sub(lambda m: self._shorten(m.group()), text)
        created = datetime.fromtimestamp(now, UTC)
        status = StoredStatus(self._next_id, text, shown, user, created, pic, pic_type)
        self.statuses[status.id] = status
        self._next_id += 1
        return status

    def _shorten(self, url: str) -> str:
        if url.startswith("http://t.cn/"):
            return url
        link = short_link(url)
        self.links[link] = url
        return link


def _check_text(text: str | None, safe_domains: Iterable[str]) -> str:
    if text is None:
        raise WeiboError(10016)
    if not text.strip():
        raise WeiboError(20008)
    if weibo_length(text) > MAX_LENGTH:
        raise WeiboError(20012)
    if _TOPIC.search(WEIBO_URL_PATTERN.sub(" ", text)):
        raise WeiboError(10017, "parameter (status)'s value invalid: #话题# is not allowed")
    if not any(_is_safe(m.group(), safe_domains) for m in WEIBO_URL_PATTERN.finditer(text)):
        raise WeiboError(10017, "text not find domain!")
    return text


def _is_safe(url: str, safe_domains: Iterable[str]) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return any(host == d or host.endswith("." + d) for d in safe_domains)


def _check_pic(pic: bytes | None) -> str | None:
    """The image's type, or the error for a missing, oversized or unsupported one."""
    if pic is None:
        return None
    if not pic:
        raise WeiboError(20007)
    if len(pic) >= MAX_PIC_BYTES:
        raise WeiboError(20006)
    for magic, kind in _PIC_TYPES.items():
        if pic.startswith(magic):
            _check_decodes(pic)
            return kind
    raise WeiboError(20005)


def _check_decodes(pic: bytes) -> None:
    """The bytes must be the image they claim to be: a truncated or fake file is 20005."""
    try:
        with PILImage.open(io.BytesIO(pic)) as image:
            image.verify()
    except Exception:  # Pillow raises many kinds for broken files
        raise WeiboError(20005, "unsupported image type, only suport JPG, GIF, PNG") from None


# --- HTTP ---------------------------------------------------------------------------


class SlowSpec(BaseModel):
    count: int = Field(default=1, ge=1)


class SeedSpec(BaseModel):
    count: int = Field(default=1, ge=1, le=10_000)
    age_seconds: float = Field(default=0.0, ge=0)


def _token(request: Request, form: dict[str, Any] | None = None) -> str | None:
    """`Authorization: OAuth2 <token>`, else `access_token` in the query or the body."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "oauth2" and value.strip():
        return value.strip()
    token = request.query_params.get("access_token") or (form or {}).get("access_token")
    return str(token) if token else None


async def _form(request: Request) -> tuple[dict[str, Any], bytes | None]:
    """Form fields as strings, plus the bytes of `pic` if one was uploaded."""
    fields: dict[str, Any] = {}
    pic: bytes | None = None
    async with request.form() as form:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key == "pic":
                    pic = await value.read()
            elif key == "pic":  # not a file part: "does multipart has image"
                raise WeiboError(20007)
            else:
                fields.setdefault(key, value)
    return fields, pic


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise WeiboError(10017, f"parameter ({name})'s value invalid") from None
    return min(high, max(low, value))


def _id_param(raw: Any) -> int:
    if raw is None or raw == "":
        raise WeiboError(10016, "miss required parameter (id), see doc for more info")
    try:
        return int(str(raw))
    except ValueError:
        raise WeiboError(10017, "parameter (id)'s value invalid") from None


def _linked(text: str, state: WeiboState) -> str:
    """Status text as HTML, each short link pointing where it leads."""
    parts, last = [], 0
    for match in WEIBO_URL_PATTERN.finditer(text):
        parts.append(html.escape(text[last : match.start()]))
        target = html.escape(state.original_url(match.group()), quote=True)
        parts.append(f'<a href="{target}">{html.escape(match.group())}</a>')
        last = match.end()
    parts.append(html.escape(text[last:]))
    return "".join(parts)


def _status_html(status: StoredStatus, state: WeiboState) -> str:
    pic = f'<img src="/pic/{status.id}" alt="">' if status.pic is not None else ""
    return (
        f'<article class="status" id="s{status.id}">'
        f"<header><b>{html.escape(status.user.screen_name)}</b> "
        f'<a href="/status/{status.id}"><time>{weibo_time(status.created_at)}</time></a></header>'
        f"<p>{_linked(status.text, state)}</p>{pic}</article>"
    )


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        '<!doctype html><html lang="zh-CN"><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><body>{body}</body></html>",
        status_code=status_code,
    )


def create_app(
    *,
    safe_domains: tuple[str, ...] = ("news.example.org",),
    tokens: dict[str, str] | None = None,
    hourly_limit: int = 30,
    repeat_window: float = 24 * HOUR,
    clock: Callable[[], float] = time.time,
    api_hourly_limits: dict[str, int] | None = None,
) -> FastAPI:
    """The sandbox app; `app.state.weibo` is its `WeiboState`.

    `tokens` maps access token -> screen name (two tokens of one name are
    one account, as after a re-authorisation); by default `DEFAULT_TOKEN`
    posts as `newsroom`.
    """
    state = WeiboState(
        safe_domains=tuple(d.lower() for d in safe_domains),
        tokens=dict(tokens) if tokens is not None else {DEFAULT_TOKEN: DEFAULT_SCREEN_NAME},
        hourly_limit=hourly_limit,
        api_hourly_limits=dict(api_hourly_limits or {}),
        repeat_window=repeat_window,
        clock=clock,
    )
    injector = FaultInjector()
    app = FastAPI(title="Weibo sandbox", docs_url=None, redoc_url=None)
    app.state.weibo = state
    app.state.faults = injector
    install_fault_middleware(app, injector, lambda code, path: error_response(code, path))
    app.include_router(control_router(injector, state.stats, state.reset))

    @app.exception_handler(WeiboError)
    async def weibo_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WeiboError)
        state.note_rejected(exc.code)
        return error_response(exc.code, request.url.path, exc.detail)

    @app.post("/_control/slow", tags=["control"])
    def slow(spec: SlowSpec) -> dict[str, Any]:
        """The next `count` shares are stored but answered with 20032."""
        with state.lock:
            state.slow_posts += spec.count
        return {"slow_posts": state.slow_posts}

    @app.post(SHARE_PATH)
    async def share(request: Request) -> Response:
        fields, pic = await _form(request)
        user = state.user_for(_token(request, fields))
        state.count_call(user, SHARE_PATH)
        status = state.share(user, fields.get("status"), pic)
        if state.take_slow():
            raise WeiboError(20032)
        return JSONResponse(status.to_json(str(request.base_url).rstrip("/")))

    @app.post("/_control/statuses", tags=["control"])
    def seed(spec: SeedSpec) -> dict[str, Any]:
        """The default account posted `count` statuses `age_seconds` ago."""
        user = state.user_for(next(iter(state.tokens)))
        return {"statuses": state.seed(user, spec.count, spec.age_seconds)}

    @app.get("/2/statuses/user_timeline.json")
    def user_timeline(request: Request) -> dict[str, Any]:
        user = state.user_for(_token(request))
        state.count_call(user, request.url.path)
        count = _int_param(request, "count", 20, 1, 100)
        page = _int_param(request, "page", 1, 1, 10_000)
        since_id = _int_param(request, "since_id", 0, 0, 2**62)
        max_id = _int_param(request, "max_id", 0, 0, 2**62)
        statuses = state.timeline(user, count, page, since_id, max_id)
        with state.lock:
            state.timeline_pages += 1
        base = str(request.base_url).rstrip("/")
        return {
            "statuses": [s.to_json(base) for s in statuses],
            "hasvisible": False,
            "previous_cursor": 0,
            "next_cursor": 0,
            "total_number": len(state.timeline(user, 10**9, 1)),
        }

    @app.get("/2/statuses/show.json")
    def show(request: Request) -> dict[str, Any]:
        state.user_for(_token(request))
        status = state.show(_id_param(request.query_params.get("id")))
        return status.to_json(str(request.base_url).rstrip("/"))

    @app.post("/2/statuses/destroy.json")
    async def destroy(request: Request) -> dict[str, Any]:
        fields, _ = await _form(request)
        user = state.user_for(_token(request, fields))
        status = state.destroy(user, _id_param(fields.get("id")))
        return status.to_json(str(request.base_url).rstrip("/"))

    @app.get("/", response_class=HTMLResponse)
    def timeline_page() -> HTMLResponse:
        statuses = state.newest_first()
        items = "".join(_status_html(s, state) for s in statuses) or "<p>No posts yet.</p>"
        return _page("Weibo sandbox", f"<h1>Weibo sandbox</h1>{items}")

    @app.get("/status/{status_id}", response_class=HTMLResponse)
    def status_page(status_id: int) -> Response:
        try:
            status = state.show(status_id)
        except WeiboError:
            return _page("Not found", "<p>This post does not exist or was deleted.</p>", 404)
        return _page(status.user.screen_name, _status_html(status, state))

    @app.get("/pic/{status_id}")
    def picture(status_id: int) -> Response:
        try:
            status = state.show(status_id)
        except WeiboError:
            return Response(status_code=404)
        if status.pic is None:
            return Response(status_code=404)
        return Response(status.pic, media_type=status.pic_type)

    return app
