"""A Telegram Bot API server in memory (the playground's and the tests'), spoken to over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import itertools
import json
import mimetypes
import re
import secrets
import time
import warnings
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image

JSONDict = dict[str, Any]

MB = 1024 * 1024
PHOTO_UPLOAD_LIMIT = 10 * MB
UPLOAD_LIMIT = 50 * MB
DOWNLOAD_LIMIT = 20 * MB
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup"
    " are exactly the same as a current content and reply markup of the message"
)
WRONG_FILE = "Bad Request: wrong file identifier/HTTP URL specified"

# Form data carries every value as a string; these keys hold JSON objects or arrays.
_JSON_KEYS = frozenset(
    {
        "reply_markup",
        "reply_parameters",
        "entities",
        "caption_entities",
        "media",
        "allowed_updates",
        "commands",
        "scope",
        "link_preview_options",
        "results",
        "menu_button",
        "message_ids",
        "rights",
        "prices",
        "suggested_tip_amounts",
    }
)
_INT_KEYS = frozenset(
    {
        "chat_id",
        "from_chat_id",
        "message_id",
        "user_id",
        "offset",
        "limit",
        "timeout",
        "reply_to_message_id",
        "message_thread_id",
        "cache_time",
        "max_connections",
        "width",
        "height",
        "duration",
    }
)
_BOOL_KEYS = frozenset(
    {
        "disable_notification",
        "protect_content",
        "show_alert",
        "drop_pending_updates",
        "has_spoiler",
        "supports_streaming",
        "disable_content_type_detection",
        "allow_sending_without_reply",
        "disable_web_page_preview",
        "show_caption_above_media",
        "allow_paid_broadcast",
        "revoke",
        "ok",
        "is_flexible",
    }
)
_MEDIA_KEYS = ("photo", "document", "animation", "video", "audio")
_COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_BOT_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")


class TelegramError(Exception):
    """An error answer of the Bot API, raised inside method handlers."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None) -> None:
        """Remember the HTTP status, Telegram's description and an optional retry_after."""
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> JSONDict:
        """The JSON body Telegram answers with."""
        body: JSONDict = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _bad(description: str) -> TelegramError:
    return TelegramError(400, f"Bad Request: {description}")


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class ApiCall:
    """One Bot API call as the fake server saw and answered it."""

    method: str
    params: JSONDict
    files: dict[str, UploadedFile]
    response: JSONDict
    at: float
    status: int = 200

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return bool(self.response.get("ok"))

    @property
    def result(self) -> Any:
        """The `result` of a successful call (None for errors)."""
        return self.response.get("result")


@dataclass
class WebhookDelivery:
    """One attempt to POST an update to the bot's webhook."""

    update_id: int
    status: int | None
    headers: dict[str, str]
    error: str | None
    at: float


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str
    size: int
    kind: str
    meta: JSONDict = field(default_factory=dict)


@dataclass
class _Failure:
    error_code: int
    description: str
    retry_after: int | None


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _HTMLEntities(HTMLParser):
    """Turn Telegram's HTML subset into plain text plus entities, as the server does."""

    _SIMPLE = {  # noqa: RUF012 - a read-only lookup table
        "b": "bold",
        "strong": "bold",
        "i": "italic",
        "em": "italic",
        "u": "underline",
        "ins": "underline",
        "s": "strikethrough",
        "strike": "strikethrough",
        "del": "strikethrough",
        "tg-spoiler": "spoiler",
        "code": "code",
        "pre": "pre",
        "blockquote": "blockquote",
    }

    def __init__(self, users: dict[int, JSONDict] | None = None) -> None:
        super().__init__(convert_charrefs=True)
        self._users = users or {}
        self.text = ""
        self.entities: list[JSONDict] = []
        self._open: list[tuple[str, JSONDict]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        entity: JSONDict
        if tag in self._SIMPLE:
            entity = {"type": self._SIMPLE[tag]}
            if tag == "blockquote" and "expandable" in attr:
                entity["type"] = "expandable_blockquote"
        elif tag == "span" and attr.get("class") == "tg-spoiler":
            entity = {"type": "spoiler"}
        elif tag == "a":
            href = attr.get("href") or ""
            match = re.fullmatch(r"tg://user\?id=(\d+)", href)
            if match:
                # Telegram sends the whole User of a mention, as it knows it.
                user_id = int(match[1])
                user = self._users.get(user_id) or {"id": user_id, "first_name": str(user_id)}
                entity = {"type": "text_mention", "user": {"is_bot": False, **user}}
            else:
                entity = {"type": "text_link", "url": href}
        elif tag == "tg-emoji":
            entity = {"type": "custom_emoji", "custom_emoji_id": attr.get("emoji-id") or ""}
        else:
            raise _bad(f'can\'t parse entities: Unsupported start tag "{tag}"')
        entity["offset"] = _utf16_len(self.text)
        self._open.append((tag, entity))

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1][0] != tag:
            raise _bad(f'can\'t parse entities: Unexpected end tag "{tag}"')
        _, entity = self._open.pop()
        if entity["type"] == "code" and self._open and self._open[-1][1]["type"] == "pre":
            # <pre><code class="language-x"> is one pre entity with a language.
            return
        entity["length"] = _utf16_len(self.text) - entity["offset"]
        if entity["length"] > 0:
            self.entities.append(entity)

    def handle_data(self, data: str) -> None:
        self.text += data

    def finish(self) -> tuple[str, list[JSONDict]]:
        """Close the parser and return text and entities sorted by offset."""
        self.close()
        if self._open:
            tag = self._open[-1][0]
            raise _bad(
                f"can't parse entities: Can't find end tag corresponding to start tag \"{tag}\""
            )
        return self.text, sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))


def _format(
    text: str,
    parse_mode: str | None,
    entities: Any,
    users: dict[int, JSONDict] | None = None,
) -> tuple[str, list[JSONDict]]:
    """Apply parse_mode (HTML only; Markdown is kept verbatim) or explicit entities."""
    if isinstance(entities, list) and entities:
        return text, entities
    if parse_mode and parse_mode.lower() == "html":
        parser = _HTMLEntities(users)
        parser.feed(text)
        return parser.finish()
    return text, []


class _Req:
    """Decoded parameters and file parts of one API call."""

    def __init__(self, params: JSONDict, files: dict[str, UploadedFile]) -> None:
        self.params = params
        self.files = files

    def get(self, key: str) -> Any:
        return self.params.get(key)

    def get_int(self, key: str) -> int | None:
        value = self.params.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(f"invalid {key} specified")
        return value

    def need_int(self, key: str, empty_message: str | None = None) -> int:
        value = self.get_int(key)
        if value is None:
            raise _bad(empty_message or f"{key} is empty")
        return value

    def get_str(self, key: str) -> str | None:
        value = self.params.get(key)
        if value is None:
            return None
        return value if isinstance(value, str) else json.dumps(value)

    def get_bool(self, key: str) -> bool:
        return self.params.get(key) is True


def _decode_params(raw: JSONDict) -> JSONDict:
    """Give form strings their JSON types, as Telegram does for known fields."""
    params: JSONDict = {}
    for key, value in raw.items():
        if isinstance(value, str):
            if key in _JSON_KEYS:
                try:
                    value = json.loads(value)
                except ValueError as exc:
                    what = "reply keyboard markup" if key == "reply_markup" else key
                    raise _bad(f"can't parse {what} JSON object") from exc
            elif key in _INT_KEYS and re.fullmatch(r"-?\d+", value):
                value = int(value)
            elif key in _BOOL_KEYS:
                value = value.lower() in ("true", "1")
        params[key] = value
    return params


async def _read_multipart(
    reader: aiohttp.MultipartReader,
) -> tuple[JSONDict, dict[str, UploadedFile]]:
    params: JSONDict = {}
    files: dict[str, UploadedFile] = {}
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, aiohttp.BodyPartReader):
            raise _bad("nested multipart is not supported")
        name = part.name or ""
        data = await part.read(decode=True)
        if part.filename is not None:
            content_type = part.headers.get(aiohttp.hdrs.CONTENT_TYPE, "application/octet-stream")
            files[name] = UploadedFile(part.filename, content_type, bytes(data))
        else:
            params[name] = bytes(data).decode("utf-8")
    return params, files


class FakeTelegram:
    """An aiohttp server that answers like api.telegram.org for one bot."""

    def __init__(
        self, token: str = "123456:TEST-token", bot_username: str = "mj_test_bot"
    ) -> None:
        """Prepare an empty world; call `start()` to listen."""
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_username = bot_username
        self.base_url = ""
        self.requests: list[ApiCall] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        # Seconds between webhook retries; Telegram backs off longer, tests want speed.
        self.webhook_retry_delay = 0.1
        self.webhook_timeout = 10.0

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
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}
        self._file_counter = itertools.count(1)
        self._callbacks: dict[str, JSONDict | None] = {}
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._failures: dict[str, deque[_Failure]] = {}
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

        handlers: dict[str, Callable[[_Req], Awaitable[Any]]] = {
            "getMe": self._get_me,
            "logOut": self._true,
            "close": self._true,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getMyCommands": self._get_my_commands,
            "setMyDescription": self._true,
            "setMyShortDescription": self._true,
            "setChatMenuButton": self._true,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "sendAnimation": self._send_animation,
            "sendVideo": self._send_video,
            "sendMediaGroup": self._send_media_group,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageMedia": self._edit_message_media,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "sendChatAction": self._send_chat_action,
            "getFile": self._get_file,
            "getChat": self._get_chat,
            "getChatMember": self._get_chat_member,
            "getChatAdministrators": self._get_chat_administrators,
            "sendInvoice": self._send_invoice,
            "answerPreCheckoutQuery": self._answer_pre_checkout_query,
            "refundStarPayment": self._refund_star_payment,
        }
        self._handlers = {name.lower(): (name, handler) for name, handler in handlers.items()}

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 = any free port) and return the base URL."""
        app = web.Application(client_max_size=UPLOAD_LIMIT * 2)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        bound_port = server.sockets[0].getsockname()[1]
        self.base_url = f"http://{host}:{bound_port}"
        self._client = aiohttp.ClientSession()
        return self.base_url

    async def stop(self) -> None:
        """Release long polls, stop webhook pushing and close the server."""
        self._closing = True
        self._notify()
        await self._stop_pusher()
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        """Start the server."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop the server."""
        await self.stop()

    # ------------------------------------------------------------------ inspection

    @property
    def bot_user(self) -> JSONDict:
        """The bot as a Telegram User."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "MJ Test Bot",
            "username": self.bot_username,
        }

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates queued and not yet acknowledged by the bot."""
        return list(self._pending)

    @property
    def webhook_url(self) -> str:
        """The webhook URL the bot set, or an empty string."""
        return self._webhook_url

    def calls(self, method: str) -> list[ApiCall]:
        """Every recorded call of one method (case-insensitive), in order."""
        name = method.lower()
        return [call for call in self.requests if call.method.lower() == name]

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] = lambda call: True,
        *,
        timeout: float = 10.0,
        count: int = 1,
    ) -> ApiCall:
        """Wait until `count` matching calls have happened and return the count-th."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            matching = [call for call in self.calls(method) if predicate(call)]
            if len(matching) >= count:
                return matching[count - 1]
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                seen = ", ".join(call.method for call in self.requests[-20:])
                msg = (
                    f"{method}: {len(matching)} of {count} matching calls after {timeout}s;"
                    f" recent calls: [{seen}]"
                )
                raise TimeoutError(msg)
            await self._wait_change(remaining)

    def message(self, chat_id: int, message_id: int) -> JSONDict | None:
        """Current state of a message (after edits), or None if unknown or deleted."""
        key = (chat_id, message_id)
        if key in self._deleted or key not in self._messages:
            return None
        return copy.deepcopy(self._messages[key])

    def bot_messages(self, chat_id: int) -> list[JSONDict]:
        """Messages the bot has sent to a chat and not deleted, in order."""
        return [
            copy.deepcopy(self._messages[key])
            for key in self._bot_messages
            if key[0] == chat_id and key not in self._deleted
        ]

    async def wait_long_poll(self, timeout: float = 5.0) -> None:
        """Wait until a getUpdates request has reached the server (and may be waiting)."""
        async with asyncio.timeout(timeout):
            while self._poll_generation == 0:
                await self._wait_change(timeout)

    def callback_answer(self, callback_query_id: str) -> JSONDict | None:
        """The answerCallbackQuery params for a pressed button, None while unanswered."""
        return self._callbacks.get(callback_query_id)

    def commands(self, scope: JSONDict | None = None, language_code: str = "") -> list[JSONDict]:
        """The command list the bot set for a scope (default scope when None)."""
        return copy.deepcopy(self._commands.get(self._scope_key(scope, language_code), []))

    def file_bytes(self, file_id: str) -> bytes:
        """The bytes behind a file_id (raises KeyError when unknown)."""
        return self._files[file_id].data

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        method: str,
        *,
        error_code: int = 429,
        description: str = "Too Many Requests: retry after 1",
        retry_after: int | None = 1,
        times: int = 1,
    ) -> None:
        """Answer the next `times` calls of a method with an error, without applying them."""
        queue = self._failures.setdefault(method.lower(), deque())
        for _ in range(times):
            queue.append(_Failure(error_code, description, retry_after))

    def drop_connection_next(self, method: str, times: int = 1) -> None:
        """Close the connection without answering the next `times` calls of a method."""
        name = method.lower()
        self._drops[name] = self._drops.get(name, 0) + times

    def lose_answer_next(self, method: str, times: int = 1) -> None:
        """Carry out the next `times` calls of a method, then close the connection unanswered.

        Unlike `drop_connection_next`, the call takes effect: only its answer is lost.
        """
        name = method.lower()
        self._lost_answers[name] = self._lost_answers.get(name, 0) + times

    def fail_file_downloads(self, status: int = 502, times: int = 1) -> None:
        """Fail the next `times` file downloads with an HTTP status (0: drop the connection).

        Replaces failures still queued: `times=0` stops failing.
        """
        self._file_failures = deque([status] * times)

    def set_admin(self, chat_id: int, user_id: int, status: str = "administrator") -> None:
        """Make a user an administrator (or "creator") of a chat."""
        if status not in ("administrator", "creator"):
            raise ValueError(status)
        self._admins.setdefault(chat_id, {})[user_id] = status

    def delete_as_user(self, chat_id: int, message_id: int) -> None:
        """Play a user deleting a message; Telegram sends the bot no update about it."""
        key = (chat_id, message_id)
        if key in self._deleted or key not in self._messages:
            raise ValueError(f"no message {message_id} in chat {chat_id}")
        self._deleted.add(key)
        self._notify()

    def block(self, user_id: int) -> None:
        """Play a user who blocked the bot: sends to their private chat get 403."""
        self._blocked.add(user_id)

    # ------------------------------------------------------------------ playing users

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

    def private_chat(self, user: JSONDict) -> JSONDict:
        """The private chat of a user with the bot."""
        chat: JSONDict = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        if "username" in user:
            chat["username"] = user["username"]
        self._chats[chat["id"]] = chat
        return dict(chat)

    def group_chat(self, chat_id: int, title: str = "Group", is_forum: bool = False) -> JSONDict:
        """A group (supergroup when forum or a -100... id) the bot is a member of."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        supergroup = is_forum or str(chat_id).startswith("-100")
        chat: JSONDict = {
            "id": chat_id,
            "type": "supergroup" if supergroup else "group",
            "title": title,
        }
        if is_forum:
            chat["is_forum"] = True
        self._chats[chat_id] = chat
        return dict(chat)

    def send_message(
        self,
        chat: JSONDict,
        user: JSONDict,
        text: str | None = None,
        *,
        caption: str | None = None,
        photo: bytes | None = None,
        document: tuple[bytes, str, str] | None = None,
        reply_to_message_id: int | None = None,
        message_thread_id: int | None = None,
        media_group_id: str | None = None,
        file_size: int | None = None,
        sender_chat: JSONDict | None = None,
    ) -> JSONDict:
        """Queue an update with a user's message and return the message.

        `file_size` pretends the attached file has that size (for Telegram's download limit).
        `sender_chat` sends it on behalf of a chat: a channel, or the group itself for an
        anonymous admin (`user` is then Telegram's stand-in bot, as Telegram sends it).
        """
        self._chats.setdefault(chat["id"], dict(chat))
        self._users.setdefault(user["id"], dict(user))
        message: JSONDict = {
            "message_id": self._next_message_id(chat["id"]),
            "from": dict(user),
            "chat": dict(chat),
            "date": int(time.time()),
        }
        if sender_chat is not None:
            message["sender_chat"] = dict(sender_chat)
        if message_thread_id is not None:
            message["message_thread_id"] = message_thread_id
            if chat.get("is_forum"):
                message["is_topic_message"] = True
        if reply_to_message_id is not None:
            replied = self.message(chat["id"], reply_to_message_id)
            if replied is None:
                raise ValueError(f"no message {reply_to_message_id} in chat {chat['id']}")
            replied.pop("reply_to_message", None)
            message["reply_to_message"] = replied
        if media_group_id is not None:
            message["media_group_id"] = media_group_id
        if text is not None:
            message["text"] = text
            if entities := self._command_entities(text):
                message["entities"] = entities
        if photo is not None:
            stored = self._store_photo(photo, size=file_size)
            message["photo"] = copy.deepcopy(stored.meta["sizes"])
        if document is not None:
            data, filename, mime = document
            stored = self._store_file(data, "document", filename, size=file_size)
            message["document"] = {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_name": filename,
                "mime_type": mime,
                "file_size": stored.size,
            }
        if caption is not None:
            message["caption"] = caption
            if entities := self._command_entities(caption):
                message["caption_entities"] = entities
        self._messages[(chat["id"], message["message_id"])] = message
        self.queue_update({"message": copy.deepcopy(message)})
        return copy.deepcopy(message)

    def press(
        self, message: JSONDict, callback_data: str, user: JSONDict, *, check: bool = True
    ) -> str:
        """Queue a callback_query for a button of a bot message; return the query id.

        With `check`, the button must exist on the message's current keyboard, as only
        existing buttons can be pressed in a real client.
        """
        chat_id = message["chat"]["id"]
        current = self.message(chat_id, message["message_id"])
        if current is None:
            raise ValueError(f"message {message['message_id']} in chat {chat_id} is gone")
        if check:
            rows = current.get("reply_markup", {}).get("inline_keyboard", [])
            datas = [button.get("callback_data") for row in rows for button in row]
            if callback_data not in datas:
                raise ValueError(f"no button {callback_data!r} on the message; have {datas}")
        self._users.setdefault(user["id"], dict(user))
        query_id = str(secrets.randbits(63))
        self._callbacks[query_id] = None
        self.queue_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": dict(user),
                    "message": current,
                    "chat_instance": str(abs(hash(chat_id))),
                    "data": callback_data,
                }
            }
        )
        return query_id

    def pre_checkout(
        self, user: JSONDict, *, payload: str, total_amount: int, currency: str = "XTR"
    ) -> str:
        """Queue a pre_checkout_query, as when a user presses Pay on an invoice; its id."""
        self._users.setdefault(user["id"], dict(user))
        query_id = str(secrets.randbits(63))
        self._checkouts[query_id] = None
        self.queue_update(
            {
                "pre_checkout_query": {
                    "id": query_id,
                    "from": dict(user),
                    "currency": currency,
                    "total_amount": total_amount,
                    "invoice_payload": payload,
                }
            }
        )
        return query_id

    def checkout_answer(self, query_id: str) -> JSONDict | None:
        """The bot's answerPreCheckoutQuery params for a query, None while unanswered."""
        return copy.deepcopy(self._checkouts.get(query_id))

    async def wait_checkout_answer(self, query_id: str, timeout: float = 10.0) -> JSONDict:
        """Wait for the bot to answer a pre-checkout query (Telegram gives it 10 s)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (answer := self._checkouts.get(query_id)) is None:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"pre-checkout {query_id} unanswered after {timeout}s")
            await self._wait_change(remaining)
        return copy.deepcopy(answer)

    def successful_payment(
        self,
        user: JSONDict,
        *,
        payload: str,
        total_amount: int,
        currency: str = "XTR",
        charge_id: str | None = None,
    ) -> str:
        """Queue the service message of a finished payment in the user's private chat.

        Passing the `charge_id` of an earlier payment delivers that payment again, as
        Telegram may; returns the charge id.
        """
        charge_id = charge_id or f"stxTEST{secrets.token_hex(12)}"
        self._star_payments.setdefault(
            charge_id,
            {"user_id": user["id"], "total_amount": total_amount, "refunded": False},
        )
        self._payers[charge_id] = (dict(user), payload)
        chat = self.private_chat(user)
        message: JSONDict = {
            "message_id": self._next_message_id(chat["id"]),
            "from": dict(user),
            "chat": chat,
            "date": int(time.time()),
            "successful_payment": {
                "currency": currency,
                "total_amount": total_amount,
                "invoice_payload": payload,
                "telegram_payment_charge_id": charge_id,
                "provider_payment_charge_id": "",
            },
        }
        self._messages[(chat["id"], message["message_id"])] = message
        self.queue_update({"message": copy.deepcopy(message)})
        return charge_id

    def star_payment(self, charge_id: str) -> JSONDict | None:
        """A payment as Telegram keeps it: user_id, total_amount, refunded."""
        return copy.deepcopy(self._star_payments.get(charge_id))

    def queue_update(self, body: JSONDict) -> JSONDict:
        """Queue any update body (e.g. {"my_chat_member": ...}); update_id is assigned."""
        update = {"update_id": next(self._update_ids), **body}
        self._pending.append(update)
        self._notify()
        return update

    # ------------------------------------------------------------------ internals

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

    def _command_entities(self, text: str) -> list[JSONDict]:
        match = _COMMAND_RE.match(text)
        if not match:
            return []
        return [{"type": "bot_command", "offset": 0, "length": _utf16_len(match[0])}]

    def _new_file_ids(self, kind: str) -> tuple[str, str]:
        prefix = {"photo": "AgAC", "document": "BQAC", "video": "BAAC", "animation": "CgAC"}
        number = next(self._file_counter)
        file_id = f"{prefix.get(kind, 'BQAC')}{number:06d}{secrets.token_urlsafe(24)}"
        return file_id, f"AQAD{number:06d}{secrets.token_urlsafe(4)}"

    def _store_file(
        self, data: bytes, kind: str, filename: str = "", size: int | None = None
    ) -> _StoredFile:
        file_id, unique_id = self._new_file_ids(kind)
        ext = (filename.rsplit(".", 1)[-1] if "." in filename else "") or {
            "photo": "jpg",
            "video": "mp4",
            "animation": "mp4",
        }.get(kind, "bin")
        number = len(self._files_by_path) + 1
        folder = {"photo": "photos", "video": "videos", "animation": "animations"}
        path = f"{folder.get(kind, 'documents')}/file_{number}.{ext}"
        stored = _StoredFile(
            file_id, unique_id, data, path, len(data) if size is None else size, kind
        )
        self._files[file_id] = stored
        self._files_by_path[path] = stored
        return stored

    def _store_photo(self, data: bytes, size: int | None = None) -> _StoredFile:
        width, height = self._image_size(data)
        if width + height > 10000 or max(width, height) / max(1, min(width, height)) > 20:
            raise _bad("PHOTO_INVALID_DIMENSIONS")
        stored = self._store_file(data, "photo", "photo.jpg", size=size)
        sizes: list[JSONDict] = []
        for limit in (90, 320, 800):
            if max(width, height) > limit:
                scale = limit / max(width, height)
                thumb_id, thumb_unique = self._new_file_ids("photo")
                # Thumbnails share the original bytes: tests care about ids, not pixels.
                self._files[thumb_id] = stored
                sizes.append(
                    {
                        "file_id": thumb_id,
                        "file_unique_id": thumb_unique,
                        "width": max(1, round(width * scale)),
                        "height": max(1, round(height * scale)),
                    }
                )
        sizes.append(
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_size": stored.size,
                "width": width,
                "height": height,
            }
        )
        stored.meta["sizes"] = sizes
        return stored

    @staticmethod
    def _image_size(data: bytes) -> tuple[int, int]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                with Image.open(io.BytesIO(data)) as image:
                    return image.size
            except Image.DecompressionBombError as exc:
                raise _bad("PHOTO_INVALID_DIMENSIONS") from exc
            except (OSError, ValueError, SyntaxError) as exc:
                raise _bad("IMAGE_PROCESS_FAILED") from exc

    @staticmethod
    def _scope_key(scope: Any, language_code: str) -> tuple[str, str]:
        scope = scope if isinstance(scope, dict) and scope else {"type": "default"}
        return json.dumps(scope, sort_keys=True), language_code or ""

    def _deliverable(self) -> list[JSONDict]:
        if self._allowed_updates:
            # Telegram drops updates of types the bot did not ask for.
            kept = [
                update
                for update in self._pending
                if next(k for k in update if k != "update_id") in self._allowed_updates
            ]
            self._pending = deque(kept)
        return list(self._pending)

    def _ack(self, offset: int) -> None:
        if offset < 0:
            keep = list(self._pending)[offset:]
            self._pending = deque(keep)
            return
        while self._pending and self._pending[0]["update_id"] < offset:
            self._pending.popleft()

    # ------------------------------------------------------------------ HTTP layer

    async def _parse_request(
        self, request: web.Request
    ) -> tuple[JSONDict, dict[str, UploadedFile]]:
        raw: JSONDict = dict(request.query)
        files: dict[str, UploadedFile] = {}
        if request.method == "POST" and request.can_read_body:
            content_type = request.content_type
            if content_type == "multipart/form-data":
                params, files = await _read_multipart(await request.multipart())
                raw.update(params)
            elif content_type == "application/json":
                body = await request.json()
                if not isinstance(body, dict):
                    raise _bad("request body must be a JSON object")
                raw.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, str):
                        raw[key] = value
                    elif isinstance(value, web.FileField):
                        files[key] = UploadedFile(
                            value.filename, value.content_type, value.file.read()
                        )
        return _decode_params(raw), files

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        name = self._handlers.get(method.lower(), (method, None))[0]
        try:
            params, files = await self._parse_request(request)
        except TelegramError as exc:
            self._record(name, {}, {}, exc.body(), exc.error_code)
            return web.json_response(exc.body(), status=exc.error_code)
        if request.match_info["token"] != self.token:
            body = {"ok": False, "error_code": 401, "description": "Unauthorized"}
            self._record(name, params, files, body, 401)
            return web.json_response(body, status=401)
        if self._drops.get(name.lower(), 0) > 0:
            self._drops[name.lower()] -= 1
            self._record(
                name, params, files, {"ok": False, "description": "connection dropped"}, 0
            )
            if request.transport is not None:
                request.transport.abort()
            # The transport is gone; aiohttp discards whatever is returned.
            return web.Response()
        status, body = await self._dispatch(name, params, files)
        if self._lost_answers.get(name.lower(), 0) > 0 and request.transport is not None:
            self._lost_answers[name.lower()] -= 1
            request.transport.abort()
            return web.Response()
        return web.json_response(body, status=status)

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
            result = await entry[1](_Req(params, files))
        except TelegramError as exc:
            status, body = exc.error_code, exc.body()
        else:
            status, body = 200, {"ok": True, "result": result}
        self._record(name, params, files, body, status)
        return status, body

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

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        self.file_downloads += 1
        if self._file_failures:
            status = self._file_failures.popleft()
            if status == 0 and request.transport is not None:
                request.transport.abort()
                return web.Response()
            return web.Response(status=status or 502, text="Bad Gateway")
        stored = self._files_by_path.get(request.match_info["path"])
        if request.match_info["token"] != self.token or stored is None:
            body = {"ok": False, "error_code": 404, "description": "Not Found"}
            return web.json_response(body, status=404)
        content_type = mimetypes.guess_type(stored.file_path)[0] or "application/octet-stream"
        return web.Response(body=stored.data, content_type=content_type)

    # ------------------------------------------------------------------ webhook pusher

    async def _stop_pusher(self) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
            self._pusher = None

    async def _push_loop(self) -> None:
        assert self._client is not None
        while not self._closing:
            updates = self._deliverable()
            if not updates:
                await self._wait_change(None)
                continue
            update = updates[0]
            headers = {"Content-Type": "application/json"}
            if self._webhook_secret:
                headers["X-Telegram-Bot-Api-Secret-Token"] = self._webhook_secret
            status: int | None = None
            error: str | None = None
            try:
                async with self._client.post(
                    self._webhook_url,
                    data=json.dumps(update),
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
                ) as resp:
                    status = resp.status
                    if 200 <= status < 300:
                        await self._handle_webhook_reply(resp)
                    else:
                        error = f"Wrong response from the webhook: {status} {resp.reason}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"Connection failed: {type(exc).__name__}: {exc}"
            self.webhook_deliveries.append(
                WebhookDelivery(update["update_id"], status, headers, error, time.monotonic())
            )
            if error is None:
                if self._pending and self._pending[0] is update:
                    self._pending.popleft()
                self._notify()
            else:
                self._webhook_last_error = (int(time.time()), error)
                await asyncio.sleep(self.webhook_retry_delay)

    async def _handle_webhook_reply(self, resp: aiohttp.ClientResponse) -> None:
        """Run a method the bot put in its webhook answer, as Telegram does."""
        files: dict[str, UploadedFile] = {}
        if resp.content_type == "multipart/form-data":
            raw, files = await _read_multipart(aiohttp.MultipartReader(resp.headers, resp.content))
        else:
            body = await resp.read()
            if not body.strip():
                return
            try:
                raw = json.loads(body)
            except ValueError:
                return
        if not isinstance(raw, dict) or "method" not in raw:
            return
        name = str(raw.pop("method"))
        name = self._handlers.get(name.lower(), (name, None))[0]
        try:
            params = _decode_params(raw)
        except TelegramError as exc:
            self._record(name, raw, files, exc.body(), exc.error_code)
            return
        await self._dispatch(name, params, files)

    # ------------------------------------------------------------------ methods: bot & updates

    async def _true(self, req: _Req) -> bool:
        return True

    async def _get_me(self, req: _Req) -> JSONDict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, req: _Req) -> list[JSONDict]:
        if self._webhook_url:
            raise TelegramError(
                409,
                "Conflict: can't use getUpdates method while webhook is active;"
                " use deleteWebhook to delete the webhook first",
            )
        offset = req.get_int("offset")
        limit = min(100, max(1, req.get_int("limit") or 100))
        timeout = max(0, req.get_int("timeout") or 0)
        allowed = req.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed]
        if offset is not None:
            self._ack(offset)
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if generation != self._poll_generation:
                raise TelegramError(
                    409,
                    "Conflict: terminated by other getUpdates request;"
                    " make sure that only one bot instance is running",
                )
            if self._closing:
                return []
            updates = self._deliverable()
            if updates:
                return copy.deepcopy(updates[:limit])
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return []
            await self._wait_change(remaining)

    async def _set_webhook(self, req: _Req) -> bool:
        url = req.get_str("url") or ""
        if not url:
            return await self._delete_webhook(req)
        if not url.startswith(("http://", "https://")):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = req.get_str("secret_token")
        if secret is not None and not _SECRET_RE.fullmatch(secret):
            raise _bad("secret token contains unallowed characters")
        if req.get_bool("drop_pending_updates"):
            self._pending.clear()
        allowed = req.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed]
        self._webhook_url = url
        self._webhook_secret = secret
        self._webhook_max_connections = req.get_int("max_connections") or 40
        self._webhook_last_error = None
        # Releases a getUpdates that is waiting, as Telegram does.
        self._poll_generation += 1
        if self._pusher is None:
            self._pusher = asyncio.create_task(self._push_loop())
        self._notify()
        return True

    async def _delete_webhook(self, req: _Req) -> bool:
        await self._stop_pusher()
        self._webhook_url = ""
        self._webhook_secret = None
        if req.get_bool("drop_pending_updates"):
            self._pending.clear()
        return True

    async def _get_webhook_info(self, req: _Req) -> JSONDict:
        info: JSONDict = {
            "url": self._webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self._webhook_url:
            info["max_connections"] = self._webhook_max_connections
            if self._allowed_updates:
                info["allowed_updates"] = list(self._allowed_updates)
            if self._webhook_last_error is not None:
                info["last_error_date"], info["last_error_message"] = self._webhook_last_error
        return info

    async def _set_my_commands(self, req: _Req) -> bool:
        commands = req.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad("commands must be a list of at most 100 BotCommand")
        for command in commands:
            if not isinstance(command, dict) or not _BOT_COMMAND_RE.fullmatch(
                str(command.get("command", ""))
            ):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._scope_key(req.get("scope"), req.get_str("language_code") or "")
        self._commands[key] = copy.deepcopy(commands)
        return True

    async def _delete_my_commands(self, req: _Req) -> bool:
        self._commands.pop(
            self._scope_key(req.get("scope"), req.get_str("language_code") or ""), None
        )
        return True

    async def _get_my_commands(self, req: _Req) -> list[JSONDict]:
        return self.commands(req.get("scope"), req.get_str("language_code") or "")

    # ------------------------------------------------------------------ methods: sending

    def _chat(self, req: _Req) -> JSONDict:
        chat_id = req.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad("chat_id is empty")
        if isinstance(chat_id, str):
            found = [c for c in self._chats.values() if f"@{c.get('username')}" == chat_id]
            if not found:
                raise _bad("chat not found")
            chat = found[0]
        else:
            chat_found = self._chats.get(chat_id)
            if chat_found is None:
                raise _bad("chat not found")
            chat = chat_found
        if chat["type"] == "private" and chat["id"] in self._blocked:
            raise TelegramError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _check_markup(self, markup: Any, chat: JSONDict | None) -> JSONDict | None:
        """Validate reply_markup; return it when it belongs on the Message (inline only)."""
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            if not any(k in markup for k in ("keyboard", "remove_keyboard", "force_reply")):
                raise _bad("can't parse reply keyboard markup JSON object")
            placeholder = markup.get("input_field_placeholder")
            if placeholder is not None and len(str(placeholder)) > 64:
                raise _bad("can't parse reply keyboard markup JSON object")
            return None
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list):
            raise _bad(
                "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
            )
        for row in rows:
            for button in row:
                if not button.get("text"):
                    raise _bad("can't parse inline keyboard button: Text is empty")
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= CALLBACK_DATA_LIMIT:
                    raise _bad("BUTTON_DATA_INVALID")
                web_app = button.get("web_app")
                if web_app is not None:
                    url = str(web_app.get("url", ""))
                    if not url.startswith("https://"):
                        raise _bad(
                            f"inline keyboard button Web App URL '{url}' is invalid:"
                            " Only HTTPS links are allowed"
                        )
                    if chat is not None and chat["type"] != "private":
                        raise _bad("BUTTON_TYPE_INVALID")
        return copy.deepcopy(markup)

    def _reply_to(self, req: _Req, chat: JSONDict) -> JSONDict | None:
        reply = req.get("reply_parameters")
        allow_missing = req.get_bool("allow_sending_without_reply")
        message_id: int | None = None
        if isinstance(reply, dict):
            message_id = reply.get("message_id")
            allow_missing = allow_missing or bool(reply.get("allow_sending_without_reply"))
        elif req.get_int("reply_to_message_id") is not None:
            message_id = req.get_int("reply_to_message_id")
        if message_id is None:
            return None
        replied = self.message(chat["id"], int(message_id))
        if replied is None:
            if allow_missing:
                return None
            raise _bad("message to be replied not found")
        replied.pop("reply_to_message", None)
        return replied

    def _emit(
        self,
        req: _Req,
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
        key = (chat["id"], message["message_id"])
        self._messages[key] = message
        self._bot_messages.append(key)
        return copy.deepcopy(message)

    def _caption(self, caption: Any, parse_mode: Any, entities: Any) -> JSONDict:
        if caption is None or caption == "":
            return {}
        text, parsed = _format(str(caption), parse_mode, entities, self._users)
        if _utf16_len(text) > CAPTION_LIMIT:
            raise _bad("message caption is too long")
        content: JSONDict = {"caption": text}
        if parsed:
            content["caption_entities"] = parsed
        return content

    async def _send_message(self, req: _Req) -> JSONDict:
        chat = self._chat(req)
        raw = req.get_str("text")
        if not raw:
            raise _bad("message text is empty")
        text, entities = _format(raw, req.get_str("parse_mode"), req.get("entities"), self._users)
        if not text.strip():
            raise _bad("message text is empty")
        if _utf16_len(text) > TEXT_LIMIT:
            raise _bad("message is too long")
        markup = self._check_markup(req.get("reply_markup"), chat)
        reply = self._reply_to(req, chat)
        content: JSONDict = {"text": text}
        if entities:
            content["entities"] = entities
        return self._emit(req, chat, content, markup, reply)

    def _resolve_file(self, req: _Req, value: Any, kind: str) -> _StoredFile | UploadedFile:
        """An InputFile reference: a new upload, or an existing file_id."""
        if isinstance(value, UploadedFile):
            upload = value
        elif value is None or value == "":
            upload_part = req.files.get(kind)
            if upload_part is None:
                raise _bad(f"there is no {kind} in the request")
            upload = upload_part
        elif isinstance(value, str) and value.startswith("attach://"):
            part = req.files.get(value.removeprefix("attach://"))
            if part is None:
                raise _bad(WRONG_FILE.removeprefix("Bad Request: "))
            upload = part
        elif isinstance(value, str) and value in self._files:
            return self._files[value]
        else:
            # Unknown ids and URLs alike: our bot must upload bytes, never pass URLs.
            raise TelegramError(400, WRONG_FILE)
        if len(upload.data) > UPLOAD_LIMIT or (
            kind == "photo" and len(upload.data) > PHOTO_UPLOAD_LIMIT
        ):
            raise TelegramError(413, "Request Entity Too Large")
        return upload

    def _media_content(self, req: _Req, kind: str, value: Any, extra: JSONDict) -> JSONDict:
        """Validate an input file and build the message fields for it (stores nothing yet)."""
        source = self._resolve_file(req, value, kind)
        if isinstance(source, _StoredFile):
            if kind == "photo":
                if source.kind != "photo":
                    raise _bad(f"can't use file of type {source.kind.title()} as Photo")
                return {"photo": copy.deepcopy(source.meta["sizes"])}
            return {kind: self._file_object(source, kind, source.meta, extra)}
        if kind == "photo":
            self._image_size(source.data)  # validates before anything is stored
        return {"__upload__": (kind, source, extra)}

    def _materialize(self, content: JSONDict) -> JSONDict:
        """Store a pending upload in content, turning it into Telegram's file object."""
        pending = content.pop("__upload__", None)
        if pending is None:
            return content
        kind, upload, extra = pending
        if kind == "photo":
            stored = self._store_photo(upload.data)
            content["photo"] = copy.deepcopy(stored.meta["sizes"])
            return content
        stored = self._store_file(upload.data, kind, upload.filename)
        mime = mimetypes.guess_type(upload.filename)[0] or upload.content_type
        stored.meta = {"file_name": upload.filename, "mime_type": mime}
        if kind in ("video", "animation"):
            width, height = self._media_dims(upload.data, extra)
            stored.meta.update(
                width=width, height=height, duration=int(extra.get("duration") or 0)
            )
        content[kind] = self._file_object(stored, kind, stored.meta, extra)
        if kind == "animation":
            # Telegram also fills `document` for animations, for old clients.
            content["document"] = self._file_object(stored, "document", stored.meta, extra)
        return content

    @staticmethod
    def _media_dims(data: bytes, extra: JSONDict) -> tuple[int, int]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                with Image.open(io.BytesIO(data)) as image:
                    return image.size
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
                return int(extra.get("width") or 0), int(extra.get("height") or 0)

    @staticmethod
    def _file_object(stored: _StoredFile, kind: str, meta: JSONDict, extra: JSONDict) -> JSONDict:
        obj: JSONDict = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
        }
        for key in ("file_name", "mime_type"):
            if key in meta:
                obj[key] = meta[key]
        if kind in ("video", "animation"):
            for key in ("width", "height", "duration"):
                value = meta.get(key, extra.get(key))
                obj[key] = value if isinstance(value, int) else 0
        return obj

    async def _send_media(self, req: _Req, kind: str) -> JSONDict:
        chat = self._chat(req)
        caption = self._caption(
            req.get("caption"), req.get_str("parse_mode"), req.get("caption_entities")
        )
        extra = {k: req.get(k) for k in ("width", "height", "duration")}
        content = self._media_content(req, kind, req.get(kind), extra)
        markup = self._check_markup(req.get("reply_markup"), chat)
        reply = self._reply_to(req, chat)
        content = self._materialize(content)
        content.update(caption)
        if req.get_bool("has_spoiler"):
            content["has_media_spoiler"] = True
        return self._emit(req, chat, content, markup, reply)

    async def _send_photo(self, req: _Req) -> JSONDict:
        return await self._send_media(req, "photo")

    async def _send_document(self, req: _Req) -> JSONDict:
        return await self._send_media(req, "document")

    async def _send_animation(self, req: _Req) -> JSONDict:
        return await self._send_media(req, "animation")

    async def _send_video(self, req: _Req) -> JSONDict:
        return await self._send_media(req, "video")

    async def _send_media_group(self, req: _Req) -> list[JSONDict]:
        chat = self._chat(req)
        media = req.get("media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise _bad(
                "too few or too many media in the album"
                if isinstance(media, list)
                else "media is empty"
            )
        reply = self._reply_to(req, chat)
        prepared: list[JSONDict] = []
        for item in media:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind not in ("photo", "video", "document", "audio"):
                raise _bad("wrong type of the media in the album")
            content = self._media_content(req, str(kind), item.get("media"), item)
            content.update(
                self._caption(
                    item.get("caption"), item.get("parse_mode"), item.get("caption_entities")
                )
            )
            prepared.append(content)
        kinds = {next(k for k in c if k not in ("caption", "caption_entities")) for c in prepared}
        if "document" in kinds and len(kinds) > 1:
            raise _bad("documents can't be mixed with other media types in an album")
        group_id = str(secrets.randbits(60))
        messages = []
        for content in prepared:
            content = self._materialize(content)
            content["media_group_id"] = group_id
            messages.append(self._emit(req, chat, content, None, reply))
        return messages

    # ------------------------------------------------------------------ methods: editing

    def _editable(self, req: _Req) -> JSONDict:
        if req.get("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID")
        chat_id = req.get("chat_id")
        message_id = req.get_int("message_id")
        if chat_id is None or message_id is None:
            raise _bad("message to edit not found")
        chat = self._chat(req)
        key = (chat["id"], message_id)
        if key in self._deleted or key not in self._messages:
            raise _bad("message to edit not found")
        message = self._messages[key]
        if message["from"]["id"] != self.bot_id:
            raise _bad("message can't be edited")
        return message

    def _apply_edit(
        self, message: JSONDict, changes: JSONDict, markup: JSONDict | None
    ) -> JSONDict:
        """Apply changes (None values remove keys) unless nothing would change."""
        updated = copy.deepcopy(message)
        for key, value in changes.items():
            if value is None:
                updated.pop(key, None)
            else:
                updated[key] = value
        if markup is None:
            updated.pop("reply_markup", None)
        else:
            updated["reply_markup"] = markup
        updated.pop("edit_date", None)
        before = {k: v for k, v in message.items() if k != "edit_date"}
        if updated == before:
            raise _bad(NOT_MODIFIED.removeprefix("Bad Request: "))
        updated["edit_date"] = int(time.time())
        message.clear()
        message.update(updated)
        return copy.deepcopy(message)

    async def _edit_message_text(self, req: _Req) -> JSONDict:
        message = self._editable(req)
        if "text" not in message:
            raise _bad("there is no text in the message to edit")
        raw = req.get_str("text")
        if not raw:
            raise _bad("message text is empty")
        text, entities = _format(raw, req.get_str("parse_mode"), req.get("entities"), self._users)
        if _utf16_len(text) > TEXT_LIMIT:
            raise _bad("message is too long")
        markup = self._check_markup(req.get("reply_markup"), message["chat"])
        return self._apply_edit(message, {"text": text, "entities": entities or None}, markup)

    async def _edit_message_caption(self, req: _Req) -> JSONDict:
        message = self._editable(req)
        if not any(kind in message for kind in _MEDIA_KEYS):
            raise _bad("there is no caption in the message to edit")
        caption = self._caption(
            req.get("caption"), req.get_str("parse_mode"), req.get("caption_entities")
        )
        markup = self._check_markup(req.get("reply_markup"), message["chat"])
        changes = {
            "caption": caption.get("caption"),
            "caption_entities": caption.get("caption_entities"),
        }
        return self._apply_edit(message, changes, markup)

    async def _edit_message_media(self, req: _Req) -> JSONDict:
        message = self._editable(req)
        if not any(kind in message for kind in _MEDIA_KEYS):
            raise _bad("there is no media in the message to edit")
        media = req.get("media")
        if not isinstance(media, dict) or media.get("type") not in (
            "photo",
            "video",
            "animation",
            "document",
            "audio",
        ):
            raise _bad("can't parse InputMedia JSON object")
        kind = str(media["type"])
        content = self._media_content(req, kind, media.get("media"), media)
        caption = self._caption(
            media.get("caption"), media.get("parse_mode"), media.get("caption_entities")
        )
        markup = self._check_markup(req.get("reply_markup"), message["chat"])
        content = self._materialize(content)
        changes: JSONDict = dict.fromkeys((*_MEDIA_KEYS, "caption", "caption_entities"))
        changes.update(content)
        changes.update(caption)
        return self._apply_edit(message, changes, markup)

    async def _edit_message_reply_markup(self, req: _Req) -> JSONDict:
        message = self._editable(req)
        markup = self._check_markup(req.get("reply_markup"), message["chat"])
        return self._apply_edit(message, {}, markup)

    async def _delete_message(self, req: _Req) -> bool:
        chat = self._chat(req)
        message_id = req.need_int("message_id", "message identifier is not specified")
        key = (chat["id"], message_id)
        if key in self._deleted or key not in self._messages:
            raise _bad("message to delete not found")
        self._deleted.add(key)
        return True

    async def _answer_callback_query(self, req: _Req) -> bool:
        query_id = req.get_str("callback_query_id") or ""
        if query_id not in self._callbacks or self._callbacks[query_id] is not None:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        text = req.get_str("text")
        if text is not None and len(text) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        self._callbacks[query_id] = dict(req.params)
        return True

    async def _send_chat_action(self, req: _Req) -> bool:
        self._chat(req)
        if not req.get_str("action"):
            raise _bad("action is empty")
        return True

    # ------------------------------------------------------------------ methods: payments

    async def _send_invoice(self, req: _Req) -> JSONDict:
        chat = self._chat(req)
        title = req.get_str("title") or ""
        description = req.get_str("description") or ""
        payload = req.get_str("payload") or ""
        currency = req.get_str("currency") or ""
        if not 1 <= len(title) <= 32:
            raise _bad("INVOICE_TITLE_INVALID" if title else "title is empty")
        if not 1 <= len(description) <= 255:
            raise _bad("INVOICE_DESCRIPTION_INVALID")
        if not 1 <= len(payload.encode()) <= 128:
            raise _bad("INVOICE_PAYLOAD_INVALID")
        if not currency:
            raise _bad("CURRENCY_INVALID")
        prices = req.get("prices")
        if not isinstance(prices, list) or not prices:
            raise _bad("can't parse prices JSON object")
        for price in prices:
            amount = price.get("amount") if isinstance(price, dict) else None
            if not isinstance(amount, int) or isinstance(amount, bool) or not price.get("label"):
                raise _bad("can't parse prices JSON object")
        total = sum(int(price["amount"]) for price in prices)
        if currency == "XTR":
            # Stars: one price, a whole number of Stars, and no payment provider.
            if len(prices) != 1 or total < 1:
                raise _bad("STARS_INVOICE_INVALID")
            if req.get_str("provider_token"):
                raise _bad("PAYMENT_PROVIDER_INVALID")
        elif not req.get_str("provider_token"):
            raise _bad("PAYMENT_PROVIDER_INVALID")
        markup = self._check_markup(req.get("reply_markup"), chat)
        content: JSONDict = {
            "invoice": {
                "title": title,
                "description": description,
                "start_parameter": req.get_str("start_parameter") or "",
                "currency": currency,
                "total_amount": total,
            }
        }
        return self._emit(req, chat, content, markup, self._reply_to(req, chat))

    async def _answer_pre_checkout_query(self, req: _Req) -> bool:
        query_id = req.get_str("pre_checkout_query_id") or ""
        if query_id not in self._checkouts or self._checkouts[query_id] is not None:
            raise _bad("QUERY_ID_INVALID")
        if "ok" not in req.params:
            raise _bad("ok is empty")
        if not req.get_bool("ok") and not req.get_str("error_message"):
            raise _bad("ERROR_MESSAGE_EMPTY")
        self._checkouts[query_id] = dict(req.params)
        return True

    async def _refund_star_payment(self, req: _Req) -> bool:
        user_id = req.need_int("user_id", "USER_ID_INVALID")
        charge_id = req.get_str("telegram_payment_charge_id") or ""
        payment = self._star_payments.get(charge_id)
        if payment is None or payment["user_id"] != user_id:
            raise _bad("CHARGE_NOT_FOUND")
        if payment["refunded"]:
            raise _bad("CHARGE_ALREADY_REFUNDED")
        self.refund_by_telegram(charge_id)
        return True

    def refund_by_telegram(self, charge_id: str) -> None:
        """Return a payment's Stars (as Telegram may on its own) and tell the buyer's chat."""
        payment = self._star_payments[charge_id]
        payment["refunded"] = True
        user, payload = self._payers[charge_id]
        chat = self.private_chat(user)
        message: JSONDict = {
            "message_id": self._next_message_id(chat["id"]),
            "from": user,
            "chat": chat,
            "date": int(time.time()),
            "refunded_payment": {
                "currency": "XTR",
                "total_amount": payment["total_amount"],
                "invoice_payload": payload,
                "telegram_payment_charge_id": charge_id,
            },
        }
        self._messages[(chat["id"], message["message_id"])] = message
        self.queue_update({"message": copy.deepcopy(message)})

    # ------------------------------------------------------------------ methods: files & chats

    async def _get_file(self, req: _Req) -> JSONDict:
        file_id = req.get_str("file_id") or ""
        stored = self._files.get(file_id)
        if stored is None:
            raise _bad("invalid file_id")
        if stored.size > DOWNLOAD_LIMIT:
            raise _bad("file is too big")
        return {
            "file_id": file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.file_path,
        }

    async def _get_chat(self, req: _Req) -> JSONDict:
        chat = self._chat(req)
        gifts = dict.fromkeys(
            (
                "unlimited_gifts",
                "limited_gifts",
                "unique_gifts",
                "premium_subscription",
                "gifts_from_channels",
            ),
            False,
        )
        return {
            **chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": gifts,
        }

    def _member(self, chat_id: int, user_id: int) -> JSONDict:
        if user_id == self.bot_id:
            user = self.bot_user
        else:
            user = dict(
                self._users.get(user_id, {"id": user_id, "is_bot": False, "first_name": "User"})
            )
        status = self._admins.get(chat_id, {}).get(user_id, "member")
        if status == "creator":
            return {"status": "creator", "user": user, "is_anonymous": False}
        if status == "administrator":
            rights = dict.fromkeys(
                (
                    "can_be_edited",
                    "is_anonymous",
                    "can_restrict_members",
                    "can_promote_members",
                    "can_post_stories",
                    "can_edit_stories",
                    "can_delete_stories",
                ),
                False,
            )
            rights.update(
                dict.fromkeys(
                    (
                        "can_manage_chat",
                        "can_delete_messages",
                        "can_manage_video_chats",
                        "can_change_info",
                        "can_invite_users",
                        "can_send_welcome_messages",
                    ),
                    True,
                )
            )
            return {"status": "administrator", "user": user, **rights}
        return {"status": "member", "user": user}

    async def _get_chat_member(self, req: _Req) -> JSONDict:
        chat = self._chat(req)
        user_id = req.need_int("user_id", "user not found")
        if chat["type"] == "private" and user_id not in (chat["id"], self.bot_id):
            raise _bad("user not found")
        return self._member(chat["id"], user_id)

    async def _get_chat_administrators(self, req: _Req) -> list[JSONDict]:
        chat = self._chat(req)
        if chat["type"] == "private":
            raise _bad("there are no administrators in the private chat")
        return [self._member(chat["id"], uid) for uid in self._admins.get(chat["id"], {})]
