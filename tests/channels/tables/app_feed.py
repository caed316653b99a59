"""JSON Feed 1.1 for the app: the document valid against the published schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from channels.feed import FeedDocument
from publisher.domain.article import Article
from tests.channels.contract import STORY_URL, FeedTable, FormatRow, long_story, story

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "jsonfeed-1.1.schema.json").read_text()
)


def check(documents: list[FeedDocument], articles: list[Article]) -> None:
    (document,) = documents
    assert document.filename == "app.json"
    feed = json.loads(document.body)
    jsonschema.validate(feed, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert [i["title"] for i in feed["items"]] == [a.title for a in articles]
    assert [i["url"] for i in feed["items"]] == [a.url for a in articles]
    assert feed["items"][-1]["content_html"] == articles[-1].body_html


TABLE = FeedTable(
    type_name="app_feed",
    formats=(
        FormatRow(
            "short story",
            story,
            {
                "url": STORY_URL,
                "title": "全国数字技能大赛决赛开幕",
                "language": "zh-CN",
                "summary": "三百余名职工同台竞技。",
            },
        ),
        FormatRow("over-long story", long_story),
    ),
    long_article=long_story,
    check_documents=check,
)
