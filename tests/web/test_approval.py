"""The approval step at the API: a writer's article waits for an editor, over loopback,
with a real Celery worker (and its sweeper) that must not touch it until approved."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.web.test_api import Api, article, make_api  # noqa: F401 - fixture

CHIEF, WANDA, OLD = "chief-editor-token", "wanda-writer-token", "old-cms-token"
TOKENS = f"chief:{CHIEF}:editor,wanda:{WANDA}:writer,cms:{OLD}"
AS_CHIEF = {"Authorization": f"Bearer {CHIEF}"}
AS_WANDA = {"Authorization": f"Bearer {WANDA}"}
AS_OLD = {"Authorization": f"Bearer {OLD}"}
APPROVAL = {"approval": True}


def states(api: Api, article_id: str) -> dict[str, str]:
    detail = api.get(f"/api/articles/{article_id}").json()
    return {f"{d['channel']}/{d['kind']}": d["state"] for d in detail["deliveries"]}


def log_of(api: Api, article_id: str, channel: str, kind: str = "publish") -> list[dict[str, Any]]:
    detail = api.get(f"/api/articles/{article_id}").json()
    found = [d for d in detail["deliveries"] if (d["channel"], d["kind"]) == (channel, kind)]
    return list(found[0]["log"])


@pytest.mark.timeout(180)
def test_a_writers_article_waits_until_an_editor_approves_then_a_worker_delivers_it(
    make_api: Callable[..., Api],  # noqa: F811
) -> None:
    api = make_api(newsroom=APPROVAL, PUBLISHER_API_TOKENS=TOKENS)
    posted = api.post("/api/articles", json=article("w1"), headers=AS_WANDA)
    assert posted.status_code == 202, posted.text
    assert {d["state"] for d in posted.json()["deliveries"]} == {"awaiting_approval"}
    detail = api.get("/api/articles/api-w1").json()
    assert detail["approval"] == "awaiting" and detail["actor"] == "wanda"

    # The worker and its sweeper run (every 0.5 s) and leave it alone.
    time.sleep(3)
    assert set(states(api, "api-w1").values()) == {"awaiting_approval"}
    assert api.receiver.requests == []
    listed = api.get("/api/deliveries", params={"state": "awaiting_approval"}).json()
    assert listed["total"] == 3
    metrics = api.get("/metrics").text
    assert 'publisher_deliveries{channel="hook",state="awaiting_approval"} 1.0' in metrics

    # The writer may not approve it, nor retry, cancel or retract anything.
    hook_id = next(d["id"] for d in posted.json()["deliveries"] if d["channel"] == "hook")
    for method, path in (
        ("post", "/api/articles/api-w1/approve"),
        ("post", f"/api/deliveries/{hook_id}/retry"),
        ("post", f"/api/deliveries/{hook_id}/cancel"),
        ("post", "/api/deliveries/retry"),
        ("delete", "/api/articles/api-w1"),
    ):
        refused = getattr(api, method)(path, headers=AS_WANDA)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["error"] == {
            "field": "Authorization",
            "problem": "wanda is a writer: only an editor may do this",
        }
    refused = api.post("/api/articles/api-w1/reject", json={"reason": "mine"}, headers=AS_WANDA)
    assert refused.status_code == 403

    approved = api.post("/api/articles/api-w1/approve", json={"version": 1}, headers=AS_CHIEF)
    assert approved.status_code == 200, approved.text
    assert approved.json()["approval"] == "approved"
    settled = api.wait_settled("api-w1")
    assert {d["state"] for d in settled["deliveries"]} == {"delivered"}
    assert [p["id"] for p in api.receiver.posts.values()] == [
        "api-w1"
    ]  # delivered once, by the worker
    log = log_of(api, "api-w1", "hook")
    assert [entry["outcome"] for entry in log] == ["approved", "delivered"]
    assert log[0]["actor"] == "chief" and log[0]["message"] == "by chief"
    when = datetime.fromisoformat(log[0]["started_at"])
    assert abs(datetime.now(UTC) - when) < timedelta(minutes=1)

    # Approving again: nothing awaits.
    again = api.post("/api/articles/api-w1/approve", headers=AS_CHIEF)
    assert again.status_code == 409
    assert again.json()["error"]["problem"] == "api-w1 has no version awaiting approval"

    # The writer corrects the delivered article: the live post stays as it was until
    # an editor approves the correction, then the worker updates it in place.
    fixed = article("w1", title="Story w1, corrected")
    second = api.post("/api/articles", json=fixed, headers=AS_WANDA)
    assert second.status_code == 202 and second.json()["version"] == 2
    detail = api.get("/api/articles/api-w1").json()
    assert detail["approval"] == "awaiting"
    assert {(d["state"], d["article_version"]) for d in detail["deliveries"]} == {("delivered", 1)}
    time.sleep(2)
    assert len(api.receiver.requests) == 1
    stale = api.post("/api/articles/api-w1/approve", json={"version": 1}, headers=AS_CHIEF)
    assert stale.status_code == 409 and stale.json()["error"]["field"] == "version"
    api.post("/api/articles/api-w1/approve", json={"version": 2}, headers=AS_CHIEF)
    settled = api.wait_settled("api-w1")
    assert {(d["state"], d["article_version"]) for d in settled["deliveries"]} == {("delivered", 2)}
    assert [p["title"] for p in api.receiver.posts.values()] == [
        "Story w1",
        "Story w1, corrected",
    ]
    assert [e["outcome"] for e in log_of(api, "api-w1", "hook")][-2:] == ["approved", "delivered"]


@pytest.mark.timeout(120)
def test_approval_keeps_a_schedule_and_rejection_cancels_with_the_reason(
    make_api: Callable[..., Api],  # noqa: F811
) -> None:
    api = make_api(worker=False, newsroom=APPROVAL, PUBLISHER_API_TOKENS=TOKENS)
    at = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    api.post("/api/articles", json=article("s", publish_at=at.isoformat()), headers=AS_WANDA)
    assert set(states(api, "api-s").values()) == {"awaiting_approval"}

    approved = api.post("/api/articles/api-s/approve", headers=AS_OLD)  # no role: an editor
    assert approved.status_code == 200, approved.text
    for d in approved.json()["deliveries"]:
        assert d["state"] == "scheduled"
        assert datetime.fromisoformat(d["publish_at"]) == at  # it keeps its time

    api.post("/api/articles", json=article("r"), headers=AS_WANDA)
    empty = api.post("/api/articles/api-r/reject", json={"reason": "  "}, headers=AS_CHIEF)
    assert empty.status_code == 422 and empty.json()["error"]["field"] == "reason"
    rejected = api.post(
        "/api/articles/api-r/reject",
        json={"reason": "Sources unconfirmed.", "version": 1},
        headers=AS_CHIEF,
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["approval"] == "rejected"
    for d in rejected.json()["deliveries"]:
        assert d["state"] == "cancelled"
        assert d["last_error"] == "rejected by chief: Sources unconfirmed."
        assert d["log"][-1]["outcome"] == "rejected" and d["log"][-1]["actor"] == "chief"
    # A retry would send the rejected version: refused, saying why.
    retry = api.post(f"/api/deliveries/{rejected.json()['deliveries'][0]['id']}/retry",
                     headers=AS_CHIEF)  # fmt: skip
    assert retry.status_code == 409
    assert "which is rejected" in retry.json()["error"]["problem"]


def test_roles_change_nothing_without_approval_and_one_name_cannot_approve_itself(
    make_api: Callable[..., Api],  # noqa: F811
) -> None:
    api = make_api(worker=False, PUBLISHER_API_TOKENS=TOKENS)
    posted = api.post("/api/articles", json=article("off"), headers=AS_WANDA)
    assert {d["state"] for d in posted.json()["deliveries"]} == {"pending"}
    hook = next(d["id"] for d in posted.json()["deliveries"] if d["channel"] == "hook")
    assert api.post(f"/api/deliveries/{hook}/cancel", headers=AS_WANDA).status_code == 200
    assert api.get("/dashboard/api/whoami", headers=AS_WANDA).json()["role"] == "editor"

    # One name with a writer's and an editor's token: what it wrote, it cannot approve.
    both = f"{TOKENS},wanda:wanda-editor-token:editor"
    api = make_api(worker=False, newsroom=APPROVAL, PUBLISHER_API_TOKENS=both)
    assert api.get("/dashboard/api/whoami", headers=AS_WANDA).json() == {
        "name": "wanda",
        "role": "writer",
    }
    api.post("/api/articles", json=article("self"), headers=AS_WANDA)
    own = api.post(
        "/api/articles/api-self/approve",
        headers={"Authorization": "Bearer wanda-editor-token"},
    )
    assert own.status_code == 409
    assert own.json()["error"]["problem"] == (
        "wanda submitted version 1; another editor must approve it"
    )
    # An editor's own article needs nobody's approval.
    posted = api.post("/api/articles", json=article("ed"), headers=AS_CHIEF)
    assert {d["state"] for d in posted.json()["deliveries"]} == {"pending"}
    assert api.get("/api/articles/api-ed").json()["approval"] is None


def test_an_anonymous_reader_does_not_see_an_unapproved_article_and_403_is_translated(
    make_api: Callable[..., Api],  # noqa: F811
) -> None:
    api = make_api(
        worker=False, newsroom=APPROVAL, PUBLISHER_API_TOKENS=TOKENS, PUBLISHER_OPEN_READS=""
    )
    api.post("/api/articles", json=article("zh"), headers=AS_WANDA)
    anonymous = api.get("/api/articles/api-zh").json()
    assert anonymous["article"] is None
    assert {d["state"] for d in anonymous["deliveries"]} == {"awaiting_approval"}
    listed = api.get("/api/articles").json()["items"]
    assert [(i["id"], i["title"]) for i in listed] == [("api-zh", None)]
    assert api.get("/api/articles/api-zh", headers=AS_CHIEF).json()["article"]["title"]
    refused = api.post(
        "/api/articles/api-zh/approve", headers={**AS_WANDA, "Accept-Language": "zh-CN"}
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["problem"] == "wanda 是撰稿人：只有编辑可以这样做"
