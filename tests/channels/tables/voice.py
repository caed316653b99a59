"""The voice edition: the spoken script is the payload; the podcast document is RSS 2.0.

The contract renders offline (no store), where an episode has no audio yet and
is left out: the table checks the show itself reads back. Episodes with their
audio are tested through the store in tests/channels/test_voice_feed.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import feedparser

from channels.feed import FeedDocument
from publisher.domain.article import Article
from publisher.domain.html import to_text
from tests.channels.contract import STORY_URL, FeedTable, FormatRow, long_story, story


def reads_it_all(post: Mapping[str, Any], article: Article) -> None:
    """The script is the title, then the whole body: nothing is cut to fit."""
    spoken = "".join(text for text, _pause in post["episode"]["script"])
    assert spoken.startswith(article.title[:6])
    last_words = to_text(article.body_html).strip()[-8:]
    assert last_words in spoken, last_words


def check(documents: list[FeedDocument], articles: list[Article]) -> None:
    assert [d.filename for d in documents] == ["podcast.xml"]
    parsed = feedparser.parse(documents[0].body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.title and parsed.namespaces.get("itunes")
    assert b"<itunes:explicit>" in documents[0].body and b"<podcast:guid>" in documents[0].body
    assert parsed.entries == []  # no audio stored for these articles: left out, not broken


TABLE = FeedTable(
    type_name="voice",
    formats=(
        FormatRow(
            "short story",
            story,
            {
                "url": STORY_URL,
                "title": "全国数字技能大赛决赛开幕",
                "episode.language": "zh-CN",
                "episode.title": "全国数字技能大赛决赛开幕",
            },
        ),
        FormatRow("over-long story", long_story),
    ),
    long_article=long_story,
    check_documents=check,
    # A configured artwork URL: offline there is no media store to keep generated art in.
    options={"image": "https://news.example.org/podcast-3000.jpg"},
    carries_whole=reads_it_all,
)
