"""The newsroom's language: which locale a reader gets, and the text in it.

One owner for both questions. Negotiation: a browser's `Accept-Language`
(the dashboard, the API's `problem` texts), the POSIX variables `LC_ALL`,
`LC_MESSAGES`, `LANG` (the CLI), and `[newsroom] locale` as the newsroom's
default when the reader states nothing we have. Text: gettext catalogues in
`publisher/locale/<lang>/LC_MESSAGES/publisher.po`, English being the source
language (a message without a translation stays English).

The `.po` sources are what is committed; a `.mo` compiled by `pybabel compile`
beside one is used when it is newer, otherwise the `.po` is compiled in memory
at first use, so a fresh install needs no build step and a translator's edit
shows at the next start. See the README's "Languages" section.

Messages use `str.format` fields (`{id}`), never `%`: a translator may move a
field but must keep its name, which the catalogue test checks.
"""

from __future__ import annotations

import gettext
import io
import re
from collections.abc import Mapping
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "publisher"
#: The language the source strings are written in.
SOURCE_LOCALE = "en"
#: POSIX precedence for the message locale.
POSIX_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")
_TAG = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")


def N_(message: str) -> str:
    """Marks a constant for extraction; it is translated where it is shown."""
    return message


class Phrase(str):
    """A message with fields, still translatable after it has been raised.

    It *is* the English text (so logs, `str(exc)` and existing callers see
    what they always saw), and it keeps its msgid and fields so the edge that
    knows the reader's language (an HTTP answer, the CLI) can say it again in
    that language: `InputError("url", Phrase("is longer than {n} characters", n=2000))`.
    """

    msgid: str
    fields: Mapping[str, Any]

    def __new__(cls, msgid: str, **fields: Any) -> Phrase:
        made = super().__new__(cls, msgid.format(**fields) if fields else msgid)
        made.msgid = msgid
        made.fields = fields
        return made


class Translator:
    """The text of one locale; `translator(locale)` hands out shared ones."""

    def __init__(self, locale: str, catalogue: gettext.NullTranslations) -> None:
        self.locale = locale
        self.catalogue = catalogue

    @property
    def tag(self) -> str:
        """The locale as a BCP 47 tag (`zh-CN`), for HTML `lang` and `Intl`."""
        return self.locale.replace("_", "-")

    def gettext(self, message: str, /, **fields: Any) -> str:
        # gettext("") is the catalogue's header, never a translation of nothing.
        translated = self.catalogue.gettext(message) if message else message
        return translated.format(**fields) if fields else translated

    __call__ = gettext

    def text(self, message: str) -> str:
        """Any message in this locale: a `Phrase` by its msgid and fields; a plain
        string when the catalogue holds it (constant messages), else as it is."""
        if isinstance(message, Phrase):
            # A field may be a phrase too (a state's name): it is said in this language.
            fields = {
                k: self.text(v) if isinstance(v, Phrase) else v for k, v in message.fields.items()
            }
            return self.gettext(message.msgid, **fields)
        return self.gettext(message)


@cache
def available_locales() -> tuple[str, ...]:
    """The source language and every locale with a catalogue, e.g. `("en", "zh_CN")`."""
    found = sorted(p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    return (SOURCE_LOCALE, *(f for f in found if f != SOURCE_LOCALE))


def match_locale(tag: str | None) -> str | None:
    """The catalogue a language tag asks for: exact (`zh-CN`, `zh_CN.UTF-8`), else the
    first one of the same language (`zh`, `zh-Hans` → `zh_CN`); None when there is none."""
    if not tag:
        return None
    name = tag.strip().split(".")[0].split("@")[0].replace("-", "_")
    if not _TAG.match(name) or name in ("C", "POSIX"):
        return None
    lowered = name.lower()
    locales = available_locales()
    for locale in locales:
        if locale.lower() == lowered:
            return locale
    language = lowered.split("_")[0]
    for locale in locales:
        if locale.lower().split("_")[0] == language:
            return locale
    return None


def negotiate(accept_language: str | None, default: str | None = None) -> str:
    """The locale for an `Accept-Language` header: the best-weighted tag we have a
    catalogue for, else the newsroom's `default`, else English."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if tag and weight > 0:
            ranked.append((-weight, position, tag))
    for _weight, _position, tag in sorted(ranked):
        if tag == "*":
            break
        found = match_locale(tag)
        if found:
            return found
    return match_locale(default) or SOURCE_LOCALE


def posix_locale(env: Mapping[str, str]) -> str | None:
    """The locale the POSIX variables ask for, if we have it: the first one set wins
    (`LC_ALL`, then `LC_MESSAGES`, then `LANG`), as in every C program."""
    for variable in POSIX_VARIABLES:
        value = env.get(variable)
        if value:
            return match_locale(value)
    return None


@cache
def translator(locale: str) -> Translator:
    """The shared translator of a locale (an unknown one speaks English)."""
    po = LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    if locale == SOURCE_LOCALE or not po.is_file():
        return Translator(SOURCE_LOCALE, gettext.NullTranslations())
    return Translator(locale, _load(po))


def _load(po: Path) -> gettext.GNUTranslations:
    mo = po.with_suffix(".mo")
    if mo.is_file() and mo.stat().st_mtime >= po.stat().st_mtime:
        with mo.open("rb") as compiled:
            return gettext.GNUTranslations(compiled)
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as source:
        catalogue = read_po(source)
    buffer = io.BytesIO()
    write_mo(buffer, catalogue)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


#: The CLI's translator: a process speaks one language, chosen once in `main`.
_current: ContextVar[Translator | None] = ContextVar("publisher_translator", default=None)


def activate(locale: str) -> Translator:
    """Makes `locale` the language of `_` in this context (the CLI's process)."""
    chosen = translator(locale)
    _current.set(chosen)
    return chosen


def current() -> Translator:
    return _current.get() or translator(SOURCE_LOCALE)


def _(message: str, /, **fields: Any) -> str:
    """`message` in the active language, with its fields filled in."""
    return current().gettext(message, **fields)
