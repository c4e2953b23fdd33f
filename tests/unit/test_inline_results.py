"""Inline results: Telegram's copy of each result, of the right kind, captioned by its prompt."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiogram.types import InlineQueryResultCachedMpeg4Gif, InlineQueryResultCachedPhoto

from bot.delivery.texts import CAPTION_LIMIT
from bot.telegram.i18n import build_i18n
from handlers.inline.share import inline_result, page_offset
from tests.factories import task_record


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    i18n = build_i18n()
    with i18n.context(), i18n.use_locale("en"):
        yield


def test_a_photo_result_is_its_cached_photo_with_the_prompt_as_written() -> None:
    task = task_record(
        id=42,
        type="upscale",
        choice="2",
        prompt="a <red> fox & friends",
        result={"url": "https://cdn.example/fox.png"},
        result_file_id="AgAC-fox",
    )
    result = inline_result(task)
    assert isinstance(result, InlineQueryResultCachedPhoto)
    assert (result.id, result.photo_file_id, result.title) == ("42", "AgAC-fox", "Upscale #2")
    # Plain text, not HTML: the prompt shows as typed, and no buttons go along.
    assert result.caption == "a <red> fox & friends" and result.parse_mode is None
    assert result.reply_markup is None


def test_an_animation_is_its_cached_mp4_and_long_prompts_fit_a_caption() -> None:
    task = task_record(
        type="upscale",
        prompt="x" * 3000,
        result={"url": "https://cdn.example/a.mp4", "content_type": "video/mp4"},
        result_file_id="CgAC-loop",
    )
    result = inline_result(task)
    assert isinstance(result, InlineQueryResultCachedMpeg4Gif)
    assert result.mpeg4_file_id == "CgAC-loop"
    assert result.caption is not None and len(result.caption) == CAPTION_LIMIT
    assert result.caption.endswith("…")


def test_a_result_telegram_does_not_hold_cannot_be_offered() -> None:
    with pytest.raises(ValueError, match="no result in Telegram"):
        inline_result(task_record(result_file_id=None))


def test_offsets_are_our_own_numbers_or_the_start() -> None:
    offsets = ("", "50", "-5", "x", "1e3", "²", "9" * 30)
    assert [page_offset(text) for text in offsets] == [0, 50, 0, 0, 0, 0, 0]
