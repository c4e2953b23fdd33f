"""Telegram traffic observed: each request on the wire, each update handled (and logged)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import TelegramObject, Update

from bot.runtime.logs import log_context
from bot.runtime.metrics import TELEGRAM_REQUEST_SECONDS, TELEGRAM_REQUESTS, UPDATES

OUTCOMES = ("ok", "error", "429")


class MeteredRequests(BaseRequestMiddleware):
    """Count every attempt by method and outcome, and time it (the innermost middleware).

    Innermost, so a retried request counts once per attempt and the wait for the rate limit
    is not part of its time.
    """

    def __init__(self) -> None:
        self._seen: set[str] = set()

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        """Make the request, noting how it went."""
        name = method.__api_method__
        if name not in self._seen:
            # Every outcome of a method exists from its first call, at 0: Prometheus'
            # increase() can't see the first 429 of a series that starts at 1.
            self._seen.add(name)
            for outcome in OUTCOMES:
                TELEGRAM_REQUESTS.labels(name, outcome)
        started = time.monotonic()
        outcome = "error"
        try:
            response = await make_request(bot, method)
            outcome = "ok"
            return response
        except TelegramRetryAfter:
            outcome = "429"
            raise
        finally:
            TELEGRAM_REQUESTS.labels(name, outcome).inc()
            TELEGRAM_REQUEST_SECONDS.labels(name).observe(time.monotonic() - started)


class ObserveUpdates(BaseMiddleware):
    """Count updates by kind, and log their handling with update, chat and user as fields.

    An outer middleware on updates, after aiogram's own that finds the event's user and chat.
    """

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        """Note the update's kind, then handle it inside its log context."""
        if not isinstance(event, Update):
            return await handler(event, data)
        UPDATES.labels(event.event_type).inc()
        user, chat = data.get("event_from_user"), data.get("event_chat")
        with log_context(
            update_id=event.update_id,
            chat_id=getattr(chat, "id", None),
            user_id=getattr(user, "id", None),
        ):
            return await handler(event, data)
