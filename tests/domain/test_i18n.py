"""The newsroom's language: negotiation, translation, and a catalogue that keeps up.

The catalogue test extracts every marked message from the sources the way
`make messages` does (Babel, `babel.cfg`) and checks that the zh-CN catalogue
translates each one with the same `{fields}`: a string added in English only,
or a translation that drops or renames a field, fails here.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from publisher.domain.errors import InputError
from publisher.domain.i18n import (
    LOCALE_DIR,
    Phrase,
    available_locales,
    match_locale,
    negotiate,
    posix_locale,
    translator,
)

REPO = Path(__file__).parents[2]
#: The keywords `make messages` passes to `pybabel extract` (Makefile, MESSAGE_KEYWORDS).
KEYWORDS = {
    "_": None,
    "N_": None,
    "Phrase": None,
    "t": None,
    "InputError": (2,),
    "ApiError": (3,),
}


def test_catalogues_found_with_english_as_the_source() -> None:
    assert available_locales() == ("en", "zh_CN")


@pytest.mark.parametrize(
    ("header", "default", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", None, "zh_CN"),
        ("zh", None, "zh_CN"),
        ("zh-Hans-CN", None, "zh_CN"),
        ("en-GB,en;q=0.9", None, "en"),
        ("fr-FR,zh-CN;q=0.5", None, "zh_CN"),  # the first we have, by weight
        ("en;q=0.4,zh-CN;q=0.8", None, "zh_CN"),
        ("zh-CN;q=0, en", None, "en"),  # q=0 means "not this one"
        ("fr-FR", "zh-CN", "zh_CN"),  # nothing we have: the newsroom's language
        ("", "zh_CN", "zh_CN"),
        (None, None, "en"),
        ("*", "zh-CN", "zh_CN"),
        ("en", "zh-CN", "en"),  # a reader who asks for English gets it
        ("garbage;;q=x, <script>", None, "en"),
    ],
)
def test_accept_language_negotiation(
    header: str | None, default: str | None, expected: str
) -> None:
    assert negotiate(header, default) == expected


def test_posix_variables_in_their_order() -> None:
    assert posix_locale({"LANG": "zh_CN.UTF-8"}) == "zh_CN"
    assert posix_locale({"LC_ALL": "en_US.UTF-8", "LANG": "zh_CN.UTF-8"}) == "en"
    assert posix_locale({"LC_MESSAGES": "zh_CN.utf8", "LANG": "en_GB.UTF-8"}) == "zh_CN"
    assert posix_locale({"LANG": "C.UTF-8"}) is None  # says nothing: the newsroom decides
    assert posix_locale({"LANG": "POSIX"}) is None
    assert posix_locale({}) is None
    assert match_locale("zh_CN@pinyin") == "zh_CN"


def test_phrases_are_english_until_a_reader_asks_otherwise() -> None:
    problem = Phrase("is {size:,} characters; the limit is {limit:,}", size=2001, limit=2000)
    error = InputError("title", problem)
    assert str(error) == "title: is 2,001 characters; the limit is 2,000"
    chinese = translator("zh_CN")
    assert chinese.text(error.problem) == "有 2,001 个字符；上限是 2,000"
    assert chinese.text("is required") == "必填"  # a constant message, by its text
    assert chinese.text("not a message we have") == "not a message we have"
    assert chinese.text("") == ""  # never the catalogue's header
    assert translator("en").text(problem) == str(problem)
    assert translator("xx").locale == "en"
    assert chinese.tag == "zh-CN"


def _fields(message: str) -> set[str]:
    return {name for _text, name, _spec, _conv in string.Formatter().parse(message) if name}


def test_every_message_in_the_sources_is_translated_with_the_same_fields() -> None:
    methods = [
        ("publisher/**.py", "python"),
        ("publisher/web/static/*.js", "javascript"),
        ("publisher/web/templates/*.html", "jinja2"),
    ]
    found: dict[str, str] = {}
    for filename, _line, message, _comments, _context in extract_from_dir(
        str(REPO), methods, keywords=KEYWORDS, comment_tags=()
    ):
        ids = message if isinstance(message, tuple) else (message,)
        for msgid in ids:
            if msgid:
                found.setdefault(msgid, filename)
    assert len(found) > 200  # the extraction really ran over the sources

    with (LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "publisher.po").open("rb") as source:
        catalogue = read_po(source)
    untranslated = []
    for msgid, filename in sorted(found.items()):
        entry = catalogue.get(msgid)
        if entry is None or not entry.string or entry.fuzzy:
            untranslated.append(f"{filename}: {msgid!r}")
        elif _fields(msgid) != _fields(str(entry.string)):
            untranslated.append(f"{filename}: {msgid!r} → {entry.string!r} changes the fields")
    assert not untranslated, "run `make messages` and translate:\n" + "\n".join(untranslated)
    still_english = [
        str(m.id)
        for m in catalogue
        if m.id and str(m.id) not in UNCHANGED and re.search("[a-z]", _words(str(m.id)))
        and not re.search("[\u4e00-\u9fff]", str(m.string))
    ]  # fmt: skip
    assert not still_english, still_english


#: Messages whose Chinese is the same text (names a translator keeps as they are).
UNCHANGED = {"worker"}


def _words(message: str) -> str:
    """A message without its fields, markup and `code`: what a translator translates."""
    return re.sub(r"\{[^}]*\}|\[/?bold\]|`[^`]*`", "", message)


def test_every_state_and_kind_has_words() -> None:
    from publisher.domain.states import WORDS, Kind, State

    assert {*State, *Kind} <= set(WORDS)  # a new state shows translated everywhere
    chinese = translator("zh_CN")
    assert [chinese.text(s) for s in State] == [
        "已定时", "待投递", "投递中", "重试中", "暂缓", "已送达", "失败", "已取消", "待批准",
    ]  # fmt: skip
