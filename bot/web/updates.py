"""Telegram's webhook: each update is stored before Telegram hears 200, then handled.

aiogram's own handler answers first and handles in memory, so a replica killed right after
answering would lose the update. Here the update is committed to the database first; the
replica that stored it handles it and marks it handled, and if that replica dies first (or
stops before the update is handled), the leader finds the update unclaimed (`sweep`) and
handles it. Telegram resending an update (it does when an answer is slow or lost), before or
after it was handled, finds it stored and is told 200 without handling it twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiohttp import web

from bot.runtime.background import Background, every
from bot.runtime.metrics import WEBHOOKS
from bot.web.server import MAX_WEBHOOK_BYTES, read_body, same_secret
from storage.database import STORAGE_ERRORS
from storage.replicas.claims import UpdateInbox

log = logging.getLogger(__name__)

# How often the leader looks for updates a dead replica stored and never handled.
SWEEP_SECONDS = 10.0


class CommittedUpdates:
    """The aiohttp route for Telegram's webhook, with updates kept until handled."""

    def __init__(
        self, dispatcher: Dispatcher, bot: Bot, inbox: UpdateInbox, secret_token: str
    ) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.inbox = inbox
        self.secret_token = secret_token
        self.background = Background()

    def register(self, app: web.Application, path: str) -> None:
        """Serve Telegram's POSTs at `path`."""
        app.router.add_post(path, self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        """Check the secret, store the update, answer 200, then handle it."""
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not same_secret(given, self.secret_token):
            WEBHOOKS.labels("telegram", "refused").inc()
            return web.Response(status=401)
        body = await read_body(request, MAX_WEBHOOK_BYTES)
        try:
            update: Any = json.loads(body)
            update_id = int(update["update_id"])
        except (ValueError, TypeError, KeyError):
            WEBHOOKS.labels("telegram", "refused").inc()
            return web.Response(status=400)
        if await self.inbox.add(update_id, body.decode()):
            WEBHOOKS.labels("telegram", "accepted").inc()
            self.background.spawn(self._handle(update_id, update))
        else:
            WEBHOOKS.labels("telegram", "duplicate").inc()
        return web.Response(status=200)

    async def _handle(self, update_id: int, update: dict[str, Any]) -> None:
        try:
            await self.dispatcher.feed_raw_update(self.bot, update)
        except asyncio.CancelledError:
            # Cut off by a stop, not handled: given back for the leader to handle again.
            try:
                await self.inbox.hand_back(update_id)
            except STORAGE_ERRORS as error:
                # The cancellation must go on; the claim, no longer renewed, expires instead.
                log.warning("Update %d not given back (%s); its claim expires", update_id, error)
            raise
        except Exception:
            # A handler's bug or an update nobody can read: marked handled all the same, as
            # by long polling. Tried again it would fail again, forever, and a handler that
            # failed half way (a job sent, then an error) would repeat what it did.
            log.exception("Update %d failed; it is not tried again", update_id)
        await self.inbox.done(update_id)

    async def sweep(self) -> None:
        """Leader: handle what dead replicas stored and never handled, for as long as it leads."""
        # The database out of reach ends a round, not the sweep: every update a replica
        # leaves later would otherwise wait for the next change of leader.
        await every(SWEEP_SECONDS, self.sweep_once, survives=STORAGE_ERRORS, first=True)

    async def sweep_once(self) -> int:
        """One round of the sweep: handle each orphan found now; how many were handled."""
        handled = 0
        for update_id in await self.inbox.orphans():
            body = await self.inbox.take(update_id)
            if body is None:  # another replica's sweep took it first
                continue
            log.warning("Handling update %d a stopped replica left", update_id)
            await self._handle(update_id, json.loads(body))
            handled += 1
        return handled

    async def drain(self, grace: float) -> None:
        """Let updates being handled finish (within `grace`)."""
        await self.background.drain(grace)
