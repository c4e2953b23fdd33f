"""The emulator as an HTTP server: api.telegram.org's routes, recorded calls, injected faults."""

from __future__ import annotations

import asyncio
import copy
import mimetypes
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from bot.playground.emulator.chats import Chats
from bot.playground.emulator.editing import Editing
from bot.playground.emulator.payments import Payments
from bot.playground.emulator.updates import Updates
from bot.playground.emulator.users import Users
from bot.playground.emulator.wire import (
    UPLOAD_LIMIT,
    ApiCall,
    Failure,
    JSONDict,
    Req,
    TelegramError,
    UploadedFile,
    bad,
    decode_params,
    read_multipart,
)


class FakeTelegram(Editing, Payments, Chats, Updates, Users):
    """An aiohttp server that answers like api.telegram.org for one bot."""

    def __init__(
        self,
        token: str = "123456:TEST-token",
        bot_username: str = "mj_test_bot",
        *,
        bot_name: str = "MJ Test Bot",
        test_environment: bool = False,
    ) -> None:
        """Prepare an empty world; call `start()` to listen (or `register` on an app)."""
        super().__init__(token, bot_username, bot_name=bot_name, test_environment=test_environment)
        handlers: dict[str, Callable[[Req], Awaitable[Any]]] = {
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
            "setChatMenuButton": self._set_chat_menu_button,
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
            "answerInlineQuery": self._answer_inline_query,
            "sendChatAction": self._send_chat_action,
            "getFile": self._get_file,
            "getChat": self._get_chat,
            "getChatMember": self._get_chat_member,
            "getChatAdministrators": self._get_chat_administrators,
            "sendInvoice": self._send_invoice,
            "answerPreCheckoutQuery": self._answer_pre_checkout_query,
            "refundStarPayment": self._refund_star_payment,
        }
        self._handlers.update({name.lower(): (name, method) for name, method in handlers.items()})

    def register(self, app: web.Application) -> None:
        """Serve the Bot API and its file downloads on an app (the playground's page has one)."""
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.on_startup.append(self._open)
        # On shutdown, before the server waits for requests in flight: long polls end now.
        app.on_shutdown.append(self._release)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on host:port (0 = any free port) and return the base URL."""
        app = web.Application(client_max_size=UPLOAD_LIMIT * 2)
        self.register(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        bound_port = server.sockets[0].getsockname()[1]
        self.base_url = f"http://{host}:{bound_port}"
        return self.base_url

    async def stop(self) -> None:
        """Release long polls, stop webhook pushing and close the server."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _open(self, app: web.Application) -> None:
        self._closing = False
        self._client = aiohttp.ClientSession()

    async def _release(self, app: web.Application) -> None:
        self._closing = True
        self._notify()
        await self._stop_pusher()
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> FakeTelegram:
        """Start the server."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop the server."""
        await self.stop()

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

    def bot_messages(self, chat_id: int) -> list[JSONDict]:
        """Messages the bot has sent to a chat and not deleted, in order."""
        return [
            copy.deepcopy(self._messages[key])
            for key in self._bot_messages
            if key[0] == chat_id and key not in self._deleted
        ]

    def callback_answer(self, callback_query_id: str) -> JSONDict | None:
        """The answerCallbackQuery params for a pressed button, None while unanswered."""
        return self._callbacks.get(callback_query_id)

    def inline_answer(self, inline_query_id: str) -> JSONDict | None:
        """The answerInlineQuery params for an inline query, None while unanswered."""
        return self._inline_queries.get(inline_query_id)

    def file_bytes(self, file_id: str) -> bytes:
        """The bytes behind a file_id (raises KeyError when unknown)."""
        return self._files[file_id].data

    def file_type(self, file_id: str) -> str:
        """The media type of a file_id's bytes, by its name (raises KeyError when unknown)."""
        path = self._files[file_id].file_path
        return mimetypes.guess_type(path)[0] or "application/octet-stream"

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
            queue.append(Failure(error_code, description, retry_after))

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

    async def _parse_request(
        self, request: web.Request
    ) -> tuple[JSONDict, dict[str, UploadedFile]]:
        raw: JSONDict = dict(request.query)
        files: dict[str, UploadedFile] = {}
        if request.method == "POST" and request.can_read_body:
            content_type = request.content_type
            if content_type == "multipart/form-data":
                params, files = await read_multipart(await request.multipart())
                raw.update(params)
            elif content_type == "application/json":
                body = await request.json()
                if not isinstance(body, dict):
                    raise bad("request body must be a JSON object")
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
        return decode_params(raw), files

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
