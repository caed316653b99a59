"""The WeChat sandbox checked by a client we did not write: wechatpy 2.0.0a26.

wechatpy hard-codes `https://api.weixin.qq.com`, so `SandboxClient` points
its API base and token URL at the sandbox; everything else (JSON encoding,
multipart uploads, errcode handling, its refresh-and-retry on 40001) is
wechatpy's own. Token semantics wechatpy does not use (`stable_token`) are
checked with plain HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from sandbox.server import BackgroundServer
from sandbox.wechat import DEFAULT_SECRET, create_app
from tests.conftest import SAMPLES

pytestmark = pytest.mark.timeout(60)

APPID = "wx-sandbox"
JPEG = (SAMPLES / "skills-contest.jpg").read_bytes()
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 256
GIF = b"GIF89a" + b"\x00" * 64
SOURCE = "https://news.example.org/2026/11/20/skills-contest.html"


class SandboxClient(WeChatClient):
    """wechatpy's official-account client, pointed at the sandbox instead of Tencent."""

    def __init__(self, base_url: str, secret: str = DEFAULT_SECRET, **kwargs: Any) -> None:
        super().__init__(APPID, secret, **kwargs)
        self.API_BASE_URL = f"{base_url}/cgi-bin/"
        self.token_url = f"{base_url}/cgi-bin/token"

    def fetch_access_token(self) -> dict[str, Any]:
        params = {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret}
        result: dict[str, Any] = self._fetch_access_token(url=self.token_url, params=params)
        return result


@pytest.fixture(scope="module")
def sandbox() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(publish_delay=0.2)) as server:
        yield server


@pytest.fixture
def base(sandbox: BackgroundServer) -> str:
    requests.post(f"{sandbox.url}/_control/reset", timeout=5).raise_for_status()
    return sandbox.url


@pytest.fixture
def client(base: str) -> SandboxClient:
    return SandboxClient(base, timeout=5)


def stats(base: str) -> dict[str, int]:
    answer: dict[str, int] = requests.get(f"{base}/_control/stats", timeout=5).json()
    return answer


def fault(base: str, **spec: Any) -> None:
    requests.post(f"{base}/_control/faults", json=spec, timeout=5).raise_for_status()


def cover(client: SandboxClient) -> str:
    media_id: str = client.material.add("image", ("cover.jpg", JPEG, "image/jpeg"))["media_id"]
    return media_id


def article(thumb: str, **fields: Any) -> dict[str, Any]:
    return {
        "title": "全国数字技能大赛决赛开幕",
        "author": "本报记者",
        "digest": "三百余名职工同台竞技",
        "content": "<p>11月20日，全国职工数字应用技术技能大赛决赛开幕。</p>",
        "content_source_url": SOURCE,
        "thumb_media_id": thumb,
        **fields,
    }


def publish(client: SandboxClient, media_id: str) -> dict[str, Any]:
    """Submit and poll like a caller must: the job finishes asynchronously."""
    publish_id = client.freepublish.submit(media_id)["publish_id"]
    first: dict[str, Any] = client.freepublish.get(publish_id)
    assert first["publish_status"] == 1
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status: dict[str, Any] = client.freepublish.get(publish_id)
        if status["publish_status"] != 1:
            return status
        time.sleep(0.05)
    raise AssertionError("publish job never finished")


def test_draft_publish_and_follower_pages(client: SandboxClient, base: str) -> None:
    material = client.material.add("image", ("cover.jpg", JPEG, "image/jpeg"))
    assert requests.get(material["url"], timeout=5).content == JPEG
    inline_url = client.media.upload_image(("inline.png", PNG, "image/png"))
    assert inline_url.startswith(base) and requests.get(inline_url, timeout=5).content == PNG
    content = (
        f'<p style="color:red" class="x" onclick="steal()">正文<img src="{inline_url}"></p>'
        '<img src="https://elsewhere.example/tracker.png"><script>alert(1)</script>'
    )
    media_id = client.draft.add([article(material["media_id"], content=content)])["media_id"]

    stored = client.draft.get(media_id)["news_item"][0]
    assert stored["title"] == "全国数字技能大赛决赛开幕" and stored["content_source_url"] == SOURCE
    assert stored["content"] == f'<p style="color:red">正文<img src="{inline_url}"></p>'
    assert client.draft.count()["total_count"] == 1
    listed = client.draft.batchget(0, 20, no_content=1)
    assert listed["item"][0]["media_id"] == media_id
    assert "content" not in listed["item"][0]["content"]["news_item"][0]

    done = publish(client, media_id)
    assert done["publish_status"] == 0 and done["fail_idx"] == []
    article_id = done["article_id"]
    url = done["article_detail"]["item"][0]["article_url"]
    assert client.draft.count()["total_count"] == 0  # the draft left the draft box
    page = requests.get(url, timeout=5)
    assert page.status_code == 200 and "全国数字技能大赛决赛开幕" in page.text
    assert (
        inline_url in page.text and "tracker.png" not in page.text and "<script>" not in page.text
    )
    assert url in requests.get(f"{base}/", timeout=5).text

    assert client.freepublish.getarticle(article_id)["news_item"][0]["url"] == url
    assert client.freepublish.batchget(0, 20)["item"][0]["article_id"] == article_id
    assert stats(base) | {"token_fetches": 0} == stats(base) | {
        "drafts": 0,
        "published": 1,
        "duplicate_posts": 0,
        "mass_sends": 0,
        "token_fetches": 0,
        "external_images_received": 1,
        "scripts_received": 1,
    }

    client.freepublish.delete(article_id)
    assert client.freepublish.batchget(0, 20)["total_count"] == 0
    assert client.freepublish.getarticle(article_id)["news_item"][0]["is_deleted"] is True
    assert requests.get(url, timeout=5).status_code == 404


LONG = "字" * 33
REJECTIONS = [
    ({"title": LONG}, 45003),
    ({"title": ""}, 47003),
    ({"author": "作" * 17}, 45110),
    ({"digest": "摘" * 129}, 45004),
    ({"content": "<p>" + "x" * 20_000 + "</p>"}, 45002),
    ({"content_source_url": "https://news.example.org/" + "a" * 1024}, 45005),
    ({"thumb_media_id": "not-a-permanent-media-id"}, 40007),
]


@pytest.mark.parametrize(("fields", "code"), REJECTIONS, ids=[str(code) for _, code in REJECTIONS])
def test_draft_limits(client: SandboxClient, base: str, fields: dict[str, Any], code: int) -> None:
    with pytest.raises(WeChatClientException) as caught:
        client.draft.add([article(cover(client), **fields)])
    assert caught.value.errcode == code
    assert stats(base)["drafts"] == 0


def test_limits_count_characters_not_bytes(client: SandboxClient) -> None:
    fields = {"title": "字" * 32, "author": "作" * 16, "digest": "摘" * 128}
    media_id = client.draft.add([article(cover(client), **fields)])["media_id"]
    assert client.draft.get(media_id)["news_item"][0]["title"] == "字" * 32


def test_temporary_thumb_is_not_a_permanent_media_id(client: SandboxClient) -> None:
    uploaded = client.media.upload_image(("inline.jpg", JPEG, "image/jpeg"))
    with pytest.raises(WeChatClientException) as caught:
        client.draft.add([article(uploaded)])
    assert caught.value.errcode == 40007


@pytest.mark.parametrize(
    ("kind", "name", "data", "code"),
    [
        ("uploadimg", "anim.gif", GIF, 40005),
        ("uploadimg", "big.jpg", JPEG + b"\x00" * 1024 * 1024, 40009),
        ("uploadimg", "renamed.jpg", b"<html>", 40005),
        ("thumb", "cover.png", PNG, 40005),
        ("thumb", "cover.jpg", JPEG + b"\x00" * 64 * 1024, 40009),
        ("image", "cover.webp", PNG, 40005),
    ],
)
def test_upload_limits(client: SandboxClient, kind: str, name: str, data: bytes, code: int) -> None:
    with pytest.raises(WeChatClientException) as caught:
        if kind == "uploadimg":
            client.media.upload_image((name, data))
        else:
            client.material.add(kind, (name, data))
    assert caught.value.errcode == code


def test_drafts_can_be_listed_updated_and_deleted(client: SandboxClient) -> None:
    thumb = cover(client)
    ids = [client.draft.add([article(thumb, title=f"第{i}篇")])["media_id"] for i in range(3)]
    listed = client.draft.batchget(0, 2)
    assert listed["total_count"] == 3 and listed["item_count"] == 2
    client.draft.update(ids[0], 0, article(thumb, title="改过的标题"))
    assert client.draft.get(ids[0])["news_item"][0]["title"] == "改过的标题"
    client.draft.delete(ids[1])
    with pytest.raises(WeChatClientException) as caught:
        client.draft.get(ids[1])
    assert caught.value.errcode == 40007


def test_failed_publish_job_keeps_the_draft(client: SandboxClient, base: str) -> None:
    fault(base, path="job:freepublish", mode="error", code=4)
    media_id = client.draft.add([article(cover(client))])["media_id"]
    done = publish(client, media_id)
    assert (done["publish_status"], done["fail_idx"]) == (4, [1])
    assert "article_id" not in done
    assert client.draft.get(media_id)["news_item"]


def test_second_copies_are_counted(client: SandboxClient, base: str) -> None:
    thumb = cover(client)
    first = client.draft.add([article(thumb)])["media_id"]
    client.draft.add([article(thumb)])  # the same article again: a duplicate
    assert stats(base)["duplicate_posts"] == 1
    one = client.freepublish.submit(first)["publish_id"]
    two = client.freepublish.submit(first)["publish_id"]  # the same draft published twice
    time.sleep(0.3)
    assert client.freepublish.get(one)["publish_status"] == 0
    assert client.freepublish.get(two)["publish_status"] == 0
    assert stats(base)["duplicate_posts"] == 2


def test_mass_send_deduplicates_clientmsgid(client: SandboxClient, base: str) -> None:
    media_id = client.draft.add([article(cover(client))])["media_id"]
    publish(client, media_id)
    sent = client.message.send_mass_article(media_id, is_to_all=True, client_msg_id="delivery-7")
    assert sent["errcode"] == 0 and sent["msg_id"]
    with pytest.raises(WeChatClientException) as caught:
        client.message.send_mass_article(media_id, is_to_all=True, client_msg_id="delivery-7")
    assert caught.value.errcode == 45065
    assert caught.value.response.json()["msg_id"] == sent["msg_id"]
    with pytest.raises(WeChatClientException) as caught:
        client.message.send_mass_article(media_id, is_to_all=True, client_msg_id="x" * 65)
    assert caught.value.errcode == 45067
    with pytest.raises(WeChatClientException) as caught:
        client.message.send_mass_article("unknown-media", is_to_all=True)
    assert caught.value.errcode == 40007
    assert stats(base)["mass_sends"] == 1 and stats(base)["duplicate_posts"] == 0


def test_mass_send_of_a_draft_publishes_it(client: SandboxClient, base: str) -> None:
    media_id = client.draft.add([article(cover(client))])["media_id"]
    client.message.send_mass_article(media_id, is_to_all=True)
    assert stats(base) | {"token_fetches": 0} == stats(base) | {
        "drafts": 0, "published": 1, "mass_sends": 1, "token_fetches": 0
    }  # fmt: skip


@pytest.mark.parametrize(("quota", "rate", "code"), [(1, 60, 45028), (100, 1, 45011)])
def test_mass_send_quota_and_rate(quota: int, rate: int, code: int) -> None:
    app = create_app(mass_quota_per_day=quota, mass_rate_per_minute=rate)
    with BackgroundServer(app) as server:
        client = SandboxClient(server.url, timeout=5)
        media_id = client.draft.add([article(cover(client))])["media_id"]
        client.message.send_mass_article(media_id, is_to_all=True, client_msg_id="a")
        with pytest.raises(WeChatClientException) as caught:
            client.message.send_mass_article(media_id, is_to_all=True, client_msg_id="b")
        assert caught.value.errcode == code


def test_wechatpy_refreshes_a_rejected_token_and_retries(base: str) -> None:
    client = SandboxClient(base, access_token="not-a-token", timeout=5)
    assert client.draft.count() == {"total_count": 0}
    assert stats(base)["token_fetches"] == 1


def test_wrong_secret_is_reported(base: str) -> None:
    client = SandboxClient(base, secret="wrong", timeout=5)
    with pytest.raises(WeChatClientException) as caught:
        client.draft.count()
    assert caught.value.errcode == 40125


def test_injected_platform_error(client: SandboxClient, base: str) -> None:
    fault(base, path="/cgi-bin/draft/batchget", mode="error", code=-1)
    with pytest.raises(WeChatClientException) as caught:
        client.draft.batchget(0, 20)
    assert caught.value.errcode == -1
    assert client.draft.batchget(0, 20)["total_count"] == 0  # one fault, consumed


def test_unicode_escapes_are_stored_literally(client: SandboxClient, base: str) -> None:
    """The draft API wants raw UTF-8; an ASCII-escaped body shows up garbled, as on WeChat."""
    token = client.access_token
    body = {"articles": [article(cover(client), title="标题", author="")]}
    escaped = requests.post(
        f"{base}/cgi-bin/draft/add", params={"access_token": token}, json=body, timeout=5
    ).json()  # requests' json= escapes non-ASCII
    stored = client.draft.get(escaped["media_id"])["news_item"][0]
    assert stored["title"] == "\\u6807\\u9898"
    assert (
        client.draft.get(client.draft.add(body["articles"])["media_id"])["news_item"][0]["title"]
        == "标题"
    )


# ---- tokens, with plain HTTP ---------------------------------------------------------------


def stable_token(base: str, force: bool = False, secret: str = DEFAULT_SECRET) -> dict[str, Any]:
    body = {"grant_type": "client_credential", "appid": APPID, "secret": secret}
    answer: dict[str, Any] = requests.post(
        f"{base}/cgi-bin/stable_token", json={**body, "force_refresh": force}, timeout=5
    ).json()
    return answer


def draft_count(base: str, token: str | None) -> dict[str, Any]:
    params = {"access_token": token} if token else {}
    answer: dict[str, Any] = requests.get(
        f"{base}/cgi-bin/draft/count", params=params, timeout=5
    ).json()
    return answer


def test_stable_token_is_stable_until_forced(base: str) -> None:
    first = stable_token(base)
    again = stable_token(base)
    assert again["access_token"] == first["access_token"]
    assert again["expires_in"] <= first["expires_in"] <= 7200
    forced = stable_token(base, force=True)
    assert forced["access_token"] != first["access_token"]
    assert draft_count(base, first["access_token"]) == {"total_count": 0}  # inside the overlap


def test_short_lived_tokens_expire_and_rotate() -> None:
    # Windows of a second or more: each check has that much room however slowly a
    # loaded machine runs it, and each sleep only errs towards "later".
    app = create_app(token_lifetime=3.0, token_overlap=1.0, force_refresh_interval=0)
    with BackgroundServer(app) as server:
        base = server.url
        issued = stable_token(base)
        first = issued["access_token"]
        time.sleep(0.1)
        assert stable_token(base)["expires_in"] <= issued["expires_in"] - 0.1  # what is left
        rotated = stable_token(base, force=True)["access_token"]
        assert draft_count(base, first) == {"total_count": 0}
        time.sleep(1.1)
        assert draft_count(base, first)["errcode"] == 40001  # past the overlap
        assert draft_count(base, rotated) == {"total_count": 0}
        time.sleep(1.0)  # rotated has < 1 s left: normal mode issues the next token
        successor = stable_token(base)["access_token"]
        assert successor != rotated
        time.sleep(1.0)
        assert draft_count(base, rotated)["errcode"] == 40001  # expired
        assert draft_count(base, successor) == {"total_count": 0}


def test_classic_token_ends_older_tokens_after_the_overlap() -> None:
    with BackgroundServer(create_app(token_overlap=1.0)) as server:
        old = SandboxClient(server.url).fetch_access_token()["access_token"]
        new = SandboxClient(server.url).fetch_access_token()["access_token"]
        assert draft_count(server.url, old) == {"total_count": 0}
        time.sleep(1.05)
        assert draft_count(server.url, old)["errcode"] == 40001
        assert draft_count(server.url, new) == {"total_count": 0}


@pytest.mark.parametrize(
    ("token", "body", "code"),
    [(None, b"{}", 41001), ("bogus", b"{}", 40001), ("valid", b"{not json", 47001)],
)
def test_request_errors(base: str, token: str | None, body: bytes, code: int) -> None:
    if token == "valid":
        token = stable_token(base)["access_token"]
    params = {"access_token": token} if token else {}
    response = requests.post(f"{base}/cgi-bin/draft/get", params=params, data=body, timeout=5)
    assert response.status_code == 200 and response.json()["errcode"] == code
    assert " rid: " in response.json()["errmsg"]


def test_credentials_are_checked(base: str) -> None:
    assert stable_token(base, secret="wrong")["errcode"] == 40125
