"""RSS 2.0 and Atom 1.0: the documents read back by feedparser, entry for entry."""

from __future__ import annotations

import feedparser

from channels.feed import FeedDocument
from publisher.domain.article import Article
from tests.channels.contract import STORY_URL, FeedTable, FormatRow, long_story, story


def check(documents: list[FeedDocument], articles: list[Article]) -> None:
    assert [d.filename for d in documents] == ["rss.xml", "atom.xml"]
    for document in documents:
        parsed = feedparser.parse(document.body)
        assert not parsed.bozo, (document.filename, parsed.get("bozo_exception"))
        assert [e.title for e in parsed.entries] == [a.title for a in articles]
        assert [e.link for e in parsed.entries] == [a.url for a in articles]
        # The whole body: a feed carries the article, not a teaser cut to a limit.
        assert parsed.entries[-1].content[0].value == articles[-1].body_html


TABLE = FeedTable(
    type_name="rss",
    formats=(
        FormatRow(
            "short story",
            story,
            {
                "url": STORY_URL,
                "title": "全国数字技能大赛决赛开幕",
                "tags": ["技能", "职工"],
                "content_html": "<p>11月20日，决赛开幕。</p>",
                "image": None,
            },
        ),
        FormatRow("over-long story", long_story),
    ),
    long_article=long_story,
    check_documents=check,
)
