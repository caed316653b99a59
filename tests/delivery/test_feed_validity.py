"""Documents valid by the W3C Feed Validation Service's rules (tests/delivery/feed_rules.py)
and the JSON Feed 1.1 schema, with every optional field, CJK text, corrections
and retractions, built by the real rebuild."""

from __future__ import annotations

import json
import time
from typing import Any

import feedparser
import jsonschema
from lxml import etree

from publisher.domain.article import Article, parse_article
from tests.conftest import SAMPLES
from tests.delivery.feed_rules import ATOM, atom_problems, rss_problems
from tests.delivery.test_feeds import SCHEMA, FeedSite, site, story  # noqa: F401 - fixture

COVER = SAMPLES / "skills-contest.jpg"


def full(n: int, **change: Any) -> Article:
    """Every optional field set, in Chinese, with a cover file next to the article."""
    fields: dict[str, Any] = dict(
        title=f"全国数字技能大赛第{n}场：青年工匠同台竞技",
        body_html=f"<p>第{n}场比赛在北京举行，<strong>来自全国</strong>的选手参赛。</p>",
        summary="技能大赛综述",
        author="新华社记者 李明",
        source="工人日报",
        tags=["数字技能", "职工"],
        cover_image=COVER.name,
        language="zh-CN",
    )
    return parse_article(story(n, **{**fields, **change}), base_dir=COVER.parent)


def assert_valid(site: FeedSite, docs: dict[str, bytes]) -> None:  # noqa: F811
    url = site.settings.public_url + "/feeds/"
    assert atom_problems(docs["atom.xml"], url + "atom.xml") == []
    assert rss_problems(docs["rss.xml"], url + "rss.xml") == []
    app = json.loads(docs["app.json"])
    jsonschema.validate(app, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert app["feed_url"] == url + "app.json"


def test_every_optional_field_in_cjk_is_valid_and_the_cover_is_an_enclosure(
    site: FeedSite,  # noqa: F811
) -> None:
    site.publish_delivered(full(1))
    site.publish_delivered(story(2, cover_image="https://cdn.example.org/cover.png"))
    site.publish_delivered(story(3))  # no optional field at all
    docs = site.rebuild()
    assert_valid(site, docs)

    atom = etree.fromstring(docs["atom.xml"])
    entries = {e.findtext(f"{ATOM}title"): e for e in atom.findall(f"{ATOM}entry")}
    ours = entries["全国数字技能大赛第1场：青年工匠同台竞技"]
    links = [dict(link.attrib) for link in ours.findall(f"{ATOM}link")]
    media_url = links[1]["href"]
    assert media_url.startswith(site.settings.public_url + "/media/")
    assert links == [
        {"rel": "alternate", "type": "text/html", "href": "https://news.example.org/1.html",
         "hreflang": "zh-CN"},
        {"rel": "enclosure", "type": "image/jpeg", "href": media_url,
         "length": str(len(COVER.read_bytes()))},
    ]  # fmt: skip
    assert ours.find(f"{ATOM}content").get("type") == "html"  # type: ignore[union-attr]
    remote = [dict(link.attrib) for link in entries["Story 2"].findall(f"{ATOM}link")]
    assert remote[1] == {
        "rel": "enclosure",
        "type": "image/png",
        "href": "https://cdn.example.org/cover.png",
    }  # length unknown: left out, as RFC 4287 allows

    rss = etree.fromstring(docs["rss.xml"])
    enclosures = {
        item.findtext("title"): dict(item.find("enclosure").attrib)  # type: ignore[union-attr]
        for item in rss.iter("item")
        if item.find("enclosure") is not None
    }
    assert enclosures == {
        "全国数字技能大赛第1场：青年工匠同台竞技": {
            "url": media_url, "length": str(len(COVER.read_bytes())), "type": "image/jpeg"
        },
        "Story 2": {"url": "https://cdn.example.org/cover.png", "length": "0",
                    "type": "image/png"},
    }  # fmt: skip

    parsed = feedparser.parse(docs["atom.xml"])
    first = parsed.entries[-1]  # story 1 is the oldest
    assert first.content[0].value == (
        "<p>第1场比赛在北京举行，<strong>来自全国</strong>的选手参赛。</p>"
    )
    app = json.loads(docs["app.json"])
    item = next(i for i in app["items"] if i["title"].startswith("全国"))
    assert item["authors"] == [{"name": "新华社记者 李明"}] and item["language"] == "zh-CN"


def test_a_correction_keeps_the_id_and_stays_valid(site: FeedSite) -> None:  # noqa: F811
    site.publish_delivered(full(1))
    before = site.rebuild()
    # Feed dates have whole seconds: a correction in the same second would carry
    # the same `updated`, so it is made in the next one, as any real one is.
    time.sleep(1.05 - time.time() % 1)
    site.publish_delivered(full(1, title="更正：全国数字技能大赛第1场"))
    after = site.rebuild()
    assert_valid(site, after)
    old, new = (feedparser.parse(d["atom.xml"]).entries[0] for d in (before, after))
    assert new.id == old.id and new.title == "更正：全国数字技能大赛第1场"
    assert new.updated_parsed > old.updated_parsed


def test_a_retracted_item_leaves_every_document_valid(site: FeedSite) -> None:  # noqa: F811
    for n in (1, 2):
        site.publish_delivered(full(n))
    site.store.retract("story-1", {"site": True, "app": True})
    docs = site.rebuild()
    assert_valid(site, docs)
    for name in ("rss.xml", "atom.xml"):
        assert [e.title for e in feedparser.parse(docs[name]).entries] == [
            "全国数字技能大赛第2场：青年工匠同台竞技"
        ]
    assert len(json.loads(docs["app.json"])["items"]) == 1
    site.store.retract("story-2", {"site": True, "app": True})
    assert_valid(site, site.rebuild())  # and empty


def test_the_rules_catch_what_the_validator_reported() -> None:
    """The two errors the W3C validator gave the old Atom document, fed to our rules."""
    old_entry = parse_article(story(1))  # only for a realistic id
    body = f"""<feed xmlns="http://www.w3.org/2005/Atom"><id>https://news.example.org/</id>
      <title>T</title><updated>2026-11-20T08:00:00+00:00</updated><author><name>T</name></author>
      <link href="https://x.example/feeds/atom.xml" rel="self"/>
      <entry><id>urn:uuid:{old_entry.id}</id><title>t</title>
      <updated>2026-11-20T08:00:00+00:00</updated>
      <content type="CDATA">x</content><link href="https://a.example/1"/>
      <link href="https://a.example/c.jpg"/></entry></feed>""".encode()
    problems = atom_problems(body, "https://x.example/feeds/atom.xml")
    assert any("Not a valid MIME type" in p for p in problems)
    assert any("Duplicate alternate links" in p for p in problems)
    assert atom_problems(body, "https://elsewhere.example/atom.xml") != problems  # rel=self
