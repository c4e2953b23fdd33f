"""The playground page's inline mode over HTTP: `@bot query` to a real aiogram bot, and back."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Sized
from dataclasses import dataclass, field

import httpx
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BufferedInputFile,
    ChosenInlineResult,
    InlineQuery,
    InlineQueryResultArticle,
    InlineQueryResultCachedPhoto,
    InlineQueryResultsButton,
    InputTextMessageContent,
    Message,
)
from aiohttp import web
from PIL import Image

from bot.playground.emulator import FakeTelegram, JSONDict
from bot.playground.page import Cast, ChatPage

ANN, BOB = 1001, 1002
GROUP = -1001234
# Short, so the unanswered query's test does not wait Telegram's ten seconds.
INLINE_SECONDS = 1.0


@dataclass
class Heard:
    """What the bot saw: inline queries, messages sent via it, chosen results."""

    chat_types: list[str] = field(default_factory=list)
    via_bot: list[Message] = field(default_factory=list)
    chosen: list[ChosenInlineResult] = field(default_factory=list)
    silent: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Playground:
    """Telegram, the page's API and a polling bot, all on one local server."""

    telegram: FakeTelegram
    http: httpx.AsyncClient
    bot: Bot
    heard: Heard
    file_id: str

    async def post(self, path: str, body: JSONDict) -> httpx.Response:
        """POST JSON to one of the page's routes."""
        return await self.http.post(path, json=body)

    async def until(self, seen: Sized, count: int) -> None:
        """Wait until the bot has heard `count` things of one kind."""
        while len(seen) < count:
            self.heard.changed.clear()
            await asyncio.wait_for(self.heard.changed.wait(), 10)


def jpeg() -> bytes:
    """A small real JPEG."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 120, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


def inline_router(heard: Heard, file_id: str) -> Router:
    """Inline mode: "cat" pages a photo, then an article; "none" a button; "silent" nothing."""
    router = Router()

    @router.inline_query()
    async def answer(query: InlineQuery) -> None:
        heard.chat_types.append(str(query.chat_type))
        heard.changed.set()
        if query.query == "silent":
            heard.silent.put_nowait(query.id)
            return
        if query.query == "none":
            button = InlineQueryResultsButton(text="Open the bot", start_parameter="inline")
            await query.answer([], is_personal=True, button=button)
            return
        photo = InlineQueryResultCachedPhoto(
            id="photo", photo_file_id=file_id, caption="<b>a cat</b>", parse_mode="HTML"
        )
        text = InputTextMessageContent(message_text="<i>purr</i>", parse_mode="HTML")
        article = InlineQueryResultArticle(id="text", title="Purr", input_message_content=text)
        if query.offset:
            await query.answer([article], is_personal=True)
        else:
            await query.answer([photo], is_personal=True, next_offset="more")

    @router.message(F.via_bot)
    async def via(message: Message) -> None:
        heard.via_bot.append(message)
        heard.changed.set()

    @router.chosen_inline_result()
    async def chosen(result: ChosenInlineResult) -> None:
        heard.chosen.append(result)
        heard.changed.set()

    return router


@pytest.fixture
async def playground() -> AsyncIterator[Playground]:
    """The page and Telegram served together, as `python -m bot.playground` serves them."""
    telegram = FakeTelegram()
    ann, bob = telegram.user(ANN, "Ann"), telegram.user(BOB, "Bob")
    telegram.private_chat(ann)
    telegram.private_chat(bob)
    telegram.group_chat(GROUP, "Group")
    cast = Cast(
        chats=[
            {"id": ANN, "title": "Ann", "members": [ANN]},
            {"id": GROUP, "title": "Group", "members": [ANN, BOB]},
        ]
    )
    app = web.Application()
    telegram.register(app)
    ChatPage(telegram, cast, inline_seconds=INLINE_SECONDS).register(app)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    telegram.base_url = f"http://127.0.0.1:{port}"
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.base_url))
    bot = Bot(telegram.token, session=session)
    photo = await bot.send_photo(ANN, BufferedInputFile(jpeg(), "cat.jpg"))
    assert photo.photo is not None
    heard = Heard()
    dp = Dispatcher()
    dp.include_router(inline_router(heard, photo.photo[-1].file_id))
    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=1)
    )
    try:
        async with httpx.AsyncClient(base_url=telegram.base_url) as http:
            yield Playground(telegram, http, bot, heard, photo.photo[-1].file_id)
    finally:
        await dp.stop_polling()
        await polling
        await session.close()
        await runner.cleanup()


async def test_a_query_pages_its_answer_and_a_choice_goes_into_the_chat_via_the_bot(
    playground: Playground,
) -> None:
    telegram, heard = playground.telegram, playground.heard
    first = await playground.post(
        "/api/inline", {"chat_id": GROUP, "user_id": ANN, "query": "cat"}
    )
    assert first.status_code == 200, first.text
    page = first.json()
    assert [result["photo_file_id"] for result in page["results"]] == [playground.file_id]
    assert page["next_offset"] == "more" and "button" not in page
    # Scrolling on: a new query, with the offset the bot gave.
    more = await playground.post(
        "/api/inline", {"chat_id": GROUP, "user_id": ANN, "query": "cat", "offset": "more"}
    )
    assert [result["id"] for result in more.json()["results"]] == ["text"]
    assert heard.chat_types == ["supergroup", "supergroup"]

    # Only the one who typed the query sees its results; only results it holds can be sent.
    for user, result_id, error in (
        (BOB, "photo", "only the user who typed"),
        (ANN, "text", "no result 'text'"),
    ):
        refused = await playground.post(
            "/api/inline/choose",
            {
                "chat_id": GROUP,
                "user_id": user,
                "query_id": page["query_id"],
                "result_id": result_id,
            },
        )
        assert refused.status_code == 400 and error in refused.json()["error"]

    chosen = await playground.post(
        "/api/inline/choose",
        {"chat_id": GROUP, "user_id": ANN, "query_id": page["query_id"], "result_id": "photo"},
    )
    message = chosen.json()["message"]
    assert message["from"]["id"] == ANN and message["via_bot"] == telegram.bot_user
    assert message["photo"][-1]["file_id"] == playground.file_id
    assert message["caption"] == "a cat"
    assert message["caption_entities"] == [{"type": "bold", "offset": 0, "length": 5}]
    assert "reply_markup" not in message
    assert telegram.history(GROUP)[-1] == message
    # The bot sees the message in its chat, via itself; no feedback, as BotFather left it off.
    await playground.until(heard.via_bot, 1)
    assert heard.via_bot[0].via_bot is not None
    assert heard.via_bot[0].via_bot.username == telegram.bot_username

    # With inline feedback on, the choice also reaches the bot, with the query it answered.
    telegram.inline_feedback = True
    text_id = more.json()["query_id"]
    reply = await playground.post(
        "/api/inline/choose",
        {
            "chat_id": GROUP,
            "user_id": ANN,
            "query_id": text_id,
            "result_id": "text",
            "reply_to": message["message_id"],
        },
    )
    sent = reply.json()["message"]
    assert sent["text"] == "purr" and sent["entities"][0]["type"] == "italic"
    assert sent["reply_to_message"]["message_id"] == message["message_id"]
    await playground.until(heard.chosen, 1)
    assert [(c.result_id, c.query, c.from_user.id) for c in heard.chosen] == [("text", "cat", ANN)]
    assert heard.chosen[0].inline_message_id is None  # no buttons: nothing to edit it by


async def test_the_bots_own_chat_a_button_and_a_bot_that_does_not_answer(
    playground: Playground,
) -> None:
    heard = playground.heard
    empty = await playground.post("/api/inline", {"chat_id": ANN, "user_id": ANN, "query": "none"})
    assert empty.json()["results"] == []
    assert empty.json()["button"] == {"text": "Open the bot", "start_parameter": "inline"}
    assert heard.chat_types == ["sender"]

    silent = await playground.post(
        "/api/inline", {"chat_id": ANN, "user_id": ANN, "query": "silent"}
    )
    assert silent.status_code == 400
    assert silent.json()["error"] == "the bot did not answer the inline query in time"
    # The app gave up on it: an answer now is too late, as Telegram tells a slow bot.
    query_id = await asyncio.wait_for(heard.silent.get(), 10)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await playground.bot.answer_inline_query(query_id, [])

    for body, error in (
        ({"chat_id": ANN, "user_id": BOB, "query": "cat"}, "not in Ann"),
        ({"chat_id": ANN, "user_id": ANN, "query": "x" * 257}, "at most 256 characters"),
    ):
        refused = await playground.post("/api/inline", body)
        assert refused.status_code == 400 and error in refused.json()["error"]
