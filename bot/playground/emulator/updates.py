"""Updates to the bot: the queue, long polling, and pushing to a webhook."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
import time
from collections import deque

import aiohttp

from bot.playground.emulator.wire import (
    JSONDict,
    Req,
    TelegramError,
    UploadedFile,
    WebhookDelivery,
    bad,
    decode_params,
    read_multipart,
)
from bot.playground.emulator.world import World

_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")


class Updates(World):
    """getUpdates, the webhook methods and the webhook pusher."""

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates queued and not yet acknowledged by the bot."""
        return list(self._pending)

    @property
    def webhook_url(self) -> str:
        """The webhook URL the bot set, or an empty string."""
        return self._webhook_url

    async def wait_long_poll(self, timeout: float = 5.0) -> None:
        """Wait until a getUpdates request has reached the server (and may be waiting)."""
        async with asyncio.timeout(timeout):
            while self._poll_generation == 0:
                await self._wait_change(timeout)

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

    async def _get_updates(self, req: Req) -> list[JSONDict]:
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

    async def _set_webhook(self, req: Req) -> bool:
        url = req.get_str("url") or ""
        if not url:
            return await self._delete_webhook(req)
        if not url.startswith(("http://", "https://")):
            raise bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = req.get_str("secret_token")
        if secret is not None and not _SECRET_RE.fullmatch(secret):
            raise bad("secret token contains unallowed characters")
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

    async def _delete_webhook(self, req: Req) -> bool:
        await self._stop_pusher()
        self._webhook_url = ""
        self._webhook_secret = None
        if req.get_bool("drop_pending_updates"):
            self._pending.clear()
        return True

    async def _get_webhook_info(self, req: Req) -> JSONDict:
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
            raw, files = await read_multipart(aiohttp.MultipartReader(resp.headers, resp.content))
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
            params = decode_params(raw)
        except TelegramError as exc:
            self._record(name, raw, files, exc.body(), exc.error_code)
            return
        await self._dispatch(name, params, files)
