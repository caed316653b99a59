"""The editors' dashboard: one page over the JSON API.

`dashboard_router(...)` serves `GET /`, a static page with its script and
stylesheet, and the three reads the public API does not offer: the channel
matrix (the grid's columns), a delivery's stored payload (what was or will be
sent), and Markdown-with-front-matter turned into article fields. Everything
else the page does goes through the public API (`/api/...`), with the bearer
token the editor pastes into the page; the token lives in the tab's
sessionStorage and is never part of any HTML served here.

The page holds no data of its own: the script renders whatever the API
returns as text nodes, never as markup, so a hostile title stays a title.
Article HTML (previews, stored payloads) is shown only inside a sandboxed
iframe, where it cannot run scripts. None of these routes are in the OpenAPI
schema: they are the page's plumbing, not an API to build on.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path as FilePath
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from channels.base import Channel
from channels.feed import FeedChannel
from publisher.domain.article import parse_front_matter
from publisher.domain.errors import InputError
from publisher.domain.i18n import Phrase, available_locales, match_locale, negotiate, translator
from publisher.domain.states import CANCELLABLE, RETRIABLE, SETTLED, WORDS, Kind, Role, State
from publisher.store.models import DeliveryRow
from publisher.web.auth import Author, Editor, bearer, editor
from publisher.web.context import CurrentRuntime
from publisher.web.errors import ApiError
from publisher.web.params import DeliveryId

HERE = FilePath(__file__).parent
STATIC = HERE / "static"
PAGE = HERE / "templates" / "dashboard.html"
ASSET_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

#: The page loads only its own script and stylesheet and talks only to this
#: origin. Images may come from anywhere on the web because article previews
#: show the article's own images; inline styles are allowed for the sandboxed
#: preview frames, which inherit this policy.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: https: http:",
        "media-src 'self'",  # a delivered voice episode, from our own /media/
        "connect-src 'self'",
        "frame-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class OverrideField(BaseModel):
    """One override the publish form offers for a channel (`Channel.override_rules`)."""

    key: str
    limit: int | None = None
    unit: str
    choices: list[str] = []


class ChannelColumn(BaseModel):
    name: str
    type: str
    overrides: list[OverrideField] = []


class DashboardConfig(BaseModel):
    """What the page needs before it can draw the grid."""

    title: str
    channels: list[ChannelColumn] = Field(description="the grid's columns, in matrix order")
    states: list[State]
    settled: list[State]
    retriable: list[State] = Field(description="states an editor's retry may restart")
    cancellable: list[State]
    read_requires_token: bool
    approval: bool = Field(False, description="`[newsroom] approval`: writers' articles wait")


class Who(BaseModel):
    name: str = Field(description="the name of the token presented")
    role: Role = Field(
        Role.EDITOR, description="writer: may publish (it waits for approval), not approve"
    )


class StoredPayload(BaseModel):
    delivery_id: int
    channel: str
    channel_type: str
    article_version: int
    payload: dict[str, Any] | None = Field(description="formatted once, at publishing")
    audio_url: str | None = Field(
        default=None, description="a delivered voice episode's MP3, as /media/<id>, to play"
    )


class SourceIn(BaseModel):
    """`POST /dashboard/api/source`: the text of a Markdown article file."""

    model_config = ConfigDict(extra="forbid")

    text: str


def payload_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """A stored payload is the article's content: a token once tokens are configured
    (it may be embargoed), unless reads are open on purpose (`PUBLISHER_OPEN_READS`)."""
    settings = request.app.state.runtime.settings
    if settings.read_requires_token or (settings.api_tokens and not settings.open_reads):
        editor(request, credentials)


class Asset:
    """A static file, read once; its hash is its ETag and its URL's cache-buster."""

    def __init__(self, path: FilePath) -> None:
        self.body = path.read_bytes()
        self.content_type = ASSET_TYPES[path.suffix]
        version = hashlib.sha256(self.body).hexdigest()[:20]
        self.etag = f'"{version}"'
        self.url = f"/dashboard/static/{path.name}?v={version}"

    def response(self, request: Request) -> Response:
        headers = {
            "ETag": self.etag,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == self.etag:
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.content_type, headers=headers)


def load_assets() -> dict[str, Asset]:
    return {p.name: Asset(p) for p in sorted(STATIC.iterdir()) if p.suffix in ASSET_TYPES}


@cache
def script_messages() -> tuple[str, ...]:
    """Every message the script says (its `t("...")` calls), and the words for states,
    kinds and outcomes it shows: what the page hands the script, and nothing more."""
    from babel.messages.extract import extract_javascript

    with (STATIC / "dashboard.js").open("rb") as script:
        calls = list(extract_javascript(script, {"t": None}, [], {}))
    # A call with more arguments than its message gives a tuple: the message first.
    found: list[object] = [m[0] if isinstance(m, tuple) else m for _n, _f, m, _c in calls]
    said = [m for m in found if isinstance(m, str)]
    return tuple(dict.fromkeys([*WORDS, *said]))


def language_names() -> list[tuple[str, str]]:
    """(tag, the language's own name) for the picker: "English", "中文 (中国)"."""
    from babel import Locale

    names = []
    for locale in available_locales():
        name = Locale.parse(locale).get_display_name(locale) or locale
        names.append((locale.replace("_", "-"), name[:1].upper() + name[1:]))
    return names


def render_page(assets: dict[str, Asset], locale: str, zone: str | None) -> str:
    """The page in one language. It interpolates the asset URLs, the language's words
    and the newsroom's zone, never data or a token; Jinja escapes every one."""
    words = translator(locale)
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PAGE.parent),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
    )
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        words.catalogue.gettext, words.catalogue.ngettext, newstyle=True
    )
    return environment.get_template(PAGE.name).render(
        script=assets["dashboard.js"].url,
        stylesheet=assets["dashboard.css"].url,
        lang=words.tag,
        languages=language_names(),
        i18n={
            "locale": words.tag,
            "zone": zone,
            "messages": {m: words.gettext(m) for m in script_messages()},
        },
    )


def article_fields_from_markdown(source: str) -> dict[str, Any]:
    """The fields of a Markdown article file (YAML front matter, then the body), as
    JSON for `POST /api/articles`. YAML dates become ISO strings; the API judges them."""
    try:
        fields = parse_front_matter(source)
    except InputError as exc:
        raise InputError("source", exc.problem) from None
    try:
        encoded = jsonable_encoder(fields)
    except (TypeError, ValueError):
        raise InputError("source", "front matter holds values JSON cannot carry") from None
    if not isinstance(encoded, dict):
        raise InputError("source", "must hold a mapping of article fields")
    return encoded


def episode_url(channel: Channel | None, row: DeliveryRow) -> str | None:
    """Where the page plays a delivered episode: this server's own /media/ path (the
    public URL may name another host, and the page loads media from itself only)."""
    if not (isinstance(channel, FeedChannel) and channel.speaks):
        return None
    if row.state != State.DELIVERED or row.kind != Kind.PUBLISH:
        return None
    ref = channel.item_audio(row.payload)
    return f"/{ref}" if ref else None


def dashboard_router(*, read_requires_token: bool) -> APIRouter:
    """`GET /` and the dashboard's own routes, for `create_app` to include.

    The page and its assets are read once, here; handlers reach the runtime
    through `CurrentRuntime`, like the API's.
    """
    reads = [Depends(editor)] if read_requires_token else []
    assets = load_assets()
    router = APIRouter(include_in_schema=False)

    @cache
    def page(locale: str, zone: str | None) -> str:
        return render_page(assets, locale, zone)

    @router.get("/", response_class=HTMLResponse)
    def index(request: Request, runtime: CurrentRuntime, lang: str | None = None) -> HTMLResponse:
        """The page in the language the editor picked (`?lang=`, kept in the tab by
        the script), else the browser's `Accept-Language`, else the newsroom's."""
        settings = runtime.settings
        locale = match_locale(lang) or negotiate(
            request.headers.get("accept-language"), settings.locale
        )
        headers = {**PAGE_HEADERS, "Content-Language": locale.replace("_", "-")}
        headers["Vary"] = "Accept-Language"
        return HTMLResponse(page(locale, settings.timezone), headers=headers)

    @router.get("/dashboard/static/{name}")
    def asset(
        request: Request, name: Annotated[str, Path(pattern=r"^[a-z-]+\.(js|css)$")]
    ) -> Response:
        found = assets.get(name)
        if found is None:
            raise ApiError(404, "name", Phrase("there is no dashboard file {name!r}", name=name))
        return found.response(request)

    @router.get("/dashboard/api/config", dependencies=reads)
    def config(runtime: CurrentRuntime) -> DashboardConfig:
        settings = runtime.settings
        return DashboardConfig(
            title=settings.feeds.title,
            channels=[
                ChannelColumn(
                    name=name,
                    type=channel.type_name,
                    overrides=[
                        OverrideField(
                            key=r.key, limit=r.limit, unit=r.unit, choices=list(r.choices)
                        )
                        for r in channel.override_rules
                    ],
                )
                for name, channel in runtime.channels.items()
            ],
            states=list(State),
            settled=sorted(SETTLED),
            retriable=sorted(RETRIABLE),
            cancellable=sorted(CANCELLABLE),
            read_requires_token=settings.read_requires_token,
            approval=settings.approval,
        )

    @router.get("/dashboard/api/whoami")
    def whoami(who: Author) -> Who:
        """Lets the page check a pasted token before the editor relies on it."""
        return Who(name=who.name, role=who.role)

    @router.get(
        "/dashboard/api/deliveries/{delivery_id}/payload",
        dependencies=[Depends(payload_reader)],
    )
    def payload(delivery_id: DeliveryId, runtime: CurrentRuntime) -> StoredPayload:
        row = runtime.store.delivery(delivery_id)
        return StoredPayload(
            delivery_id=row.id,
            channel=row.channel,
            channel_type=row.channel_type,
            article_version=row.article_version,
            payload=row.payload,
            audio_url=episode_url(runtime.channels.get(row.channel), row),
        )

    @router.post("/dashboard/api/source")
    def source(body: SourceIn, actor: Editor) -> dict[str, Any]:
        """Markdown with front matter → article fields. Nothing is stored.

        A token and a JSON body: with neither, any page an editor visits could
        make the server parse YAML and Markdown for it (a form cannot send JSON
        cross-origin without a preflight, and the token lives in the tab)."""
        return article_fields_from_markdown(body.text)

    return router
