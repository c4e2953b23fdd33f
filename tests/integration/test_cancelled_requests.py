"""A request whose caller gave up keeps counting against Telegram's limits until its answer."""

from __future__ import annotations

import asyncio
from typing import Any

from aiogram import Bot

from bot.playground.emulator import LimitedTelegram
from bot.playground.emulator.wire import JSONDict, UploadedFile
from bot.telegram.ratelimit import Limits, Priority, RateLimiter, priority
from bot.telegram.session import create_session


class SlowToCount(LimitedTelegram):
    """Telegram taking its time before it reads (and counts) what is sent to one chat."""

    slow_chat: Any = None

    async def _dispatch(
        self, name: str, params: JSONDict, files: dict[str, UploadedFile]
    ) -> tuple[int, JSONDict]:
        if str(params.get("chat_id")) == str(self.slow_chat):
            await asyncio.sleep(0.3)
        return await super()._dispatch(name, params, files)


async def test_a_request_its_caller_gave_up_on_holds_its_slot_until_telegram_answers() -> None:
    tg = SlowToCount()
    await tg.start()
    chats = [tg.private_chat(tg.user(72_000 + n, f"User{n}"))["id"] for n in range(60)]
    tg.slow_chat = chats[29]
    limiter = RateLimiter(Limits())
    bot = Bot(tg.token, session=create_session(tg.base_url, limiter))
    try:
        # As results: no slot is kept back for anything more urgent, thirty go at once.
        with priority(Priority.RESULT):
            await send_and_give_up_on_one(bot, chats)
        assert len([call for call in tg.calls("sendMessage") if call.ok]) == 60
        assert tg.refused == []
    finally:
        await bot.session.close()
        await limiter.close()
        await tg.stop()


async def send_and_give_up_on_one(bot: Bot, chats: list[Any]) -> None:
    """Thirty messages, the last given up on while on its way; then thirty more."""
    await asyncio.gather(*(bot.send_message(chat, "first") for chat in chats[:29]))
    # The thirtieth is on its way when its caller gives up (as a progress edit does when its
    # job's result overtakes it): Telegram counts it all the same, a little later.
    given_up = asyncio.create_task(bot.send_message(chats[29], "given up on"))
    await asyncio.sleep(0.1)
    given_up.cancel()
    # Thirty more: none may go while Telegram still counts that one in its second.
    await asyncio.gather(*(bot.send_message(chat, "next") for chat in chats[30:]))
