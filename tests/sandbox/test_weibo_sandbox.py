"""The Weibo sandbox, checked by a client nobody here wrote: sinaweibopy3.

sinaweibopy3 (`import weibo`) is Liao Xuefeng's SDK: it posts form-encoded
or hand-built multipart bodies with `access_token` as a parameter, raises
`APIError` from Weibo's error JSON, and only needs its `api_url` pointed
at the sandbox. What it reads back (`id`, `text`, `user`, error codes) is
what real clients rely on. Plain `requests` covers what the SDK cannot
send: the `Authorization: OAuth2` header and a request with no token.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import weibo as sdk  # sinaweibopy3

from channels.weibo_length import weibo_length
from sandbox.server import BackgroundServer
from sandbox.weibo import DEFAULT_TOKEN, WeiboState, create_app, short_link
from tests.conftest import SAMPLES

TEXT = (
    "【技能大赛开幕】三百余名职工同台竞技 https://news.example.org/2026/11/20/skills-contest.html"
)
WEIBO_TIME = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d \+0800 \d{4}$"
)


@dataclass
class Clock:
    """A settable clock for the hourly limit."""

    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Sandbox:
    server: BackgroundServer
    state: WeiboState

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, token: str = DEFAULT_TOKEN) -> Any:
        """An SDK client aimed at the sandbox: its `api_url` is the only host it uses."""
        client = sdk.APIClient(app_key="1234567", app_secret="app-secret", redirect_uri=self.url)
        client.api_url = f"{self.url}/2/"
        client.set_access_token(token, time.time() + 3600)
        return client

    def stats(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.url}/_control/stats", timeout=5).json())

    def fault(self, **spec: Any) -> None:
        requests.post(f"{self.url}/_control/faults", json=spec, timeout=5).raise_for_status()


def start(**options: Any) -> Iterator[Sandbox]:
    app = create_app(**options)
    with BackgroundServer(app) as server:
        yield Sandbox(server, app.state.weibo)


@pytest.fixture(scope="module")
def shared() -> Iterator[Sandbox]:
    yield from start()


@pytest.fixture
def sandbox(shared: Sandbox) -> Sandbox:
    requests.post(f"{shared.url}/_control/reset", timeout=5).raise_for_status()
    return shared


def api_error(call: Any, **kwargs: Any) -> sdk.APIError:
    with pytest.raises(sdk.APIError) as caught:
        call(**kwargs)
    return caught.value


# -- posting and reading back ------------------------------------------------------


def test_share_returns_a_status_object_with_the_link_shortened(sandbox: Sandbox) -> None:
    status = sandbox.client().statuses.share.post(status=TEXT)

    assert isinstance(status.id, int) and status.idstr == str(status.id) == status.mid
    assert status.text == TEXT.replace(
        "https://news.example.org/2026/11/20/skills-contest.html",
        short_link("https://news.example.org/2026/11/20/skills-contest.html"),
    )
    assert status.text.split()[-1].startswith("http://t.cn/")
    assert WEIBO_TIME.match(status.created_at)
    assert status.user.screen_name == "newsroom" and status.user.idstr == str(status.user.id)
    assert (status.reposts_count, status.comments_count, status.attitudes_count) == (0, 0, 0)
    assert status.visible == {"type": 0, "list_id": 0}
    assert sandbox.stats()["posts"] == 1


def test_timeline_and_show_read_back_what_was_posted_newest_first(sandbox: Sandbox) -> None:
    client = sandbox.client()
    first = client.statuses.share.post(status=TEXT)
    second = client.statuses.share.post(status="第二条 " + TEXT)

    timeline = client.statuses.user_timeline.get(count="10")
    shown = client.statuses.show.get(id=first.idstr)

    assert [s.id for s in timeline.statuses] == [second.id, first.id]
    assert timeline.total_number == 2
    assert shown.id == first.id and shown.text == first.text


def test_timeline_pages(sandbox: Sandbox) -> None:
    client = sandbox.client()
    ids = [client.statuses.share.post(status=f"第{n}条 {TEXT}").id for n in range(3)]

    page_two = client.statuses.user_timeline.get(count="2", page="2")

    assert [s.id for s in page_two.statuses] == [ids[0]]


def test_share_with_a_picture_in_multipart(sandbox: Sandbox) -> None:
    image = SAMPLES / "skills-contest.jpg"
    with image.open("rb") as pic:
        status = sandbox.client().statuses.share.post(status=TEXT, pic=pic)

    served = requests.get(status.original_pic, timeout=5)

    assert served.status_code == 200
    assert served.headers["content-type"] == "image/jpeg"
    assert served.content == image.read_bytes()
    assert status.pic_ids == [status.idstr]


def test_destroy_removes_the_status_and_frees_its_text(sandbox: Sandbox) -> None:
    client = sandbox.client()
    status = client.statuses.share.post(status=TEXT)

    destroyed = client.statuses.destroy.post(id=status.idstr)

    assert destroyed.id == status.id
    assert api_error(client.statuses.show.get, id=status.idstr).error_code == 20101
    assert api_error(client.statuses.destroy.post, id=status.idstr).error_code == 20101
    assert client.statuses.share.post(status=TEXT).id != status.id  # not a repeat any more


def test_another_account_cannot_destroy_a_status() -> None:
    for sandbox in start(tokens={"tok-a": "alice", "tok-b": "bob"}):
        status = sandbox.client("tok-a").statuses.share.post(status=TEXT)

        error = api_error(sandbox.client("tok-b").statuses.destroy.post, id=status.idstr)

        assert error.error_code == 20102


# -- what Weibo refuses ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        pytest.param("字" * 131 + " https://news.example.org/a", 20012, id="141 字"),
        pytest.param("没有链接的微博", 10017, id="no link"),
        pytest.param("看这里 https://elsewhere.example.com/a", 10017, id="not a safe domain"),
        pytest.param("#数字技能# 大赛开幕 https://news.example.org/a", 10017, id="topic"),
        pytest.param("   ", 20008, id="blank"),
    ],
)
def test_refusals_carry_the_platform_code(sandbox: Sandbox, text: str, code: int) -> None:
    error = api_error(sandbox.client().statuses.share.post, status=text)

    assert error.error_code == code
    assert error.request == "/2/statuses/share.json"
    assert sandbox.stats()["posts"] == 0


def test_exactly_140_字_is_accepted(sandbox: Sandbox) -> None:
    text = "字" * 129 + " https://news.example.org/a"  # 129 + ½ + 10 → 140
    assert weibo_length(text) == 140

    assert sandbox.client().statuses.share.post(status=text).id


def test_a_subdomain_of_a_safe_domain_is_safe_and_a_single_hash_is_no_topic(
    sandbox: Sandbox,
) -> None:
    text = "C# 入门 https://m.news.example.org/a#section"

    assert sandbox.client().statuses.share.post(status=text).id


def test_the_same_text_twice_is_a_repeat(sandbox: Sandbox) -> None:
    client = sandbox.client()
    client.statuses.share.post(status=TEXT)

    error = api_error(client.statuses.share.post, status=TEXT)

    assert (error.error_code, error.error) == (20019, "Repeat conetnt!")
    assert sandbox.stats() | {"rejected": None} == {
        "timeline_pages": 0,
        "posts": 1,
        "duplicate_posts": 0,
        "live": 1,
        "rejected": None,
    }


def test_duplicate_posts_counts_what_gets_through_without_the_guard() -> None:
    for sandbox in start(repeat_window=0):
        client = sandbox.client()
        client.statuses.share.post(status=TEXT)
        client.statuses.share.post(status=TEXT)

        assert sandbox.stats()["duplicate_posts"] == 1


@pytest.mark.parametrize(("token", "code"), [("not-a-token", 21332), ("expired-token", 21327)])
def test_token_errors(token: str, code: int) -> None:
    tokens = {DEFAULT_TOKEN: "newsroom", "expired-token": "newsroom"}
    for sandbox in start(tokens=tokens):
        sandbox.state.expire_token("expired-token")

        error = api_error(sandbox.client(token).statuses.share.post, status=TEXT)

        assert error.error_code == code


def test_the_hourly_limit_per_account() -> None:
    clock = Clock()
    for sandbox in start(hourly_limit=2, clock=clock):
        client = sandbox.client()
        client.statuses.share.post(status="一 " + TEXT)
        clock.now += 1800
        client.statuses.share.post(status="二 " + TEXT)

        assert api_error(client.statuses.share.post, status="三 " + TEXT).error_code == 10023
        clock.now += 1800  # the first post leaves the window
        assert client.statuses.share.post(status="三 " + TEXT).id


# -- the shape of errors and the token header (plain requests) ------------------------


def test_error_shape_and_status_without_a_token(sandbox: Sandbox) -> None:
    response = requests.post(
        f"{sandbox.url}/2/statuses/share.json", data={"status": TEXT}, timeout=5
    )

    assert response.status_code == 403
    assert response.json() == {
        "request": "/2/statuses/share.json",
        "error_code": 21301,
        "error": "auth faild!",
    }


def test_token_in_the_authorization_header(sandbox: Sandbox) -> None:
    response = requests.post(
        f"{sandbox.url}/2/statuses/share.json",
        data={"status": TEXT},
        headers={"Authorization": f"OAuth2 {DEFAULT_TOKEN}"},
        timeout=5,
    )

    assert response.status_code == 200
    assert response.json()["user"]["screen_name"] == "newsroom"


def test_content_errors_are_http_400(sandbox: Sandbox) -> None:
    response = requests.post(
        f"{sandbox.url}/2/statuses/share.json",
        data={"status": "没有链接", "access_token": DEFAULT_TOKEN},
        timeout=5,
    )

    assert response.status_code == 400
    assert response.json()["error"] == "text not find domain!"


# -- follower view -------------------------------------------------------------------


def test_followers_see_the_timeline_newest_first_and_each_status(sandbox: Sandbox) -> None:
    client = sandbox.client()
    old = client.statuses.share.post(status="旧闻 " + TEXT)
    new = client.statuses.share.post(status="新闻 <b>粗</b> " + TEXT)

    page = requests.get(f"{sandbox.url}/", timeout=5).text
    one = requests.get(f"{sandbox.url}/status/{old.idstr}", timeout=5)

    assert page.index("新闻") < page.index("旧闻")
    assert "&lt;b&gt;粗&lt;/b&gt;" in page  # escaped, never markup
    assert 'href="https://news.example.org/2026/11/20/skills-contest.html"' in page
    assert one.status_code == 200 and "旧闻" in one.text and "新闻" not in one.text
    client.statuses.destroy.post(id=new.idstr)
    assert requests.get(f"{sandbox.url}/status/{new.idstr}", timeout=5).status_code == 404


# -- faults and control --------------------------------------------------------------


def test_an_injected_error_reaches_the_sdk_once(sandbox: Sandbox) -> None:
    sandbox.fault(path="/2/statuses/share.json", mode="error", code=10023)
    client = sandbox.client()

    assert api_error(client.statuses.share.post, status=TEXT).error_code == 10023
    assert client.statuses.share.post(status=TEXT).id


def test_an_injected_http_error(sandbox: Sandbox) -> None:
    sandbox.fault(path="/2/statuses/share.json", mode="http", status=502)

    with pytest.raises(Exception) as caught:  # urllib's HTTPError: no Weibo error body
        sandbox.client().statuses.share.post(status=TEXT)

    assert getattr(caught.value, "code", None) == 502


def test_slow_posts_are_stored_and_answered_20032(sandbox: Sandbox) -> None:
    requests.post(f"{sandbox.url}/_control/slow", json={"count": 1}, timeout=5).raise_for_status()
    client = sandbox.client()

    assert api_error(client.statuses.share.post, status=TEXT).error_code == 20032
    assert client.statuses.user_timeline.get().statuses[0].text.startswith("【技能大赛开幕】")


def test_reset_forgets_statuses_and_faults(sandbox: Sandbox) -> None:
    client = sandbox.client()
    client.statuses.share.post(status=TEXT)
    sandbox.fault(path="/2/statuses/share.json", mode="error", code=10001)

    requests.post(f"{sandbox.url}/_control/reset", timeout=5).raise_for_status()

    assert sandbox.stats()["posts"] == 0
    assert client.statuses.share.post(status=TEXT).id


# -- thread safety -------------------------------------------------------------------


def test_concurrent_posts_of_one_text_store_it_once(sandbox: Sandbox) -> None:
    barrier = threading.Barrier(6)

    def post(_: int) -> int:
        barrier.wait()
        response = requests.post(
            f"{sandbox.url}/2/statuses/share.json",
            data={"status": TEXT, "access_token": DEFAULT_TOKEN},
            timeout=5,
        )
        return int(response.json().get("error_code", 0))

    with ThreadPoolExecutor(max_workers=6) as pool:
        codes = sorted(pool.map(post, range(6)))

    assert codes == [0, 20019, 20019, 20019, 20019, 20019]
    assert sandbox.stats()["posts"] == 1 and sandbox.stats()["duplicate_posts"] == 0
