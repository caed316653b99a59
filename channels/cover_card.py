"""A generated cover card: the title set on the newsroom's colours, with its name.

Some platforms refuse an article without a cover (WeChat's `thumb_media_id`
is required for a news article). An article with no cover of its own, no
usable body image and no `default_cover` still goes out with a card made
here, unless the channel says `generated_cover = false`.

Chinese titles need a CJK font that installs with the project: Noto Sans
CJK (SIL Open Font License 1.1, as the font's own name table says) from the
PyPI package `cvttf-notosanscjk-regular`. The card is deterministic (same
title and branding, same bytes), so a retry uploads the same image.
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import TYPE_CHECKING

from channels.images import JPEG, Image
from publisher.config.settings import Branding

if TYPE_CHECKING:  # Pillow is imported when a card is drawn: workers start without it
    from PIL.ImageFont import FreeTypeFont

#: 2.35:1, the crop WeChat shows in the feed (`pic_crop_235_1`).
CARD_SIZE = (900, 383)
_MARGIN = 48
_TITLE_SIZES = (56, 48, 40, 34)  # largest first: the first that fits in three lines
_NAME_SIZE = 26
_MAX_LINES = 3


@lru_cache(maxsize=8)
def _font(size: int) -> FreeTypeFont:
    """The CJK font at `size` (cached: the file is 16 MB and parsed once per size)."""
    import cvttf_NotoSansCJK_Regular
    from PIL import ImageFont

    return ImageFont.truetype(cvttf_NotoSansCJK_Regular.get_TTF_path(), size)


def cover_card(title: str, branding: Branding) -> Image:
    """A JPEG card for `title` in `branding`'s colours, well under every platform's limits."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    width, height = CARD_SIZE
    card = PILImage.new("RGB", CARD_SIZE, branding.brand_color)
    draw = ImageDraw.Draw(card)
    name_font = _font(_NAME_SIZE)
    text_width = width - 2 * _MARGIN
    for size in _TITLE_SIZES:
        font = _font(size)
        lines = wrap(title, font, text_width)
        if len(lines) <= _MAX_LINES:
            break
    lines = lines[:_MAX_LINES]
    if len(wrap(title, font, text_width)) > _MAX_LINES:
        lines[-1] = _ellipsized(lines[-1], font, text_width)
    line_height = int(font.size * 1.3)
    top = max(_MARGIN, (height - _NAME_SIZE - _MARGIN - line_height * len(lines)) // 2)
    for number, line in enumerate(lines):
        draw.text((_MARGIN, top + number * line_height), line, font=font, fill=branding.text_color)
    rule_y = height - _MARGIN - _NAME_SIZE - 14
    draw.line((_MARGIN, rule_y, _MARGIN + 80, rule_y), fill=branding.text_color, width=3)
    draw.text(
        (_MARGIN, height - _MARGIN - _NAME_SIZE), branding.name, font=name_font,
        fill=branding.text_color,
    )  # fmt: skip
    out = io.BytesIO()
    card.save(out, "JPEG", quality=88, optimize=True)
    return Image(data=out.getvalue(), content_type=JPEG, filename="cover-card.jpg")


def wrap(text: str, font: FreeTypeFont, width: int) -> list[str]:
    """Lines no wider than `width`: breaks between words, and anywhere in CJK text
    (which has no spaces), never before closing punctuation."""
    lines: list[str] = []
    line = ""
    for token in _tokens(" ".join(text.split())):
        candidate = line + token
        if line and font.getlength(candidate.rstrip()) > width and token.strip():
            if token[0] in _NO_LINE_START and len(line) > 1:  # keep "，" with its word
                lines.append(line[:-1].rstrip())
                line = line[-1] + token.lstrip()
            else:
                lines.append(line.rstrip())
                line = token.lstrip()
        else:
            line = candidate
    if line.strip():
        lines.append(line.rstrip())
    return lines


_NO_LINE_START = frozenset("，。、；：？！）》」』】,.;:?!)")


def _tokens(text: str) -> list[str]:
    """Latin words (with their trailing space) stay whole; every other character is one."""
    tokens: list[str] = []
    word = ""
    for char in text:
        if char.isascii() and not char.isspace():
            word += char
            continue
        if word:
            tokens.append(word)
            word = ""
        if char.isspace() and tokens:
            tokens[-1] += char
        elif not char.isspace():
            tokens.append(char)
    if word:
        tokens.append(word)
    return tokens


def _ellipsized(line: str, font: FreeTypeFont, width: int) -> str:
    while line and font.getlength(line + "…") > width:
        line = line[:-1]
    return line.rstrip() + "…"
