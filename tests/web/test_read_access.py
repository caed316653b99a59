"""Reads once tokens are configured: the source converter and preview need a token, an
anonymous reader sees no embargoed content and no attempt log, payloads hold no server
paths, and /docs is served from local assets under the dashboard's CSP."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import requests
from sqlalchemy import update

from publisher.store.models import DeliveryRow
from publisher.web.dashboard import CONTENT_SECURITY_POLICY
from tests.conftest import SAMPLES
from tests.web.test_api import AS_DESK, Api, article, make_api  # noqa: F401 - fixture

SOURCE = "---\nid: md-1\nurl: https://news.example.org/md\ntitle: From Markdown\n---\nBody\n"


def test_the_source_converter_needs_a_token_and_json(make_api: Callable[..., Api]) -> None:  # noqa: F811
    api = make_api(worker=False, PUBLISHER_OPEN_READS="")
    url = api.url + "/dashboard/api/source"
    assert requests.post(url, json={"text": SOURCE}, timeout=10).status_code == 401
    as_text = requests.post(
        url, data=SOURCE.encode(), timeout=10,
        headers={**AS_DESK, "Content-Type": "text/plain; charset=utf-8"},
    )  # fmt: skip
    assert as_text.status_code == 422
    form = requests.post(url, data={"text": SOURCE}, headers=AS_DESK, timeout=10)
    assert form.status_code == 422  # what a cross-site form could send
    ok = requests.post(url, json={"text": SOURCE}, headers=AS_DESK, timeout=10)
    assert ok.status_code == 200 and ok.json()["title"] == "From Markdown"


def test_preview_needs_a_token_unless_reads_are_open(make_api: Callable[..., Api]) -> None:  # noqa: F811
    closed = make_api(worker=False, PUBLISHER_OPEN_READS="")
    assert (
        requests.post(closed.url + "/api/preview", json=article(1), timeout=10).status_code == 401
    )
    assert closed.post("/api/preview", json=article(1)).status_code == 200
    opened = make_api(worker=False, PUBLISHER_OPEN_READS="true")
    assert (
        requests.post(opened.url + "/api/preview", json=article(1), timeout=10).status_code == 200
    )


def test_embargoed_content_and_attempt_logs_need_a_token(make_api: Callable[..., Api]) -> None:  # noqa: F811
    api = make_api(worker=False, PUBLISHER_OPEN_READS="")
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    posted = api.post("/api/articles", json=article("emb", title="Embargoed", publish_at=later))
    assert posted.status_code == 202
    delivery_id = posted.json()["deliveries"][0]["id"]

    anonymous = api.get("/api/articles/api-emb").json()
    assert anonymous["article"] is None
    assert all(d["log"] == [] for d in anonymous["deliveries"])
    assert "Embargoed" not in json.dumps(anonymous)
    listed = api.get("/api/articles").json()["items"]
    assert [(i["title"], i["url"]) for i in listed] == [(None, None)]
    assert api.get(f"/api/deliveries/{delivery_id}").json()["log"] == []
    payload = f"/dashboard/api/deliveries/{delivery_id}/payload"
    assert api.get(payload).status_code == 401

    editor = api.get("/api/articles/api-emb", headers=AS_DESK).json()
    assert editor["article"]["title"] == "Embargoed"
    assert api.get("/api/articles", headers=AS_DESK).json()["items"][0]["title"] == "Embargoed"
    assert api.get(payload, headers=AS_DESK).status_code == 200


def test_wechat_payloads_hold_no_server_path(make_api: Callable[..., Api]) -> None:  # noqa: F811
    cover = SAMPLES / "skills-contest.jpg"
    wx = {"type": "wechat", "base_url": "http://127.0.0.1:9", "appid_env": "WX_APPID_UNSET",
          "secret_env": "WX_SECRET_UNSET", "default_cover": str(cover)}  # fmt: skip
    api = make_api(worker=False, channels={"wx": wx}, PUBLISHER_OPEN_READS="")
    answer = api.post("/api/preview", json=article(2))
    assert answer.status_code == 200, answer.text
    text = answer.text
    assert str(SAMPLES) not in text and "skills-contest.jpg" not in text
    assert answer.json()["wx"]["payload"]["cover_image"] == "channel:default_cover"


def test_docs_come_from_local_assets_under_the_dashboard_csp(make_api: Callable[..., Api]) -> None:  # noqa: F811
    api = make_api(worker=False, PUBLISHER_OPEN_READS="")
    page = api.get("/docs")
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "cdn" not in page.text and "https://" not in page.text
    assert "<script>" not in page.text  # no inline script: the policy would block it
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "init.js"):
        got = api.get(f"/docs/static/{asset}")
        assert got.status_code == 200 and len(got.content) > 100
        assert got.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert api.get("/docs/static/index.html").status_code == 404
    assert api.get("/openapi.json").status_code == 200


def test_the_delivery_list_shows_anonymous_readers_states_not_reasons(
    make_api: Callable[..., Api],  # noqa: F811
) -> None:
    api = make_api(worker=False, PUBLISHER_OPEN_READS="")
    posted = api.post("/api/articles", json=article("why", title="Reasons"))
    delivery_id = posted.json()["deliveries"][0]["id"]
    store = api.stack.runtime.store
    with store.session() as session, session.begin():  # as a failed attempt leaves it
        session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id == delivery_id)
            .values(last_error="download image: could not connect", last_code="E1")
        )
    anonymous = api.get("/api/deliveries").json()["items"]
    assert {(d["last_error"], d["last_code"]) for d in anonymous} == {(None, None)}
    editor = {d["id"]: d for d in api.get("/api/deliveries", headers=AS_DESK).json()["items"]}
    assert editor[delivery_id]["last_error"] == "download image: could not connect"
