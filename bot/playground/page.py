"""The chat page: a Telegram app in the browser, playing its users against the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.playground.emulator import FakeTelegram, JSONDict
from bot.playground.emulator.wire import TelegramError

ASSETS = Path(__file__).parent / "assets"
# Telegram's albums hold at most ten items.
ALBUM_LIMIT = 10
# A comment line on the event stream this often keeps proxies and browsers from closing it.
PING_SECONDS = 15.0
# Telegram gives a bot ten seconds to answer a pre-checkout query.
CHECKOUT_SECONDS = 10.0
# How long an app waits for the bot's answer to an inline query (Telegram's apps give up too).
INLINE_SECONDS = 10.0
_CLOSING: JSONDict = {"type": "closing"}


class PageError(Exception):
    """A request the page should not have made; answered 400 with the reason."""


@dataclass(frozen=True)
class Cast:
    """The chats the page lists (id, title, members' user ids), in order."""

    chats: list[JSONDict]

    def chat(self, chat_id: Any) -> JSONDict:
        """The listed chat with this id."""
        for chat in self.chats:
            if str(chat["id"]) == str(chat_id):
                return chat
        raise PageError(f"no chat {chat_id} in the playground")

    def member(self, chat: JSONDict, user_id: Any) -> int:
        """The id of a member of the chat."""
        for member in chat["members"]:
            if str(member) == str(user_id):
                return int(member)
        raise PageError(f"user {user_id} is not in {chat['title']}")


class ChatPage:
    """The page's routes: files, the chats' state, sending, presses, payments, inline, events."""

    def __init__(
        self, telegram: FakeTelegram, cast: Cast, *, inline_seconds: float = INLINE_SECONDS
    ) -> None:
        """Serve `cast`'s chats of `telegram`; an inline query waits `inline_seconds`."""
        self._telegram = telegram
        self._cast = cast
        self._inline_seconds = inline_seconds
        self._streams: set[asyncio.Queue[JSONDict]] = set()

    def register(self, app: web.Application) -> None:
        """Add the page's routes to an aiohttp app."""
        app.router.add_get("/", self._index)
        app.router.add_static("/assets/", ASSETS)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/menu", self._menu)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/media/{file_id}", self._media)
        app.router.add_post("/api/send", self._send)
        app.router.add_post("/api/press", self._press)
        app.router.add_post("/api/pay", self._pay)
        app.router.add_post("/api/webapp", self._web_app)
        app.router.add_post("/api/inline", self._inline)
        app.router.add_post("/api/inline/choose", self._choose)
        app.on_shutdown.append(self._close_streams)

    # ------------------------------------------------------------------ reading

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(ASSETS / "index.html", headers={"Cache-Control": "no-cache"})

    async def _state(self, request: web.Request) -> web.Response:
        """The bot, the people, and every chat with its messages (the page starts from this)."""
        telegram = self._telegram
        people = {member for chat in self._cast.chats for member in chat["members"]}
        chats = []
        for listed in self._cast.chats:
            chat = next(c for c in telegram.chats() if c["id"] == listed["id"])
            chats.append(
                {**listed, "type": chat["type"], "messages": telegram.history(chat["id"])}
            )
        return web.json_response(
            {
                "bot": telegram.bot_user,
                "users": [u for u in map(telegram.known_user, sorted(people)) if u is not None],
                "chats": chats,
            }
        )

    async def _menu(self, request: web.Request) -> web.Response:
        """The command menu a user sees in a chat."""
        return await _answer(self._read_menu, request)

    async def _read_menu(self, request: web.Request) -> JSONDict:
        chat = self._cast.chat(request.query.get("chat_id"))
        user_id = self._cast.member(chat, request.query.get("user_id"))
        user = self._telegram.known_user(user_id) or {}
        menu = self._telegram.menu(chat["id"], user_id, user.get("language_code", ""))
        return {"commands": menu}

    async def _media(self, request: web.Request) -> web.StreamResponse:
        """A photo, video or file of a message, by its file_id."""
        file_id = request.match_info["file_id"]
        try:
            data = self._telegram.file_bytes(file_id)
        except KeyError:
            raise web.HTTPNotFound() from None
        return web.Response(
            body=data,
            content_type=self._telegram.file_type(file_id),
            headers={"Cache-Control": "private, max-age=3600"},
        )

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """What changes in the chats, as server-sent events, until the page or the server goes."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        with self._telegram.watch() as events:
            self._streams.add(events)
            try:
                await response.write(b": connected\n\n")
                while True:
                    try:
                        event = await asyncio.wait_for(events.get(), PING_SECONDS)
                    except TimeoutError:
                        await response.write(b": ping\n\n")
                        continue
                    if event is _CLOSING:
                        break
                    data = json.dumps(event, ensure_ascii=False)
                    await response.write(f"data: {data}\n\n".encode())
            except ConnectionError:
                pass  # the page was closed or reloaded: its stream ends here
            finally:
                self._streams.discard(events)
        return response

    async def _close_streams(self, app: web.Application) -> None:
        # Before the server waits for requests in flight: the streams would never end.
        for stream in self._streams:
            stream.put_nowait(_CLOSING)

    # ------------------------------------------------------------------ acting

    async def _send(self, request: web.Request) -> web.Response:
        """A user's message: text, or photos (one, or an album) with a caption; maybe a reply."""
        return await _answer(self._read_send, request)

    async def _read_send(self, request: web.Request) -> JSONDict:
        form = await request.post()
        chat = self._cast.chat(form.get("chat_id"))
        user = self._user(chat, form.get("user_id"))
        text = str(form.get("text") or "").strip()
        photos = [
            part.file.read()
            for part in form.getall("photo", [])
            if isinstance(part, web.FileField)
        ]
        reply_to = _int_or_none(form.get("reply_to"))
        if not text and not photos:
            raise PageError("nothing to send")
        if len(photos) > ALBUM_LIMIT:
            raise PageError(f"an album holds at most {ALBUM_LIMIT} photos")
        chat_object = self._chat_object(chat)
        send = self._telegram.send_message
        if not photos:
            return {"messages": [send(chat_object, user, text, reply_to_message_id=reply_to)]}
        # An album is one message per photo sharing a media_group_id, the caption on the first.
        group = f"album{secrets.randbits(48)}" if len(photos) > 1 else None
        return {
            "messages": [
                send(
                    chat_object,
                    user,
                    caption=(text or None) if number == 0 else None,
                    photo=photo,
                    reply_to_message_id=reply_to,
                    media_group_id=group,
                )
                for number, photo in enumerate(photos)
            ]
        }

    async def _press(self, request: web.Request) -> web.Response:
        """A user pressing an inline button; the bot's answer comes as an `answer` event."""
        return await _answer(self._read_press, request)

    async def _read_press(self, request: web.Request) -> JSONDict:
        body = await _json(request)
        chat = self._cast.chat(body.get("chat_id"))
        user = self._user(chat, body.get("user_id"))
        message = self._message(chat, body.get("message_id"))
        return {"query_id": self._telegram.press(message, str(body.get("data")), user)}

    async def _pay(self, request: web.Request) -> web.Response:
        """A user pressing Pay on an invoice: pre-checkout, then the payment if the bot agrees."""
        return await _answer(self._read_pay, request)

    async def _read_pay(self, request: web.Request) -> JSONDict:
        body = await _json(request)
        chat = self._cast.chat(body.get("chat_id"))
        user = self._user(chat, body.get("user_id"))
        message = self._message(chat, body.get("message_id"))
        try:
            answer = await self._telegram.pay(message, user, timeout=CHECKOUT_SECONDS)
        except TimeoutError:
            raise PageError("the bot did not answer the pre-checkout query in time") from None
        return {"ok": bool(answer.get("ok")), "error_message": answer.get("error_message")}

    async def _web_app(self, request: web.Request) -> web.Response:
        """The signed initData a user's app hands a Mini App it opens."""
        return await _answer(self._read_web_app, request)

    async def _read_web_app(self, request: web.Request) -> JSONDict:
        body = await _json(request)
        chat = self._cast.chat(body.get("chat_id"))
        user = self._user(chat, body.get("user_id"))
        return {"init_data": self._telegram.open_web_app(user)}

    async def _inline(self, request: web.Request) -> web.Response:
        """A user typing `@bot query` in a chat: the bot's answer, once it comes."""
        return await _answer(self._read_inline, request)

    async def _read_inline(self, request: web.Request) -> JSONDict:
        body = await _json(request)
        chat = self._cast.chat(body.get("chat_id"))
        user = self._user(chat, body.get("user_id"))
        telegram = self._telegram
        query_id = telegram.inline_query(
            user,
            str(body.get("query") or ""),
            offset=str(body.get("offset") or ""),
            chat_type=telegram.inline_chat_type(self._chat_object(chat), user),
        )
        try:
            answer = await telegram.wait_inline_answer(query_id, self._inline_seconds)
        except TimeoutError:
            raise PageError("the bot did not answer the inline query in time") from None
        fields = ("results", "next_offset", "button")
        return {"query_id": query_id, **{key: answer[key] for key in fields if key in answer}}

    async def _choose(self, request: web.Request) -> web.Response:
        """A user picking an inline result: it goes into the chat as theirs, "via @bot"."""
        return await _answer(self._read_choose, request)

    async def _read_choose(self, request: web.Request) -> JSONDict:
        body = await _json(request)
        chat = self._cast.chat(body.get("chat_id"))
        user = self._user(chat, body.get("user_id"))
        message = self._telegram.choose_inline_result(
            self._chat_object(chat),
            user,
            str(body.get("query_id")),
            str(body.get("result_id")),
            reply_to_message_id=_int_or_none(body.get("reply_to")),
        )
        return {"message": message}

    # ------------------------------------------------------------------ lookups

    def _user(self, chat: JSONDict, user_id: Any) -> JSONDict:
        user = self._telegram.known_user(self._cast.member(chat, user_id))
        if user is None:
            raise PageError(f"Telegram does not know user {user_id}")
        return user

    def _chat_object(self, chat: JSONDict) -> JSONDict:
        return next(c for c in self._telegram.chats() if c["id"] == chat["id"])

    def _message(self, chat: JSONDict, message_id: Any) -> JSONDict:
        number = _int_or_none(message_id)
        message = self._telegram.message(chat["id"], number) if number is not None else None
        if message is None:
            raise PageError(f"no message {message_id} in {chat['title']}")
        return message


async def _answer(
    read: Callable[[web.Request], Awaitable[JSONDict]], request: web.Request
) -> web.Response:
    """Run a route's body: its result as JSON, or 400 with what was wrong."""
    try:
        return web.json_response(await read(request))
    except PageError as error:
        return web.json_response({"error": str(error)}, status=400)
    except TelegramError as error:
        # What Telegram's app would say (a photo it can't take, a button that is gone...).
        return web.json_response({"error": error.description}, status=400)
    except ValueError as error:
        return web.json_response({"error": str(error)}, status=400)


async def _json(request: web.Request) -> JSONDict:
    with contextlib.suppress(ValueError):
        body = await request.json()
        if isinstance(body, dict):
            return body
    raise PageError("the request body must be a JSON object")


def _int_or_none(value: Any) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.lstrip("-").isdigit() else None
