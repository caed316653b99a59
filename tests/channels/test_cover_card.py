"""The generated cover card: Chinese titles drawn with real glyphs, inside the card."""

from __future__ import annotations

import io

import pytest
from PIL import Image as PILImage
from PIL import ImageChops

from channels.cover_card import CARD_SIZE, _font, cover_card, wrap
from publisher.config.settings import Branding

BRAND = Branding(name="工人日报", brand_color="#123456", text_color="#ffffff")
NOT_A_CHARACTER = "\U0010fffd"  # no font has it: what a missing glyph (tofu) looks like


def pixels(data: bytes) -> PILImage.Image:
    return PILImage.open(io.BytesIO(data)).convert("RGB")


@pytest.mark.parametrize("char", ["职", "技", "赛", "A", "，"])
def test_the_font_has_real_glyphs_for_chinese(char: str) -> None:
    font = _font(40)
    drawn = font.getmask(char).getbbox()
    missing = font.getmask(NOT_A_CHARACTER).getbbox()
    assert drawn is not None and drawn != missing


def test_card_is_a_jpeg_in_the_newsroom_colours() -> None:
    card = cover_card("全国职工数字应用技术技能大赛决赛开幕", BRAND)
    image = pixels(card.data)
    assert (card.content_type, image.size) == ("image/jpeg", CARD_SIZE)
    corner = image.getpixel((3, 3))
    assert isinstance(corner, tuple)
    assert all(abs(a - b) <= 8 for a, b in zip(corner, (0x12, 0x34, 0x56), strict=True))
    assert len(card.data) < 64 * 1024  # even the 64 KB thumb limit would take it


def test_different_titles_draw_different_cards_and_the_same_title_the_same_bytes() -> None:
    first, second = cover_card("职工技能大赛", BRAND), cover_card("数字应用技术", BRAND)
    assert ImageChops.difference(pixels(first.data), pixels(second.data)).getbbox() is not None
    assert cover_card("职工技能大赛", BRAND).data == first.data  # a retry uploads the same


def test_long_titles_wrap_inside_the_card() -> None:
    font = _font(40)
    lines = wrap("全国职工数字应用技术技能大赛决赛今日在京开幕，三百余名职工同台竞技", font, 800)
    assert len(lines) >= 2 and all(font.getlength(line) <= 800 for line in lines)
    assert not any(line.startswith("，") for line in lines)
    english = "Workers compete in the national digital skills final"
    lines = wrap(english, font, 400)
    assert len(lines) > 1 and " ".join(lines) == english  # broken between words only
    assert all(font.getlength(line) <= 400 for line in lines)
