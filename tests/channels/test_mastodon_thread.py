"""Mastodon threads (`thread = true`): the split as a table, then real HTTP to mastodon-mock.

The split is pure; the thread is posted, resumed, corrected and measured
against mastodon-mock (a stateful Mastodon API server on loopback), read
back with Mastodon.py. The kill-a-real-worker case is in
tests/e2e/test_thread_e2e.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from mastodon import Mastodon, MastodonNotFoundError
from mastodon_mock.testing.server import MockServer

from channels.base import POSTS_KEY, SendAttempt, remote_posts
from channels.mastodon import InstanceLimits, MastodonChannel, _cache_id
from channels.mastodon_length import mastodon_length
from channels.mastodon_thread import split
from publisher.domain.article import Article, parse_article
from publisher.domain.text import pack, sentences
from tests.channels.conftest import MASTODON_TOKEN
from tests.channels.contract import ChannelFactory, attempt
from tests.conftest import SAMPLES

TOKEN = MASTODON_TOKEN
TOKEN_ENV = "PUBLISHER_TEST_MASTODON_TOKEN"
NUMBER = re.compile(r" (\d+)/(\d+)$")

ENGLISH = [
    f"Sentence {i} of the report describes the skills contest, its {i} finalists and "
    "what the judges looked for."
    for i in range(1, 15)
]
CHINESE = [
    "全国职工数字应用技术技能大赛决赛今天开幕。",
    "来自各地的三百余名职工将同台竞技！",
    "比赛分为人工智能训练、数据分析和工业互联网运维三个赛项，",
    "每个赛项都设有理论考试和实际操作两个环节；",
    "谁能拔得头筹？",
    "结果将在下周公布…",
] * 12


def long_article(n: int = 1, *, paragraphs: list[str] | None = None, **fields: Any) -> Article:
    """About 1,500 characters of body (14 sentences in two paragraphs), or `paragraphs`."""
    paras = paragraphs or [" ".join(ENGLISH[:7]), " ".join(ENGLISH[7:])]
    return parse_article(
        {
            "id": f"thread-{n}",
            "url": f"https://news.example.org/thread-{n}.html",
            "title": f"Skills contest opens, story {n}",
            "body_html": "".join(f"<p>{p}</p>" for p in paras),
            "tags": ["skills", "contest"],
            **fields,
        },
        base_dir=SAMPLES,  # a cover may be one of the samples
    )


def numbered(parts: list[str]) -> list[str]:
    """Each part's text without its number, checking the numbers run 1..N of N."""
    bare = []
    for index, part in enumerate(parts, 1):
        match = NUMBER.search(part)
        assert match and match.groups() == (str(index), str(len(parts))), part
        bare.append(part[: match.start()])
    return bare


# --- the split -------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    name: str
    text: str
    limit: int
    parts: int  # how many parts
    sentences: list[str]  # each must arrive whole, in exactly one part


SPLITS = [
    Row("fits: one status, no number", "Title\n\nShort body.", 500, 1, ["Short body."]),
    Row("English at sentence ends", "\n\n".join(["Title", " ".join(ENGLISH)]), 500, 4, ENGLISH),
    Row("Chinese at 。！？…", "".join(CHINESE), 500, 3, list(dict.fromkeys(CHINESE))[:2]),
    Row("ten parts and more: the number's width counts", " ".join(ENGLISH), 150, 14, ENGLISH),
]


@pytest.mark.parametrize("row", SPLITS, ids=lambda row: row.name)
def test_split(row: Row) -> None:
    parts = split(row.text, InstanceLimits(max_characters=row.limit))
    assert len(parts) == row.parts
    assert all(mastodon_length(p) <= row.limit for p in parts), [mastodon_length(p) for p in parts]
    bare = numbered(parts) if row.parts > 1 else parts
    for sentence in row.sentences:  # never split inside a sentence that fits a part
        assert sum(sentence in b for b in bare) >= 1, sentence
    assert "".join(bare).replace(" ", "").replace("\n", "") == row.text.replace(" ", "").replace(
        "\n", ""
    )


def test_a_sentence_longer_than_a_part_splits_at_a_clause_and_keeps_the_mark() -> None:
    text = "，".join(["数字技能大赛决赛今天开幕了"] * 12) + "。"
    chunks = pack([text], 60)
    assert len(chunks) > 1 and all(len(c) <= 60 for c in chunks)
    assert all(c.endswith("，") for c in chunks[:-1])
    assert "".join(chunks) == text


def test_a_url_is_never_split_and_counts_23() -> None:
    url = "https://news.example.org/" + "long-slug-" * 40 + "story.html"
    text = " ".join(ENGLISH[:6]) + f" Read it at {url} today. " + " ".join(ENGLISH[6:])
    parts = split(text, InstanceLimits(max_characters=200))
    assert sum(url in p for p in parts) == 1
    assert all(mastodon_length(p) <= 200 for p in parts)


def test_pack_and_sentences_agree_on_boundaries() -> None:
    text = "U.S.A won 50.2 points. 他说：“好！”然后走了。Then?"
    assert pack([text], 1000) == [text]
    assert sentences(text) == ["U.S.A won 50.2 points.", "他说：“好！”", "然后走了。", "Then?"]


# --- the channel against mastodon-mock --------------------------------------


@pytest.fixture
def channel(build: ChannelFactory, mock_server: MockServer) -> MastodonChannel:
    made = build(
        "mastodon", name="masto", env={TOKEN_ENV: TOKEN}, base_url=mock_server.base_url,
        access_token_env=TOKEN_ENV, timeout=5.0, upload_cover=False, thread=True,
    )  # fmt: skip
    assert isinstance(made, MastodonChannel)
    return made


def thread_of(reader: Mastodon, first: str) -> list[dict[str, Any]]:
    """The chain of replies starting at `first`, as the server has it (source text)."""
    me = reader.me()["id"]
    mine = reader.account_statuses(me, limit=40)
    chain, current = [], first
    while True:
        chain.append({"id": current, "text": reader.status_source(current)["text"]})
        replies = [s for s in mine if s["in_reply_to_id"] == current]
        assert len(replies) <= 1, f"{current} has {len(replies)} replies: a part posted twice"
        if not replies:
            return chain
        current = str(replies[0]["id"])


def linking(reader: Mastodon, marker: str) -> list[Any]:
    me = reader.me()["id"]
    return [s for s in reader.account_statuses(me, limit=40) if marker in s["content"]]


def test_format_splits_instead_of_cutting(channel: MastodonChannel) -> None:
    post = channel.format(long_article(1))
    assert len(post["thread"]) == 4 and post["status"] == post["thread"][0]
    assert all(mastodon_length(p) <= 500 for p in post["thread"])
    assert post["thread"][0].startswith("Skills contest opens, story 1\n\nSentence 1 ")
    link = "https://news.example.org/thread-1.html"
    assert post["thread"][-1].endswith(f"{link}\n\n#skills #contest 4/4")
    assert all(channel.text_limits[0].fits({"status": p}) for p in post["thread"])


def test_a_long_article_posts_as_a_chained_thread(
    channel: MastodonChannel, reader: Mastodon
) -> None:
    story = long_article(2)
    assert len(story.text) >= 1400
    post = channel.format(story)
    sent = attempt(key="thread-key-2")

    receipt = channel.send(post, sent)

    chain = thread_of(reader, receipt.remote_id)
    assert [c["text"] for c in chain] == post["thread"]
    assert remote_posts(sent.checkpoint) == [c["id"] for c in chain]
    assert receipt.remote_url and receipt.remote_id in receipt.remote_url
    for part in chain[1:]:  # each reply is public and answers the part before
        assert reader.status(part["id"])["visibility"] == "public"


class Killed(Exception):
    """The worker died between the server taking a part and the checkpoint saving it."""


def test_a_retry_resumes_at_the_missing_part_and_repeats_none(
    channel: MastodonChannel, reader: Mastodon
) -> None:
    post = channel.format(long_article(3))
    saved: list[dict[str, Any]] = []

    def save_until_part_two(data: dict[str, Any]) -> None:
        if len(data.get(POSTS_KEY, [])) >= 2:
            raise Killed  # part 2 is on the server; the checkpoint never learns its id
        saved.append(data)

    first = attempt(key="thread-key-3", save_checkpoint=save_until_part_two)
    with pytest.raises(Killed):
        channel.send(post, first)
    assert len(linking(reader, "story 3")) == 1  # part 2 has no "story 3"; part 1 has
    # The retry starts from what the store holds: the last checkpoint saved.
    retry = SendAttempt(
        delivery_id=1, number=2, idempotency_key="thread-key-3", checkpoint=dict(saved[-1])
    )
    receipt = channel.send(post, retry)

    chain = thread_of(reader, receipt.remote_id)
    assert [c["text"] for c in chain] == post["thread"]
    ids = [c["id"] for c in chain]
    assert len(set(ids)) == len(post["thread"]) == 4
    assert remote_posts(retry.checkpoint) == ids


def test_a_correction_edits_the_parts_then_adds_or_deletes_replies(
    channel: MastodonChannel, reader: Mastodon
) -> None:
    first = channel.format(long_article(4))
    sent = attempt(key="thread-key-4-v1")
    receipt = channel.send(first, sent)
    ids = remote_posts(sent.checkpoint)
    assert len(ids) == 4

    # Version 2 is longer: the four parts are edited and a fifth is added.
    longer = channel.format(long_article(4, paragraphs=[" ".join(ENGLISH)] * 2))
    assert len(longer["thread"]) > 4
    v2 = SendAttempt(2, 1, "thread-key-4-v2", checkpoint=dict(sent.checkpoint))
    again = channel.update(receipt.remote_id, longer, v2)
    chain = thread_of(reader, again.remote_id)
    assert again.remote_id == receipt.remote_id
    assert [c["text"] for c in chain] == longer["thread"]
    assert [c["id"] for c in chain][:4] == ids

    # Version 3 is short: one status; the replies are deleted, the first part edited.
    short = channel.format(long_article(4, paragraphs=["A short correction."]))
    assert len(short["thread"]) == 1
    v3 = SendAttempt(2, 1, "thread-key-4-v3", checkpoint=dict(v2.checkpoint))
    last = channel.update(receipt.remote_id, short, v3)
    assert thread_of(reader, last.remote_id) == [{"id": receipt.remote_id, "text": short["status"]}]
    for gone in remote_posts(v2.checkpoint)[1:]:
        with pytest.raises(MastodonNotFoundError):
            reader.status(gone)
    assert remote_posts(v3.checkpoint) == [receipt.remote_id]


def test_a_stricter_instance_gets_more_parts(
    channel: MastodonChannel, mock_server: MockServer, reader: Mastodon
) -> None:
    # What an earlier read of a stricter instance's limits left in the shared cache.
    assert channel.context.redis is not None
    key = channel.context.settings.key("mastodon", "instance", _cache_id(mock_server.base_url))
    channel.context.redis.set(key, InstanceLimits(max_characters=300).to_json(), ex=60)
    post = channel.format(long_article(5))
    try:
        receipt = channel.send(post, attempt(key="thread-key-5"))
    finally:
        channel.context.redis.delete(key)  # the other tests' instance is stock
    chain = thread_of(reader, receipt.remote_id)
    assert len(chain) > len(post["thread"])
    assert all(mastodon_length(c["text"]) <= 300 for c in chain)
    assert numbered([c["text"] for c in chain])


def test_the_cover_goes_on_the_first_part_only(
    build: ChannelFactory, mock_server: MockServer, reader: Mastodon
) -> None:
    made = build(
        "mastodon", name="covered", env={TOKEN_ENV: TOKEN}, base_url=mock_server.base_url,
        access_token_env=TOKEN_ENV, timeout=5.0, thread=True,
    )  # fmt: skip
    story = long_article(6, cover_image="skills-contest.jpg", cover_alt="The contest hall")
    post = made.format(story)
    receipt = made.send(post, attempt(key="thread-key-6"))
    chain = thread_of(reader, receipt.remote_id)
    media = [reader.status(c["id"])["media_attachments"] for c in chain]
    assert len(media[0]) == 1 and media[0][0]["description"] == "The contest hall"
    assert all(m == [] for m in media[1:]) and len(chain) == len(post["thread"]) == 4


def test_with_thread_turned_off_a_correction_shrinks_the_thread_to_one_status(
    channel: MastodonChannel, build: ChannelFactory, mock_server: MockServer, reader: Mastodon
) -> None:
    sent = attempt(key="thread-key-7-v1")
    receipt = channel.send(channel.format(long_article(7)), sent)
    parts = remote_posts(sent.checkpoint)
    assert len(parts) == 4
    plain = build(
        "mastodon", name="masto", env={TOKEN_ENV: TOKEN}, base_url=mock_server.base_url,
        access_token_env=TOKEN_ENV, timeout=5.0, upload_cover=False,
    )  # fmt: skip
    post = plain.format(long_article(7, title="Corrected: skills contest opens"))
    v2 = SendAttempt(2, 1, "thread-key-7-v2", checkpoint=dict(sent.checkpoint))
    edited = plain.update(receipt.remote_id, post, v2)
    assert thread_of(reader, edited.remote_id) == [{"id": parts[0], "text": post["status"]}]
    assert remote_posts(v2.checkpoint) == [parts[0]]
