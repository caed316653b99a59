"""The WeChat sandbox over HTTP: the platform's endpoints, follower pages, control API."""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile

from sandbox.faults import FaultInjector, control_router, install_fault_middleware
from sandbox.wechat.platform import (
    DEFAULT_SECRET,
    ERRMSG,
    PUBLISH_FAULT_PATH,
    UNICODE_ESCAPE,
    WechatApiError,
    beijing_date,
    error_body,
    keep_escape_literal,
)
from sandbox.wechat.state import WechatState


def create_app(
    *,
    appid: str = "wx-sandbox",
    secret: str = DEFAULT_SECRET,
    token_lifetime: float = 7200.0,
    token_overlap: float | None = None,
    publish_delay: float = 0.3,
    mass_quota_per_day: int = 100,
    mass_rate_per_minute: int = 60,
    force_refresh_interval: float = 30.0,
    force_refresh_per_day: int = 20,
    daily_quota: dict[str, int] | None = None,
) -> FastAPI:
    """The sandbox app. `token_overlap` defaults to the platform's 300 s, scaled down
    (lifetime / 24) for short test lifetimes. The real mass quota of a subscription
    account is 1 a day; the default is generous so demos can push every article.
    `daily_quota` caps calls a day per API path (`/cgi-bin/...`): past it, 45009."""
    state = WechatState(
        appid=appid,
        secret=secret,
        token_lifetime=token_lifetime,
        token_overlap=token_overlap,
        publish_delay=publish_delay,
        mass_quota_per_day=mass_quota_per_day,
        mass_rate_per_minute=mass_rate_per_minute,
        force_refresh_interval=force_refresh_interval,
        force_refresh_per_day=force_refresh_per_day,
        daily_quota=daily_quota,
    )
    injector = FaultInjector()
    app = FastAPI(title="WeChat Official Account sandbox", docs_url="/_docs")
    app.state.wechat = state
    install_fault_middleware(app, injector, _injected_error)
    app.include_router(control_router(injector, state.stats, state.reset))
    _install_error_handler(app)
    _auth_routes(app, state)
    _media_routes(app, state)
    _draft_routes(app, state)
    _publish_routes(app, state, injector)
    _mass_routes(app, state)
    _follower_routes(app, state)
    _quota_routes(app, state)
    return app


# ---- HTTP layer ---------------------------------------------------------------------------


def _injected_error(code: int, path: str) -> Response:
    return JSONResponse(error_body(code, ERRMSG.get(code, "system error")))


def _install_error_handler(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WechatApiError)
        return JSONResponse(error_body(exc.code, exc.errmsg, **exc.extra))

    app.add_exception_handler(WechatApiError, handle)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _authorize(request: Request, state: WechatState) -> None:
    state.check_token(request.query_params.get("access_token"))
    state.count_call(request.url.path)


async def _json(request: Request, *, raw_utf8: bool = False) -> dict[str, Any]:
    """The JSON object body, or 47001. With `raw_utf8`, `\\uXXXX` escapes of
    non-ASCII characters are kept literally, as the draft API does."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
        literal = UNICODE_ESCAPE.sub(keep_escape_literal, text) if raw_utf8 else text
        data = json.loads(literal)
    except (UnicodeDecodeError, ValueError):
        raise WechatApiError(47001) from None
    if not isinstance(data, dict):
        raise WechatApiError(47001)
    if literal != text:
        state: WechatState = request.app.state.wechat
        with state.lock:
            state.counters.escaped_unicode_bodies += 1
    return data


async def _authed_json(request: Request, state: WechatState, **kw: bool) -> dict[str, Any]:
    _authorize(request, state)
    return await _json(request, **kw)


def _auth_routes(app: FastAPI, state: WechatState) -> None:
    @app.post("/cgi-bin/stable_token")
    async def stable_token(request: Request) -> Response:
        body = await _json(request)
        state.check_credentials(body.get("grant_type"), body.get("appid"), body.get("secret"))
        force = body.get("force_refresh", False)
        if not isinstance(force, bool):
            raise WechatApiError(47003, "force_refresh must be a boolean")
        return JSONResponse(state.stable_token(force))

    @app.get("/cgi-bin/token")
    async def token(request: Request) -> Response:
        query = request.query_params
        state.check_credentials(query.get("grant_type"), query.get("appid"), query.get("secret"))
        return JSONResponse(state.classic_token())


def _media_routes(app: FastAPI, state: WechatState) -> None:
    async def upload(request: Request) -> tuple[str, bytes]:
        _authorize(request, state)
        form = await request.form()
        media = form.get("media")
        if not isinstance(media, UploadFile):
            raise WechatApiError(41005)
        return media.filename or "", await media.read()

    @app.post("/cgi-bin/material/add_material")
    async def add_material(request: Request) -> Response:
        kind = request.query_params.get("type", "")
        filename, data = await upload(request)
        material = state.add_file(kind, filename, data, _base(request), permanent=True)
        answer: dict[str, Any] = {"media_id": material.media_id}
        if material.url:
            answer["url"] = material.url
        return JSONResponse(answer)

    @app.post("/cgi-bin/media/uploadimg")
    async def uploadimg(request: Request) -> Response:
        filename, data = await upload(request)
        material = state.add_file("uploadimg", filename, data, _base(request), permanent=False)
        return JSONResponse({"url": material.url})

    @app.get("/mmbiz/{name}")
    async def image(name: str) -> Response:
        material = state.files.get(name)
        if material is None:
            return Response(status_code=404)
        return Response(material.data, media_type=material.content_type)


def _draft_routes(app: FastAPI, state: WechatState) -> None:
    @app.post("/cgi-bin/draft/add")
    async def add(request: Request) -> Response:
        body = await _authed_json(request, state, raw_utf8=True)
        return JSONResponse(state.add_draft(body.get("articles"), _base(request)))

    @app.post("/cgi-bin/draft/update")
    async def update(request: Request) -> Response:
        body = await _authed_json(request, state, raw_utf8=True)
        state.update_draft(
            body.get("media_id"), body.get("index"), body.get("articles"), _base(request)
        )
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    @app.post("/cgi-bin/draft/get")
    async def get(request: Request) -> Response:
        body = await _authed_json(request, state)
        return JSONResponse(state.get_draft(body.get("media_id")))

    @app.post("/cgi-bin/draft/delete")
    async def delete(request: Request) -> Response:
        body = await _authed_json(request, state)
        state.delete_draft(body.get("media_id"))
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    @app.post("/cgi-bin/draft/batchget")
    async def batchget(request: Request) -> Response:
        body = await _authed_json(request, state)
        answer = state.batch_drafts(body.get("offset"), body.get("count"), body.get("no_content"))
        return JSONResponse(answer)

    @app.get("/cgi-bin/draft/count")
    async def count(request: Request) -> Response:
        _authorize(request, state)
        return JSONResponse(state.count_drafts())


def _publish_routes(app: FastAPI, state: WechatState, injector: FaultInjector) -> None:
    @app.post("/cgi-bin/freepublish/submit")
    async def submit(request: Request) -> Response:
        body = await _authed_json(request, state)
        fault = injector.take(PUBLISH_FAULT_PATH)
        outcome = fault.code if fault is not None and fault.code in (2, 3, 4) else 0
        return JSONResponse(state.submit(body.get("media_id"), outcome))

    @app.post("/cgi-bin/freepublish/get")
    async def get(request: Request) -> Response:
        body = await _authed_json(request, state)
        return JSONResponse(state.publish_status(body.get("publish_id"), _base(request)))

    @app.post("/cgi-bin/freepublish/getarticle")
    async def getarticle(request: Request) -> Response:
        body = await _authed_json(request, state)
        return JSONResponse(state.get_article(body.get("article_id")))

    @app.post("/cgi-bin/freepublish/batchget")
    async def batchget(request: Request) -> Response:
        body = await _authed_json(request, state)
        answer = state.batch_published(
            body.get("offset"), body.get("count"), body.get("no_content")
        )
        return JSONResponse(answer)

    @app.post("/cgi-bin/freepublish/delete")
    async def delete(request: Request) -> Response:
        body = await _authed_json(request, state)
        state.delete_published(body.get("article_id"), body.get("index"))
        return JSONResponse({"errcode": 0, "errmsg": "ok"})


def _mass_routes(app: FastAPI, state: WechatState) -> None:
    @app.post("/cgi-bin/message/mass/sendall")
    async def sendall(request: Request) -> Response:
        body = await _authed_json(request, state)
        return JSONResponse(state.mass_send(body, _base(request)))

    @app.post("/cgi-bin/message/mass/get")
    async def mass_get(request: Request) -> Response:
        body = await _authed_json(request, state)
        return JSONResponse({"msg_id": body.get("msg_id"), "msg_status": "SEND_SUCCESS"})


def _follower_routes(app: FastAPI, state: WechatState) -> None:
    @app.get("/", response_class=HTMLResponse)
    async def home() -> str:
        rows = [
            f'<li><a href="{html.escape(a["url"])}">{html.escape(a["title"])}</a>'
            f" <small>{html.escape(a['author'])} · {beijing_date(p.update_time)}</small>"
            f"<p>{html.escape(a['digest'])}</p></li>"
            for p, _i, a in state.live_articles()
        ]
        items = "".join(rows) or "<li>Nothing published yet.</li>"
        return _page_html("公众号 · sandbox", f"<h1>公众号 · sandbox</h1><ul>{items}</ul>")

    @app.get("/s/{article_id}/{index}", response_class=HTMLResponse)
    async def article(article_id: str, index: int) -> Response:
        for p, i, a in state.live_articles():
            if p.article_id == article_id and i == index:
                return HTMLResponse(_article_html(a, beijing_date(p.update_time)))
        return HTMLResponse(_page_html("Not found", "<p>此内容已被删除</p>"), status_code=404)

    @app.get("/preview/{media_id}/{index}", response_class=HTMLResponse)
    async def preview(media_id: str, index: int) -> Response:
        draft = state.drafts.get(media_id)
        if draft is None or not 1 <= index <= len(draft.articles):
            return HTMLResponse(_page_html("Expired", "<p>预览链接已过期</p>"), status_code=404)
        return HTMLResponse(_article_html(draft.articles[index - 1], "draft preview"))

    @app.get("/_control/received")
    async def received() -> list[dict[str, Any]]:
        """Articles exactly as clients posted them to draft/add, before any cleaning."""
        with state.lock:
            return list(state.received)


def _quota_routes(app: FastAPI, state: WechatState) -> None:
    @app.post("/cgi-bin/openapi/quota/get")
    async def quota(request: Request) -> Response:
        body = await _authed_json(request, state)
        return JSONResponse(state.quota(body.get("cgi_path")))

    @app.post("/cgi-bin/clear_quota")
    async def clear_quota(request: Request) -> Response:
        body = await _authed_json(request, state)
        if body.get("appid") != state.appid:
            raise WechatApiError(40013)
        state.clear_quota()
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    @app.post("/_control/published", tags=["control"])
    async def seed(request: Request) -> dict[str, Any]:
        """Add `count` articles published `age_seconds` ago by someone else."""
        body = await _json(request)
        count, age = body.get("count", 1), body.get("age_seconds", 0)
        if not isinstance(count, int) or not 1 <= count <= 10_000:
            raise WechatApiError(47003, "count")
        if not isinstance(age, int | float) or age < 0:
            raise WechatApiError(47003, "age_seconds")
        return {"published": state.seed_published(count, float(age), _base(request))}


def _article_html(article: dict[str, Any], when: str) -> str:
    source = article["content_source_url"]
    original = (
        f'<p class="original"><a href="{html.escape(source)}">阅读原文</a></p>' if source else ""
    )
    cover = f'<img class="cover" src="{html.escape(article["thumb_url"])}" alt="">'
    body = (
        f"<article><h1>{html.escape(article['title'])}</h1>"
        f"<p class='meta'>{html.escape(article['author'])} · {when}</p>"
        f"{cover if article['thumb_url'] else ''}"
        f"<div class='content'>{article['content']}</div>{original}</article>"
    )
    return _page_html(article["title"], body)


def _page_html(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{max-width:40em;margin:auto;"
        "font-family:sans-serif;padding:1em}} img{{max-width:100%}}</style></head>"
        f"<body>{body}</body></html>"
    )
