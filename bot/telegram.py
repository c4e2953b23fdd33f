"""The outgoing Telegram session: where requests go, and retries so no message is lost."""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.methods.base import Response, TelegramType

log = logging.getLogger(__name__)


class RetryMiddleware(BaseRequestMiddleware):
    """Resend a request after a 429 (waiting `retry_after`) or a transient failure (backoff).

    aiogram raises TelegramRetryAfter and does not retry by itself. A network error after the
    request left may mean Telegram did act on it; we resend anyway: a rare duplicate message
    is better than a lost result.
    """

    def __init__(self, *, attempts: int = 6, base_delay: float = 0.5, max_delay: float = 30.0):
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        """Make the request, retrying what can be retried."""
        attempt = 0
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as error:
                if attempt >= self.attempts or isinstance(method, GetUpdates):
                    raise
                delay = float(error.retry_after)
                log.info("Telegram asked to wait %.0fs before %s", delay, method.__api_method__)
            except (TelegramNetworkError, TelegramServerError) as error:
                # Polling has its own backoff; don't stack ours on its long requests.
                if attempt >= self.attempts or isinstance(method, GetUpdates):
                    raise
                delay = min(self.max_delay, self.base_delay * 2**attempt)
                log.info(
                    "Telegram %s failed (%s); retrying in %.1fs",
                    method.__api_method__,
                    type(error).__name__,
                    delay,
                )
            attempt += 1
            await asyncio.sleep(delay)


def create_session(api_url: str) -> AiohttpSession:
    """An aiogram session aimed at the configured Bot API server, with retries."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_url))
    session.middleware(RetryMiddleware())
    return session
