"""Captions: the job type, the requester in groups, and the prompt within Telegram's limit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.delivery.texts import CAPTION_LIMIT, caption_for
from bot.telegram.i18n import build_i18n
from bot.web.region import page_texts
from tests.factories import task_record

BASE = task_record(
    type="upscale",
    action="upscale:2",
    choice="2",
    prompt="a <red> fox & friends",
    result={"url": "u"},
    chat_id=5,
    user_id=7,
    requester="Ann Lee (@ann)",
)


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    i18n = build_i18n()
    with i18n.context(), i18n.use_locale("en"):
        yield


def test_private_caption_has_type_and_escaped_prompt() -> None:
    assert caption_for(BASE) == "<b>Upscale #2</b>\na &lt;red&gt; fox &amp; friends"


def test_group_caption_names_the_requester() -> None:
    caption = caption_for(replace(BASE, chat_id=-100123))
    assert caption.startswith('<b>Upscale #2</b> · <a href="tg://user?id=7">Ann Lee (@ann)</a>\n')


def test_long_prompt_is_cut_to_the_caption_limit() -> None:
    caption = caption_for(replace(BASE, prompt="<" * 5000, chat_id=-1))
    assert len(caption) <= CAPTION_LIMIT
    assert caption.endswith("…")


def test_russian_type_label() -> None:
    i18n = build_i18n()
    with i18n.context(), i18n.use_locale("ru"):
        assert caption_for(replace(BASE, type="imagine", choice=None)).startswith(
            "<b>Генерация</b>"
        )


def test_mini_app_texts_cover_the_page_and_speak_russian() -> None:
    page = (Path(__file__).parents[2] / "bot" / "web" / "assets" / "region.html").read_text(
        "utf-8"
    )
    i18n = build_i18n()
    with i18n.context(), i18n.use_locale("ru"):
        texts = page_texts()
    assert texts["submit"] == "Отправить"
    for key in texts:
        assert f"{key}:" in page, f"the page has no default for {key}"
