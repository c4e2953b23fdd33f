"""The emulator's world: users, chats, messages, and whoever watches them change."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
from aiohttp import web

from bot.playground.emulator.wire import (
    ApiCall,
    Failure,
    JSONDict,
    Req,
    StoredFile,
    TelegramError,
    UploadedFile,
    WebhookDelivery,
    bad,
)


class World:
    """Everything Telegram knows about one bot, kept in memory."""

    # BotFather's /setinlinefeedback: off, as for a new bot. On, a user's choice of an inline
    # result also reaches the bot as chosen_inline_result (if its allowed_updates take it).
    inline_feedback = False

    def __init__(
        self,
        token: str = "123456:TEST-token",
        bot_username: str = "mj_test_bot",
        *,
        bot_name: str = "MJ Test Bot",
        test_environment: bool = False,
    ) -> None:
        """Prepare an empty world; call `start()` to listen.

        `test_environment` plays Telegram's test environment, where Mini Apps may be served
        over plain HTTP (the main one allows only HTTPS links).
        """
        self.token = token
        self.bot_name = bot_name
        self.test_environment = test_environment
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_username = bot_username
        self.base_url = ""
        self.requests: list[ApiCall] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        # Seconds between webhook retries; Telegram backs off longer, tests want speed.
        self.webhook_retry_delay = 0.1
        self.webhook_timeout = 10.0
        # BotFather's /setinline: on here, so the playground and the tests can type `@bot`
        # (a new real bot has it off until its owner turns it on).
        self.supports_inline_queries = True

        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._changed = asyncio.Event()
        self._closing = False

        self._update_ids = itertools.count(1)
        self._pending: deque[JSONDict] = deque()
        self._allowed_updates: list[str] = []
        self._poll_generation = 0

        self._webhook_url = ""
        self._webhook_secret: str | None = None
        self._webhook_max_connections = 40
        self._webhook_last_error: tuple[int, str] | None = None
        self._pusher: asyncio.Task[None] | None = None

        self._users: dict[int, JSONDict] = {}
        self._chats: dict[int, JSONDict] = {}
        self._admins: dict[int, dict[int, str]] = {}
        self._blocked: set[int] = set()
        self._message_ids: dict[int, int] = {}
        self._messages: dict[tuple[int, int], JSONDict] = {}
        self._bot_messages: list[tuple[int, int]] = []
        self._deleted: set[tuple[int, int]] = set()
        self._files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self._file_counter = itertools.count(1)
        self._callbacks: dict[str, JSONDict | None] = {}
        # Inline queries: query id -> the bot's answerInlineQuery, None while unanswered.
        self._inline_queries: dict[str, JSONDict | None] = {}
        self._inline_asked: dict[str, JSONDict] = {}  # ... and the inline_query itself
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        # setChatMenuButton: by chat id, None for the default every private chat shows.
        self.menu_buttons: dict[int | None, JSONDict] = {}
        self._failures: dict[str, deque[Failure]] = {}
        self._drops: dict[str, int] = {}
        self._lost_answers: dict[str, int] = {}
        # File downloads to fail, in order: an HTTP status, or 0 to drop the connection.
        self._file_failures: deque[int] = deque()
        self.file_downloads = 0
        # Payments in Stars: pre-checkout queries (query id -> the bot's answer, None while
        # unanswered) and successful payments (charge id -> who paid what, refunded or not).
        self._checkouts: dict[str, JSONDict | None] = {}
        self._star_payments: dict[str, JSONDict] = {}
        self._payers: dict[str, tuple[JSONDict, str]] = {}
        # Invoices the bot sent, by (chat id, message id): their payload, which the Message
        # itself does not show (the buyer's app sends it back with the payment).
        self._invoices: dict[tuple[int, int], str] = {}
        # Method name (lower case) -> (its name as Telegram spells it, its handler).
        self._handlers: dict[str, tuple[str, Callable[[Req], Awaitable[Any]]]] = {}
        # Whoever shows the chats (the playground's page) hears of each change.
        self._watchers: set[asyncio.Queue[JSONDict]] = set()

    @property
    def bot_user(self) -> JSONDict:
        """The bot as a Telegram User."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_name,
            "username": self.bot_username,
        }

    def message(self, chat_id: int, message_id: int) -> JSONDict | None:
        """Current state of a message (after edits), or None if unknown or deleted."""
        key = (chat_id, message_id)
        if key in self._deleted or key not in self._messages:
            return None
        return copy.deepcopy(self._messages[key])

    def history(self, chat_id: int) -> list[JSONDict]:
        """Every message of a chat not deleted, the users' and the bot's, oldest first."""
        keys = sorted(key for key in self._messages if key[0] == chat_id)
        return [copy.deepcopy(self._messages[key]) for key in keys if key not in self._deleted]

    def known_user(self, user_id: int) -> JSONDict | None:
        """A user Telegram knows (made by `user` or seen in a message), or None."""
        user = self._users.get(user_id)
        return dict(user) if user is not None else None

    def chats(self) -> list[JSONDict]:
        """Every chat Telegram knows, private and group."""
        return copy.deepcopy(list(self._chats.values()))

    @contextlib.contextmanager
    def watch(self) -> Iterator[asyncio.Queue[JSONDict]]:
        """Changes a Telegram app would show, as events, for as long as the block runs.

        `message` (new or edited: the message as it is now; with `keyboard` when a reply
        keyboard or force_reply came with it), `delete`, `answer` (to a button press),
        `action` (typing...) and `commands` (the menu changed).
        """
        queue: asyncio.Queue[JSONDict] = asyncio.Queue()
        self._watchers.add(queue)
        try:
            yield queue
        finally:
            self._watchers.discard(queue)

    def private_chat(self, user: JSONDict) -> JSONDict:
        """The private chat of a user with the bot."""
        chat: JSONDict = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        if "username" in user:
            chat["username"] = user["username"]
        self._chats[chat["id"]] = chat
        return dict(chat)

    def user(
        self,
        user_id: int,
        first_name: str = "Ann",
        username: str | None = None,
        language_code: str = "en",
    ) -> JSONDict:
        """Make (and remember) a Telegram User."""
        user: JSONDict = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "language_code": language_code,
        }
        if username:
            user["username"] = username
        self._users[user_id] = user
        return dict(user)

    def queue_update(self, body: JSONDict) -> JSONDict:
        """Queue any update body (e.g. {"my_chat_member": ...}); update_id is assigned."""
        update = {"update_id": next(self._update_ids), **body}
        self._pending.append(update)
        self._notify()
        return update

    def _publish(self, kind: str, **fields: Any) -> None:
        event: JSONDict = {"type": kind, **copy.deepcopy(fields)}
        for queue in self._watchers:
            queue.put_nowait(event)

    def _store(self, message: JSONDict, keyboard: JSONDict | None = None) -> None:
        """Keep a new message (a user's or the bot's) and show it to the watchers.

        `keyboard`: a reply keyboard or force_reply sent with it, which only the app sees.
        """
        self._messages[(message["chat"]["id"], message["message_id"])] = message
        if keyboard is None:
            self._publish("message", message=message)
        else:
            self._publish("message", message=message, keyboard=keyboard)

    def _delete(self, key: tuple[int, int]) -> None:
        self._deleted.add(key)
        self._publish("delete", chat_id=key[0], message_id=key[1])
        self._notify()

    def _notify(self) -> None:
        # A fresh event per change lets sync code wake every async waiter.
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, at_most: float | None) -> None:
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), at_most)

    def _next_message_id(self, chat_id: int) -> int:
        self._message_ids[chat_id] = self._message_ids.get(chat_id, 0) + 1
        return self._message_ids[chat_id]

    def _record(
        self,
        name: str,
        params: JSONDict,
        files: dict[str, UploadedFile],
        body: JSONDict,
        status: int,
    ) -> None:
        call = ApiCall(name, params, files, copy.deepcopy(body), time.monotonic(), status)
        self.requests.append(call)
        self._notify()

    async def _dispatch(
        self, name: str, params: JSONDict, files: dict[str, UploadedFile]
    ) -> tuple[int, JSONDict]:
        entry = self._handlers.get(name.lower())
        failures = self._failures.get(name.lower())
        try:
            if entry is None:
                raise TelegramError(404, "Not Found")
            if failures:
                failure = failures.popleft()
                raise TelegramError(failure.error_code, failure.description, failure.retry_after)
            result = await entry[1](Req(params, files))
        except TelegramError as exc:
            status, body = exc.error_code, exc.body()
        else:
            status, body = 200, {"ok": True, "result": result}
        self._record(name, params, files, body, status)
        return status, body

    def _chat(self, req: Req) -> JSONDict:
        chat_id = req.get("chat_id")
        if chat_id is None or chat_id == "":
            raise bad("chat_id is empty")
        if isinstance(chat_id, str):
            found = [c for c in self._chats.values() if f"@{c.get('username')}" == chat_id]
            if not found:
                raise bad("chat not found")
            chat = found[0]
        else:
            chat_found = self._chats.get(chat_id)
            if chat_found is None:
                raise bad("chat not found")
            chat = chat_found
        if chat["type"] == "private" and chat["id"] in self._blocked:
            raise TelegramError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _emit(
        self,
        req: Req,
        chat: JSONDict,
        content: JSONDict,
        markup: JSONDict | None,
        reply: JSONDict | None,
    ) -> JSONDict:
        """Store a new bot message (all validation done) and return it."""
        message: JSONDict = {
            "message_id": self._next_message_id(chat["id"]),
            "from": self.bot_user,
            "chat": dict(chat),
            "date": int(time.time()),
        }
        thread_id = req.get_int("message_thread_id")
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            if chat.get("is_forum"):
                message["is_topic_message"] = True
        if reply is not None:
            message["reply_to_message"] = reply
        message.update(content)
        if markup is not None:
            message["reply_markup"] = markup
        requested = req.get("reply_markup")
        # Reply keyboards and force_reply are not part of the Message; the app shows them.
        keyboard = requested if isinstance(requested, dict) and markup is None else None
        self._store(message, keyboard)
        self._bot_messages.append((chat["id"], message["message_id"]))
        return copy.deepcopy(message)
