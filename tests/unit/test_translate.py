"""Which parts of a prompt go to the translator, and what comes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.config import Settings
from bot.prompts.translate import Translator, needs_translation, split_prompt
from tests.fake_translator import FakeTranslator


def sent(prompt: str) -> list[str]:
    """The segments that would go to the translator."""
    return [
        s.text.strip() for s in split_prompt(prompt) if s.translate and needs_translation(s.text)
    ]


def test_segments_join_back_to_the_prompt() -> None:
    prompt = "https://x.test/a.png кот «Мурка» `code` --ar 16:9 --no деревья --sref 123 x::2"
    assert "".join(s.text for s in split_prompt(prompt)) == prompt


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("кот в шляпе --ar 16:9 https://x.test/a.png", ["кот в шляпе"]),
        ('собака "Надпись" --v 7', ["собака"]),
        ("`кот` «ёлка» “дом” --p abc", []),
        ("кот::2 собака::1 --s 250", ["кот", "собака"]),
        ("--ar 2:3 закат --no деревья, дома", ["закат", "деревья, дома"]),
        ("a red fox --ar 1:1", []),
        ("www.example.com/кот.png", []),
    ],
)
def test_only_foreign_prose_is_sent(prompt: str, expected: list[str]) -> None:
    assert sent(prompt) == expected


@pytest.fixture
async def fake() -> AsyncIterator[FakeTranslator]:
    server = FakeTranslator()
    await server.start()
    yield server
    await server.stop()


async def test_translation_keeps_everything_else(fake: FakeTranslator) -> None:
    translator = Translator(url=fake.base_url, timeout=2)
    try:
        result = await translator.translate("кот в шляпе, --ar 16:9 --no закат")
    finally:
        await translator.aclose()
    assert result.translated and not result.failed
    assert result.text == "a cat in a hat, --ar 16:9 --no sunset"
    assert "api_key" not in fake.requests[0].body


async def test_a_slow_or_failing_translator_leaves_the_prompt(fake: FakeTranslator) -> None:
    translator = Translator(url=fake.base_url, timeout=0.3)
    try:
        fake.delay = 1.0
        slow = await translator.translate("рыжая лиса")
        fake.delay, fake.status = 0.0, 502
        broken = await translator.translate("рыжая лиса")
    finally:
        await translator.aclose()
        await asyncio.sleep(0)
    assert (slow.text, slow.failed) == ("рыжая лиса", True)
    assert (broken.text, broken.failed) == ("рыжая лиса", True)


def test_settings_defaults_and_parsing() -> None:
    settings = Settings(_env_file=None, bot_token="1:x")
    assert settings.translate_url is None and settings.translate_timeout == 5.0
    assert settings.allowed_speeds == ["relax", "fast", "turbo"]
    narrowed = Settings(
        _env_file=None,
        bot_token="1:x",
        allowed_speeds="Relax, fast",
        translate_url="http://tr.local:5000/",
    )
    assert narrowed.allowed_speeds == ["relax", "fast"]
    assert narrowed.translate_url == "http://tr.local:5000"
    with pytest.raises(ValueError, match="allowed_speeds"):
        Settings(_env_file=None, bot_token="1:x", allowed_speeds="warp")
