"""The fake Telegram server, driven by a real aiogram Bot over real HTTP."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import CommandStart
from aiogram.methods import SendMessage
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQuery,
    InlineQueryResultCachedPhoto,
    InlineQueryResultsButton,
    InputMediaPhoto,
    Message,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from PIL import Image

from bot.playground.emulator import ApiCall, FakeTelegram

USER_ID = 1001


def png(width: int, height: int) -> bytes:
    """A real PNG of the given size."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def keyboard(*datas: str) -> InlineKeyboardMarkup:
    """One row of callback buttons labelled by their data."""
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=d, callback_data=d) for d in datas]]
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    """A running fake server."""
    server = FakeTelegram()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    """A real aiogram Bot pointed at the fake server."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))
    real_bot = Bot(fake.token, session=session)
    yield real_bot
    await session.close()


@pytest.fixture
def chat(fake: FakeTelegram) -> dict[str, object]:
    """Ann's private chat with the bot."""
    return fake.private_chat(fake.user(USER_ID, username="ann"))


async def test_get_me_describes_the_bot(fake: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (fake.bot_id, fake.bot_username, True)
    assert fake.requests[-1].method == "getMe"


async def test_wrong_token_and_unknown_method(fake: FakeTelegram) -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))
    wrong = Bot("42:WRONG", session=session)
    with pytest.raises(TelegramUnauthorizedError):
        await wrong.get_me()
    await session.close()
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{fake.base_url}/bot{fake.token}/noSuchMethod") as resp,
    ):
        assert resp.status == 404
        assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_polling_dispatcher_gets_start_and_button_press(
    fake: FakeTelegram, bot: Bot
) -> None:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer("Hello!", reply_markup=keyboard("v1:go"))

    @router.callback_query(F.data == "v1:go")
    async def go(query: CallbackQuery) -> None:
        await query.answer("Going")
        assert isinstance(query.message, Message)
        await query.message.edit_text("Gone", reply_markup=None)

    dp = Dispatcher()
    dp.include_router(router)
    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=1)
    )
    try:
        ann = fake.user(USER_ID)
        chat = fake.private_chat(ann)
        sent = fake.send_message(chat, ann, "/start")
        assert sent["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
        call = await fake.wait_for("sendMessage")
        assert call.params["chat_id"] == USER_ID
        assert call.params["text"] == "Hello!"
        answer = call.result
        assert answer["message_id"] == sent["message_id"] + 1
        assert answer["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "v1:go"

        query_id = fake.press(answer, "v1:go", ann)
        edit = await fake.wait_for("editMessageText")
        assert edit.ok
        assert fake.callback_answer(query_id) is not None
        assert fake.callback_answer(query_id)["text"] == "Going"  # type: ignore[index]
        current = fake.message(USER_ID, answer["message_id"])
        assert current is not None
        assert current["text"] == "Gone"
        assert "reply_markup" not in current
        # Polling acknowledges the handled updates with its next offset.
        await fake.wait_for("getUpdates", lambda c: c.params.get("offset", 0) > 2, timeout=5)
        assert fake.pending_updates == []
    finally:
        await dp.stop_polling()
        await polling


async def test_press_refuses_a_button_that_is_not_there(
    fake: FakeTelegram, bot: Bot, chat: dict[str, object]
) -> None:
    sent = await bot.send_message(USER_ID, "pick", reply_markup=keyboard("a"))
    with pytest.raises(ValueError, match="no button"):
        fake.press(sent.model_dump(mode="json", exclude_none=True), "b", fake.user(USER_ID))


async def test_send_photo_stores_real_dimensions_and_file_downloads(
    fake: FakeTelegram, bot: Bot, chat: dict[str, object]
) -> None:
    data = png(640, 480)
    message = await bot.send_photo(
        USER_ID, BufferedInputFile(data, "grid.png"), caption="<b>cat</b>", parse_mode="HTML"
    )
    assert message.photo is not None
    biggest = message.photo[-1]
    assert (biggest.width, biggest.height) == (640, 480)
    assert message.caption == "cat"
    assert message.caption_entities is not None
    assert message.caption_entities[0].type == "bold"
    call = fake.calls("sendPhoto")[0]
    [upload] = call.files.values()
    assert upload.data == data
    assert upload.filename == "grid.png"

    file = await bot.get_file(biggest.file_id)
    assert file.file_path is not None
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None
    assert downloaded.read() == data

    # Resending by file_id works and gives the same photo.
    again = await bot.send_photo(USER_ID, biggest.file_id)
    assert again.photo is not None
    assert again.photo[-1].file_id == biggest.file_id


async def test_file_download_needs_the_token(fake: FakeTelegram, bot: Bot) -> None:
    ann = fake.user(USER_ID)
    sent = fake.send_message(fake.private_chat(ann), ann, photo=png(50, 40))
    file = await bot.get_file(sent["photo"][-1]["file_id"])
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{fake.base_url}/file/bot1:nope/{file.file_path}") as resp,
    ):
        assert resp.status == 404


async def test_photo_limits(fake: FakeTelegram, bot: Bot, chat: dict[str, object]) -> None:
    with pytest.raises(TelegramBadRequest, match="PHOTO_INVALID_DIMENSIONS"):
        await bot.send_photo(USER_ID, BufferedInputFile(png(2100, 100), "thin.png"))
    big = png(10, 10) + b"\0" * (10 * 1024 * 1024)
    with pytest.raises(TelegramEntityTooLarge):
        await bot.send_photo(USER_ID, BufferedInputFile(big, "big.png"))
    with pytest.raises(TelegramBadRequest, match="wrong file identifier/HTTP URL specified"):
        await bot.send_photo(USER_ID, "https://cdn.example.com/grid.png")
    assert fake.bot_messages(USER_ID) == []
    assert [c.status for c in fake.calls("sendPhoto")] == [400, 413, 400]


async def test_text_caption_and_button_limits(
    fake: FakeTelegram, bot: Bot, chat: dict[str, object]
) -> None:
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(USER_ID, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(USER_ID, BufferedInputFile(png(8, 8), "a.png"), caption="c" * 1025)
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(USER_ID, "hi", reply_markup=keyboard("d" * 65))
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(999, "hi")
    assert (await bot.send_message(USER_ID, "x" * 4096)).message_id == 1


async def test_edits_and_their_errors(
    fake: FakeTelegram, bot: Bot, chat: dict[str, object]
) -> None:
    sent = await bot.send_message(USER_ID, "queued", reply_markup=keyboard("a"))
    edited = await bot.edit_message_text(
        text="50%", chat_id=USER_ID, message_id=sent.message_id, reply_markup=keyboard("a")
    )
    assert isinstance(edited, Message)
    assert edited.text == "50%"
    assert edited.edit_date is not None
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            text="50%", chat_id=USER_ID, message_id=sent.message_id, reply_markup=keyboard("a")
        )
    await bot.edit_message_reply_markup(
        chat_id=USER_ID, message_id=sent.message_id, reply_markup=keyboard("b")
    )
    state = fake.message(USER_ID, sent.message_id)
    assert state is not None
    assert state["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "b"

    photo = await bot.send_photo(USER_ID, BufferedInputFile(png(20, 20), "p.png"))
    with pytest.raises(TelegramBadRequest, match="there is no text in the message to edit"):
        await bot.edit_message_text(text="x", chat_id=USER_ID, message_id=photo.message_id)
    await bot.edit_message_caption(chat_id=USER_ID, message_id=photo.message_id, caption="done")
    media = await bot.edit_message_media(
        chat_id=USER_ID,
        message_id=photo.message_id,
        media=InputMediaPhoto(media=BufferedInputFile(png(30, 10), "n.png"), caption="new"),
    )
    assert isinstance(media, Message)
    assert media.photo is not None
    assert (media.photo[-1].width, media.photo[-1].height) == (30, 10)
    assert media.caption == "new"

    assert await bot.delete_message(USER_ID, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text(text="late", chat_id=USER_ID, message_id=sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text(text="never", chat_id=USER_ID, message_id=999)
    assert [m["message_id"] for m in fake.bot_messages(USER_ID)] == [photo.message_id]


async def test_fail_next_429_is_retry_after_and_not_applied(
    fake: FakeTelegram, bot: Bot, chat: dict[str, object]
) -> None:
    fake.fail_next("sendMessage", retry_after=3)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(USER_ID, "first")
    assert caught.value.retry_after == 3
    assert fake.bot_messages(USER_ID) == []
    second = await bot.send_message(USER_ID, "second")
    assert second.message_id == 1
    failed, ok = fake.calls("sendMessage")
    assert (failed.status, failed.response["parameters"]) == (429, {"retry_after": 3})
    assert failed.params["text"] == "first"
    assert ok.ok


async def test_drop_connection_is_a_network_error(
    fake: FakeTelegram, bot: Bot, chat: dict[str, object]
) -> None:
    fake.drop_connection_next("sendMessage")
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(USER_ID, "lost")
    assert (await bot.send_message(USER_ID, "kept")).text == "kept"
    assert [m["text"] for m in fake.bot_messages(USER_ID)] == ["kept"]


async def test_user_files_keep_their_size_for_the_download_limit(
    fake: FakeTelegram, bot: Bot
) -> None:
    ann = fake.user(USER_ID)
    sent = fake.send_message(
        fake.private_chat(ann),
        ann,
        document=(b"%PDF", "big.pdf", "application/pdf"),
        file_size=21 * 1024 * 1024,
    )
    with pytest.raises(TelegramBadRequest, match="file is too big"):
        await bot.get_file(sent["document"]["file_id"])


async def test_media_group_threads_and_replies(fake: FakeTelegram, bot: Bot) -> None:
    ann = fake.user(USER_ID)
    forum = fake.group_chat(-1001, "Studio", is_forum=True)
    asked = fake.send_message(forum, ann, "/imagine@mj_test_bot cat", message_thread_id=7)
    assert asked["entities"][0]["length"] == len("/imagine@mj_test_bot")
    album = await bot.send_media_group(
        -1001,
        [InputMediaPhoto(media=BufferedInputFile(png(10 + i, 10), f"{i}.png")) for i in range(3)],
        message_thread_id=7,
        reply_to_message_id=asked["message_id"],
    )
    assert len({m.media_group_id for m in album}) == 1
    assert [m.message_id for m in album] == [2, 3, 4]
    assert all(m.message_thread_id == 7 for m in album)
    assert album[0].reply_to_message is not None
    assert album[0].reply_to_message.message_id == asked["message_id"]
    assert album[2].photo is not None
    assert album[2].photo[-1].width == 12


async def test_commands_and_chat_members(fake: FakeTelegram, bot: Bot) -> None:
    group = fake.group_chat(-500, "Friends")
    fake.user(7, "Owner")
    fake.set_admin(-500, 7, "creator")
    await bot.set_my_commands([BotCommand(command="imagine", description="Draw")])
    await bot.set_my_commands(
        [BotCommand(command="accounts", description="Accounts")],
        scope=BotCommandScopeChat(chat_id=7),
    )
    assert [c.command for c in await bot.get_my_commands()] == ["imagine"]
    assert fake.commands({"type": "chat", "chat_id": 7})[0]["command"] == "accounts"
    assert (await bot.get_chat_member(group["id"], 7)).status == "creator"
    assert (await bot.get_chat_member(-500, 8)).status == "member"
    admins = await bot.get_chat_administrators(-500)
    assert [a.user.id for a in admins] == [7]
    assert (await bot.get_chat(-500)).title == "Friends"


async def test_webhook_pushes_with_secret_and_retries(fake: FakeTelegram, bot: Bot) -> None:
    seen: list[tuple[str | None, dict[str, object]]] = []

    async def receive(request: web.Request) -> web.Response:
        seen.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json()))
        # The first delivery fails so the fake must retry it.
        return web.Response(status=500 if len(seen) == 1 else 200)

    app = web.Application()
    app.router.add_post("/tg", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/tg", secret_token="s3cret")
        with pytest.raises(TelegramConflictError):
            await bot.get_updates()
        ann = fake.user(USER_ID)
        chat = fake.private_chat(ann)
        fake.send_message(chat, ann, "one")
        fake.send_message(chat, ann, "two")
        for _ in range(100):
            if len(seen) >= 3:
                break
            await asyncio.sleep(0.05)
        assert [(secret, body["message"]["text"]) for secret, body in seen] == [  # type: ignore[index]
            ("s3cret", "one"),
            ("s3cret", "one"),
            ("s3cret", "two"),
        ]
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 0
        assert info.last_error_message is not None
        assert "500" in info.last_error_message
        await bot.delete_webhook()
        assert await bot.get_updates(timeout=0) == []
    finally:
        await runner.cleanup()


async def test_webhook_mode_with_aiogram_handler_and_reply_in_response(
    fake: FakeTelegram, bot: Bot
) -> None:
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message) -> SendMessage:
        # Returning the method makes aiogram answer it inside the webhook response.
        return message.answer("Hi from webhook")

    app = web.Application()
    SimpleRequestHandler(dp, bot, handle_in_background=False, secret_token="tok").register(
        app, path="/hook"
    )
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="tok")
        ann = fake.user(USER_ID)
        fake.send_message(fake.private_chat(ann), ann, "/start")
        call = await fake.wait_for("sendMessage")
        assert call.params["text"] == "Hi from webhook"
        assert call.params["chat_id"] == USER_ID
        assert fake.bot_messages(USER_ID)[0]["text"] == "Hi from webhook"
        assert fake.webhook_deliveries[0].status == 200
    finally:
        await runner.cleanup()


async def test_stop_releases_a_pending_long_poll() -> None:
    server = FakeTelegram()
    await server.start()
    session = AiohttpSession(api=TelegramAPIServer.from_base(server.base_url))
    polling_bot = Bot(server.token, session=session)
    poll = asyncio.create_task(polling_bot.get_updates(timeout=30))
    await server.wait_long_poll()  # the request reached the server and waits
    started = asyncio.get_running_loop().time()
    await server.stop()
    assert await poll == []
    assert asyncio.get_running_loop().time() - started < 5
    await session.close()


async def test_long_poll_returns_when_an_update_arrives(fake: FakeTelegram, bot: Bot) -> None:
    ann = fake.user(USER_ID)
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await fake.wait_long_poll()
    fake.send_message(fake.private_chat(ann), ann, "wake")
    updates = await asyncio.wait_for(poll, 5)
    assert [u.message.text for u in updates if u.message] == ["wake"]
    # Not acknowledged yet: it comes again until an offset passes it.
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [updates[0].update_id]
    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == []


async def test_json_and_query_string_requests(fake: FakeTelegram) -> None:
    fake.private_chat(fake.user(USER_ID))
    markup = {"inline_keyboard": [[{"text": "U1", "callback_data": "u:1"}]]}
    url = f"{fake.base_url}/bot{fake.token}/SENDMESSAGE"
    async with aiohttp.ClientSession() as http:
        async with http.post(
            url, json={"chat_id": USER_ID, "text": "json", "reply_markup": markup}
        ) as resp:
            body = await resp.json()
        async with http.get(url, params={"chat_id": str(USER_ID), "text": "query"}) as resp:
            assert (await resp.json())["result"]["text"] == "query"
    assert body["result"]["reply_markup"] == markup
    assert [c.method for c in fake.requests] == ["sendMessage", "sendMessage"]
    second = await fake.wait_for("sendmessage", count=2, timeout=1)
    assert second.result["text"] == "query"
    with pytest.raises(TimeoutError):
        await fake.wait_for("sendMessage", count=3, timeout=0.1)
    assert fake.requests[1].params == {"chat_id": USER_ID, "text": "query"}


async def test_html_parse_mode_entities_and_errors(
    fake: FakeTelegram, bot: Bot, chat: dict[str, object]
) -> None:
    sent = await bot.send_message(USER_ID, "🐱 <i>a &lt;cat&gt;</i>", parse_mode="HTML")
    assert sent.text == "🐱 a <cat>"
    assert sent.entities is not None
    # Offsets count UTF-16 code units: the emoji takes two.
    assert (sent.entities[0].type, sent.entities[0].offset, sent.entities[0].length) == (
        "italic",
        3,
        7,
    )
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(USER_ID, "a <dog> prompt", parse_mode="HTML")


def test_api_call_helpers() -> None:
    call = ApiCall("getMe", {}, {}, {"ok": True, "result": {"id": 1}}, 0.0)
    assert call.ok
    assert call.result == {"id": 1}


async def test_inline_queries_reach_the_bot_and_its_answers_are_checked(
    fake: FakeTelegram, bot: Bot, chat: dict[str, object]
) -> None:
    ann = fake.user(USER_ID, username="ann")
    photo = await bot.send_photo(USER_ID, BufferedInputFile(png(64, 48), "a.png"))
    assert photo.photo is not None
    file_id = photo.photo[-1].file_id
    router = Router()

    @router.inline_query()
    async def share(query: InlineQuery) -> None:
        if query.query == "none":
            button = InlineQueryResultsButton(text="Open the bot", start_parameter="inline")
            await query.answer([], is_personal=True, cache_time=10, button=button)
            return
        result = InlineQueryResultCachedPhoto(
            id="1", photo_file_id=file_id, caption="<i>a cat</i>", parse_mode="HTML"
        )
        await query.answer([result], is_personal=True, cache_time=10, next_offset="1")

    dp = Dispatcher()
    dp.include_router(router)
    assert (await bot.get_me()).supports_inline_queries
    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=1)
    )
    try:
        query_id = fake.inline_query(ann, "cat")
        await fake.wait_for("answerInlineQuery")
        answer = fake.inline_answer(query_id)
        assert answer is not None
        assert answer["results"][0]["photo_file_id"] == file_id
        assert (answer["is_personal"], answer["cache_time"], answer["next_offset"]) == (
            True,
            10,
            "1",
        )
        empty = fake.inline_query(ann, "none")
        await fake.wait_for("answerInlineQuery", count=2)
        assert fake.inline_answer(empty) == {
            **fake.inline_answer(empty),  # type: ignore[dict-item]
            "results": [],
            "button": {"text": "Open the bot", "start_parameter": "inline"},
        }
        # The dispatcher asked for the update types it handles, inline queries among them.
        polls = fake.calls("getUpdates")
        assert "inline_query" in polls[-1].params["allowed_updates"]
    finally:
        await dp.stop_polling()
        await polling

    # Telegram's checks: once per query, cached files that exist and are of the right kind.
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_inline_query(query_id, [])
    document = await bot.send_document(USER_ID, BufferedInputFile(b"%PDF-1.4", "a.pdf"))
    assert document.document is not None

    def photo_of(
        n: int, photo_id: str, caption: str | None = None
    ) -> InlineQueryResultCachedPhoto:
        return InlineQueryResultCachedPhoto(id=str(n), photo_file_id=photo_id, caption=caption)

    for results, button, error in (
        ([photo_of(1, "AgACnope")], None, "wrong file identifier"),
        ([photo_of(1, file_id), photo_of(1, file_id)], None, "RESULT_ID_DUPLICATE"),
        ([photo_of(n, file_id) for n in range(51)], None, "RESULTS_TOO_MUCH"),
        ([photo_of(1, document.document.file_id)], None, "file of type Document as Photo"),
        ([photo_of(1, file_id, "x" * 1025)], None, "caption is too long"),
        ([], InlineQueryResultsButton(text="Open", start_parameter="a b"), "START_PARAM_INVALID"),
    ):
        with pytest.raises(TelegramBadRequest, match=error):
            await bot.answer_inline_query(fake.inline_query(ann), [*results], button=button)

    # A bot whose owner never turned inline mode on gets no queries: apps don't send them.
    fake.supports_inline_queries = False
    assert not (await bot.get_me()).supports_inline_queries
    with pytest.raises(ValueError, match="inline mode is off"):
        fake.inline_query(ann)


async def test_an_upload_arriving_in_pieces_is_taken(fake: FakeTelegram) -> None:
    # A file part read a few bytes, then a few more, then at length: aiohttp's multipart reader
    # then calls its own deprecated unread_data(), which must not become a 500.
    chat = fake.private_chat(fake.user(4242, "Ann"))
    boundary = "0123456789abcdef" * 2  # as long as aiohttp's own
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="chat_id"\r\n\r\n{chat["id"]}\r\n'
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="document"; filename="a.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    data = bytes(range(256)) * 80

    async def pieces() -> AsyncIterator[bytes]:
        yield head + data[:5]
        await asyncio.sleep(0.2)
        yield data[5:15]
        await asyncio.sleep(0.2)
        yield data[15:] + f"\r\n--{boundary}--\r\n".encode()

    url = f"{fake.base_url}/bot{fake.token}/sendDocument"
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=pieces(), headers=headers) as answer,
    ):
        assert answer.status == 200, await answer.text()
        sent = await answer.json()
    assert fake.file_bytes(sent["result"]["document"]["file_id"]) == data
