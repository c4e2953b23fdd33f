"""What the emulator tells a Telegram app (the playground's page): events, menus, Pay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeChat,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    WebAppInfo,
)

from bot.playground.emulator import FakeTelegram, JSONDict

ANN = 1001
GROUP = -100777


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))
    yield Bot(fake.token, session=session)
    await session.close()


def drain(queue: asyncio.Queue[JSONDict]) -> list[JSONDict]:
    events = []
    while not queue.empty():
        events.append(queue.get_nowait())
    return events


async def test_watchers_see_messages_edits_deletions_and_answers(
    fake: FakeTelegram, bot: Bot
) -> None:
    ann = fake.user(ANN)
    chat = fake.private_chat(ann)
    with fake.watch() as events:
        mine = fake.send_message(chat, ann, "/start")
        markup = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Go", callback_data="go")]]
        )
        sent = await bot.send_message(ANN, "<b>Hi</b>", parse_mode="HTML", reply_markup=markup)
        await bot.edit_message_text("Bye", chat_id=ANN, message_id=sent.message_id)
        query_id = fake.press(fake.message(ANN, sent.message_id) or {}, "go", ann, check=False)
        await bot.answer_callback_query(query_id, "Done", show_alert=True)
        await bot.send_chat_action(ANN, "typing")
        await bot.delete_message(ANN, sent.message_id)
        seen = drain(events)
    after = fake.send_message(chat, ann, "not watched any more")

    kinds = [event["type"] for event in seen]
    assert kinds == ["message", "message", "message", "answer", "action", "delete"]
    assert seen[0]["message"] == mine
    assert seen[1]["message"]["text"] == "Hi"
    assert seen[1]["message"]["entities"] == [{"type": "bold", "offset": 0, "length": 2}]
    assert seen[2]["message"]["text"] == "Bye" and "edit_date" in seen[2]["message"]
    assert seen[3] == {
        "type": "answer",
        "query_id": query_id,
        "answer": {"callback_query_id": query_id, "text": "Done", "show_alert": True},
    }
    assert seen[4] == {"type": "action", "chat_id": ANN, "action": "typing"}
    assert seen[5] == {"type": "delete", "chat_id": ANN, "message_id": sent.message_id}
    assert events.empty()
    assert [m["message_id"] for m in fake.history(ANN)] == [
        mine["message_id"],
        after["message_id"],
    ]


async def test_a_force_reply_reaches_the_app_not_the_message(fake: FakeTelegram, bot: Bot) -> None:
    fake.private_chat(fake.user(ANN))
    with fake.watch() as events:
        sent = await bot.send_message(
            ANN, "Reply with the prompt", reply_markup=ForceReply(input_field_placeholder="a cat")
        )
        [event] = drain(events)
    assert event["keyboard"] == {"force_reply": True, "input_field_placeholder": "a cat"}
    assert sent.reply_markup is None
    assert "reply_markup" not in event["message"]


async def test_the_menu_is_the_narrowest_scope_in_the_users_language(
    fake: FakeTelegram, bot: Bot
) -> None:
    fake.private_chat(fake.user(ANN))
    fake.group_chat(GROUP, "Artists")
    everyone = [BotCommand(command="imagine", description="Create images")]
    russian = [BotCommand(command="imagine", description="Создать картинки")]
    admin = [*everyone, BotCommand(command="stats", description="Statistics")]
    groups = [BotCommand(command="group_buttons", description="Who may press")]
    with fake.watch() as events:
        await bot.set_my_commands(everyone)
        await bot.set_my_commands(russian, language_code="ru")
        await bot.set_my_commands(admin, scope=BotCommandScopeChat(chat_id=ANN))
        await bot.set_my_commands(groups, scope=BotCommandScopeAllGroupChats())
        assert [e["type"] for e in drain(events)] == ["commands"] * 4

    def names(found: list[Any]) -> list[str]:
        return [command["command"] for command in found]

    assert names(fake.menu(ANN, ANN)) == ["imagine", "stats"]
    assert names(fake.menu(2002, 2002)) == ["imagine"]
    assert fake.menu(2002, 2002, "ru")[0]["description"] == "Создать картинки"
    assert names(fake.menu(GROUP, ANN)) == ["group_buttons"]
    await bot.delete_my_commands(scope=BotCommandScopeAllGroupChats())
    assert names(fake.menu(GROUP, ANN)) == ["imagine"]


async def test_mini_apps_over_http_only_in_the_test_environment(bot: Bot) -> None:
    button = InlineKeyboardButton(text="Paint", web_app=WebAppInfo(url="http://127.0.0.1/app"))
    markup = InlineKeyboardMarkup(inline_keyboard=[[button]])
    main = FakeTelegram()
    test = FakeTelegram(test_environment=True)
    for fake in (main, test):
        await fake.start()
        fake.private_chat(fake.user(ANN))
    try:
        async with AiohttpSession(api=TelegramAPIServer.from_base(main.base_url)) as session:
            with pytest.raises(TelegramBadRequest, match="Only HTTPS links are allowed"):
                await Bot(main.token, session=session).send_message(ANN, "x", reply_markup=markup)
        async with AiohttpSession(api=TelegramAPIServer.from_base(test.base_url)) as session:
            sent = await Bot(test.token, session=session).send_message(
                ANN, "x", reply_markup=markup
            )
        assert sent.reply_markup is not None
    finally:
        await main.stop()
        await test.stop()


async def answer_checkouts(fake: FakeTelegram, bot: Bot, ok: bool) -> None:
    """Play the bot's side: answer the next pre-checkout query."""
    updates: list[JSONDict] = []
    while not updates:
        updates = [u for u in fake.pending_updates if "pre_checkout_query" in u]
        await asyncio.sleep(0.01)
    query = updates[0]["pre_checkout_query"]
    await bot.answer_pre_checkout_query(
        query["id"], ok=ok, error_message=None if ok else "Sold out"
    )


@pytest.mark.parametrize("ok", [True, False])
async def test_pay_runs_the_pre_checkout_then_the_payment(
    fake: FakeTelegram, bot: Bot, ok: bool
) -> None:
    ann = fake.user(ANN)
    chat = fake.private_chat(ann)
    invoice = await bot.send_invoice(
        ANN,
        title="50 credits",
        description="Fifty generations",
        payload="pack:50",
        currency="XTR",
        prices=[LabeledPrice(label="50 credits", amount=200)],
    )
    message = fake.message(ANN, invoice.message_id)
    assert message is not None
    bot_side = asyncio.create_task(answer_checkouts(fake, bot, ok))
    answer = await fake.pay(message, ann, timeout=5)
    await bot_side

    assert answer["ok"] is ok
    paid = [
        u["message"] for u in fake.pending_updates if "successful_payment" in u.get("message", {})
    ]
    if ok:
        [payment] = paid
        assert payment["successful_payment"]["invoice_payload"] == "pack:50"
        assert payment["successful_payment"]["total_amount"] == 200
        charge = payment["successful_payment"]["telegram_payment_charge_id"]
        assert fake.star_payment(charge) == {
            "user_id": ANN,
            "total_amount": 200,
            "refunded": False,
        }
    else:
        assert paid == []
        assert answer["error_message"] == "Sold out"
    with pytest.raises(ValueError, match="no invoice"):
        await fake.pay(fake.send_message(chat, ann, "not an invoice"), ann)
