"""The text of a Weibo status: composed within 140 字, and compared with what came back.

Everything is measured with `weibo_length`, the platform's own rule
(ASCII half, CJK and emoji one, a URL ten). A status written by hand
(`overrides.<channel>.text`) keeps the editor's words and gets the article
link the platform requires, so its count includes that link.
"""

from __future__ import annotations

from channels.weibo_length import MAX_LENGTH, WEIBO_URL_PATTERN, weibo_length
from publisher.domain.article import Article
from publisher.domain.text import ELLIPSIS, cut

MIN_SUMMARY = 30  # 字 the summary keeps before any tag is added


def plain(text: str) -> str:
    """`text` with every `#` outside a URL made full-width, so no `#话题#` forms."""
    out, last = [], 0
    for match in WEIBO_URL_PATTERN.finditer(text):
        out.append(text[last : match.start()].replace("#", "＃"))
        out.append(match.group())
        last = match.end()
    out.append(text[last:].replace("#", "＃"))
    return " ".join("".join(out).split())


def join_status(title: str, summary: str, url: str, tags: list[str]) -> str:
    """【title】summary url tag tag: the URL stands alone, so it is recognised."""
    return " ".join(p for p in (f"【{title}】{summary}", url, " ".join(tags)) if p)


def compose_status(article: Article, limit: int = MAX_LENGTH, link: str | None = None) -> str:
    """The status text for `article`, at most `limit` 字 whenever the link allows.

    Room goes first to the link and the title (cut only if it alone is too
    long), then tags while the summary keeps `MIN_SUMMARY`, then the summary,
    cut at a sentence or clause boundary by `publisher.text.cut`. `link` is the
    article link as the channel prints it (tracked), `article.url` by default.
    """
    title, url = plain(article.title), link or article.url
    summary = plain(article.summary) if article.summary != article.title else ""
    if weibo_length(join_status(title, "", url, [])) > limit:
        title = cut(title, limit, lambda t: weibo_length(join_status(t, "", url, [])))
    tags = [plain(tag) for tag in article.tags]
    reserve = MIN_SUMMARY if summary else 0
    while tags and weibo_length(join_status(title, "", url, tags)) > limit - reserve:
        tags.pop()
    if summary:
        summary = cut(summary, limit, lambda s: weibo_length(join_status(title, s, url, tags)))
    if summary.strip() == ELLIPSIS:
        summary = ""
    return join_status(title, summary, url, tags)


def comparable(text: str) -> str:
    """A status text with its links blanked: Weibo answers with t.cn links, not ours."""
    return " ".join(WEIBO_URL_PATTERN.sub("\x00", text).split())


def compose_override(text: str, link: str, url: str) -> str:
    """The editor's own status text with the article link: where they wrote the article's
    `url` it becomes `link` (the tracked one), else the link is appended."""
    text = plain(text)
    if url in text.split():
        return " ".join(link if word == url else word for word in text.split())
    return f"{text} {link}"
