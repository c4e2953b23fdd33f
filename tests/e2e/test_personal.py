"""Personal settings applied to prompts, /history resending from file_id, and Russian."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.playground.emulator import FakeTelegram
from bot.userapi.simulator import Simulator
from tests.e2e.harness import BotHarness, button_data, button_labels, has_keyboard, make_harness


@pytest.fixture
async def bot(tg: FakeTelegram, sim: Simulator, tmp_path: Path) -> AsyncIterator[BotHarness]:
    async for runner in make_harness(tg, sim, tmp_path, webhooks=True):
        yield runner


def imagine_prompts(sim: Simulator) -> list[str]:
    return [json.loads(r.body)["prompt"] for r in sim.requests_to("/midjourney/v2/imagine")]


async def open_and_choose(
    tg: FakeTelegram, menu: dict[str, Any], opener: str, choice: str, user: dict[str, Any]
) -> dict[str, Any]:
    """Open a settings submenu and pick a choice; return the menu after the edit."""
    answers = len(tg.calls("answerCallbackQuery"))
    tg.press(menu, button_data(menu, opener), user)
    await tg.wait_for("editMessageReplyMarkup", count=len(tg.calls("editMessageReplyMarkup")) + 1)
    await tg.wait_for("answerCallbackQuery", count=answers + 1)
    submenu = tg.message(menu["chat"]["id"], menu["message_id"])
    assert submenu is not None
    texts = len(tg.calls("editMessageText"))
    tg.press(submenu, button_data(submenu, choice), user)
    await tg.wait_for("editMessageText", count=texts + 1)
    result = tg.message(menu["chat"]["id"], menu["message_id"])
    assert result is not None
    return result


async def test_settings_are_applied_unless_the_prompt_sets_them(
    bot: BotHarness, tg: FakeTelegram, sim: Simulator
) -> None:
    ann = tg.user(21, "Ann")
    chat = tg.private_chat(ann)
    tg.send_message(chat, ann, "/settings")
    menu = (await tg.wait_for("sendMessage", lambda c: "Your defaults" in c.params["text"])).result
    menu = await open_and_choose(tg, menu, "Aspect ratio", "16:9", ann)
    menu = await open_and_choose(tg, menu, "Model", "V6.1", ann)
    menu = await open_and_choose(tg, menu, "Stylize", "250", ann)
    menu = await open_and_choose(tg, menu, "Speed", "Relax", ann)
    texts = len(tg.calls("editMessageText"))
    tg.press(menu, button_data(menu, "Raw style: off"), ann)
    await tg.wait_for("editMessageText", count=texts + 1)
    menu = tg.message(chat["id"], menu["message_id"]) or {}
    assert "Aspect ratio: 16:9" in menu["text"]
    assert "Raw style: on" in menu["text"]
    assert ["Raw style: on"] in button_labels(menu)

    tg.send_message(chat, ann, "/imagine a red fox")
    tg.send_message(chat, ann, "/imagine a blue fox --ar 1:1 --niji 6 --s 50 --turbo")
    await bot.photo_reply(chat["id"], has_keyboard, count=2)
    assert sorted(imagine_prompts(sim)) == sorted(
        [
            "a red fox --ar 16:9 --v 6.1 --stylize 250 --style raw --relax",
            "a blue fox --ar 1:1 --niji 6 --s 50 --turbo --style raw",
        ]
    )

    # Back to Midjourney's defaults: nothing is added any more.
    for opener in ("Aspect ratio", "Model", "Stylize", "Speed"):
        menu = await open_and_choose(tg, menu, opener, "Default", ann)
    texts = len(tg.calls("editMessageText"))
    tg.press(menu, button_data(menu, "Raw style: on"), ann)
    await tg.wait_for("editMessageText", count=texts + 1)
    tg.send_message(chat, ann, "/imagine a green fox")
    await bot.photo_reply(chat["id"], has_keyboard, count=3)
    assert "a green fox" in imagine_prompts(sim)


async def test_hygiene_messages(bot: BotHarness, tg: FakeTelegram, sim: Simulator) -> None:
    ann = tg.user(22, "Ann")
    chat = tg.private_chat(ann)
    tg.send_message(chat, ann, "/imagine a cat --stylise 200")
    reply = await tg.wait_for("sendMessage", lambda c: "--stylise" in c.params["text"])
    assert "--stylize" in reply.params["text"]
    tg.send_message(chat, ann, "/imagine " + "a" * 4001)
    await tg.wait_for("sendMessage", lambda c: "too long" in c.params["text"])
    tg.send_message(chat, ann, "/imagine")
    await tg.wait_for("sendMessage", lambda c: "add a prompt" in c.params["text"])
    assert not sim.requests_to("/midjourney/v2/imagine")


async def test_history_resends_from_file_id(bot: BotHarness, tg: FakeTelegram) -> None:
    ann = tg.user(23, "Ann")
    chat = tg.private_chat(ann)
    tg.send_message(chat, ann, "/imagine a lighthouse")
    grid = await bot.photo_reply(chat["id"], has_keyboard)
    original_file_id = grid["photo"][-1]["file_id"]

    tg.send_message(chat, ann, "/history")
    listing = (
        await tg.wait_for("sendMessage", lambda c: "recent jobs" in c.params["text"])
    ).result
    assert "a lighthouse" in listing["text"]
    assert button_labels(listing) == [["↩️ 1"]]

    bob = tg.user(24, "Bob")
    tg.press(listing, button_data(listing, "↩️ 1"), bob)  # someone else's history: refused
    await tg.wait_for("answerCallbackQuery", lambda c: bool(c.params.get("show_alert")))

    tg.press(listing, button_data(listing, "↩️ 1"), ann)
    again = await bot.photo_reply(chat["id"], has_keyboard, count=2)
    resend = tg.calls("sendPhoto")[-1]
    assert resend.params["photo"] == original_file_id  # Telegram's copy, no upload, no URL
    assert not resend.files
    assert button_labels(again) == button_labels(grid)
    # The resent buttons work like the original ones.
    tg.press(again, button_data(again, "U1"), ann)
    await bot.photo_reply(chat["id"], has_keyboard, count=3)


async def test_a_russian_user_sees_russian(bot: BotHarness, tg: FakeTelegram) -> None:
    ivan = tg.user(25, "Иван", language_code="ru")
    chat = tg.private_chat(ivan)
    tg.send_message(chat, ivan, "/start")
    start = await tg.wait_for("sendMessage", lambda c: c.params["chat_id"] == chat["id"])
    assert "Отправьте" in start.params["text"]

    tg.send_message(chat, ivan, "/imagine маяк в шторм")
    status = await tg.wait_for(
        "sendMessage", lambda c: c.params["chat_id"] == chat["id"] and "маяк" in c.params["text"]
    )
    assert "Midjourney" in status.params["text"]
    assert "Sending" not in status.params["text"]
    grid = await bot.photo_reply(chat["id"], has_keyboard)
    assert grid["caption"].startswith("Генерация")
    assert button_labels(grid)[0] == ["U1", "U2", "U3", "U4"]  # Midjourney's labels stay

    tg.send_message(chat, ivan, "/settings")
    menu = await tg.wait_for(
        "sendMessage",
        lambda c: c.params["chat_id"] == chat["id"] and has_keyboard(c),
    )
    assert "Соотношение сторон" in button_labels(menu.result)[0][0]

    # /language switches to English whatever the app's language.
    tg.send_message(chat, ivan, "/language")
    picker = await tg.wait_for(
        "sendMessage", lambda c: "English" in str(c.params.get("reply_markup"))
    )
    tg.press(picker.result, button_data(picker.result, "English"), ivan)
    await tg.wait_for("editMessageText", lambda c: "Your defaults" in c.params["text"])
    tg.send_message(chat, ivan, "/help")
    await tg.wait_for(
        "sendMessage",
        lambda c: (
            "Send <code>/imagine</code>" in str(c.params.get("text"))
            or "Send /imagine" in str(c.params.get("text"))
        ),
    )


async def test_original_files_setting_sends_upscales_as_documents(
    bot: BotHarness, tg: FakeTelegram
) -> None:
    ann = tg.user(26, "Ann")
    chat = tg.private_chat(ann)
    tg.send_message(chat, ann, "/imagine a small boat")
    grid = await bot.photo_reply(chat["id"], has_keyboard)
    tg.press(grid, button_data(grid, "U1"), ann)
    await bot.photo_reply(chat["id"], has_keyboard, count=2)
    assert not tg.calls("sendDocument")  # a small upscale fits as a photo: no extra file

    tg.send_message(chat, ann, "/settings")
    menu = (await tg.wait_for("sendMessage", lambda c: "Your defaults" in c.params["text"])).result
    texts = len(tg.calls("editMessageText"))
    tg.press(menu, button_data(menu, "Original files: off"), ann)
    await tg.wait_for("editMessageText", count=texts + 1)

    tg.press(grid, button_data(grid, "U2"), ann)
    upscale = await bot.photo_reply(chat["id"], has_keyboard, count=3)
    document = await tg.wait_for("sendDocument", lambda c: c.ok)
    assert document.result["reply_to_message"]["message_id"] == upscale["message_id"]
