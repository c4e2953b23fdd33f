"""The outgoing Telegram session: the one path every request takes, within Telegram's limits,
with retries so no message is lost."""

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
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import GetMe, GetUpdates, TelegramMethod
from aiogram.methods.base import Response, TelegramType

from bot.telegram.metered import MeteredRequests
from bot.telegram.ratelimit import RateLimiter, current_priority

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
                if attempt >= self.attempts or isinstance(method, GetUpdates | GetMe):
                    raise
                delay = float(error.retry_after)
                log.info("Telegram asked to wait %.0fs before %s", delay, method.__api_method__)
            except (TelegramNetworkError, TelegramServerError) as error:
                # Polling and the start-up check (getMe) have their own backoff and their own
                # words for it; don't stack ours on them.
                if attempt >= self.attempts or isinstance(method, GetUpdates | GetMe):
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


# How long a request whose caller gave up still holds its slot waiting for Telegram's answer.
CANCELLED_ANSWER_WAIT = 2.0

# Methods that put something in a chat: these count against Telegram's message limits.
_COUNTED_PREFIXES = ("send", "edit", "copymessage", "forwardmessage", "stopmessagelive")
_UNCOUNTED = frozenset({"sendchataction"})


def counted_chat(method: TelegramMethod[TelegramType]) -> tuple[bool, int | str | None]:
    """Whether a request counts against the limits, and the chat it counts for."""
    name = method.__api_method__.lower()
    if name in _UNCOUNTED or not name.startswith(_COUNTED_PREFIXES):
        return False, None
    chat_id = getattr(method, "chat_id", None)
    return True, chat_id if isinstance(chat_id, int | str) else None


class RateLimitMiddleware(BaseRequestMiddleware):
    """Hold each counted request until the limiter lets it through; learn from 429s.

    It sits inside `RetryMiddleware`, so a resent request waits for a slot again.
    """

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        """Wait for a slot, make the request, and report its answer to the limiter."""
        counted, chat_id = counted_chat(method)
        if not counted:
            return await make_request(bot, method)
        async with self.limiter.slot(chat_id, current_priority()):
            # Shielded: a caller cancelled mid-request (a progress edit its job's result
            # overtook) may have sent it already, and Telegram counts it when it arrives. Its
            # slot is held until the answer: counted from the cancel instead, it let another
            # request in while Telegram still counted this one (429s with two replicas).
            request = asyncio.ensure_future(make_request(bot, method))
            try:
                return await asyncio.shield(request)
            except asyncio.CancelledError:
                # Not for ever: a stop must not hang on a Telegram that doesn't answer.
                await asyncio.wait([request], timeout=CANCELLED_ANSWER_WAIT)
                if not request.done():
                    request.cancel()
                elif not request.cancelled():
                    request.exception()  # the caller is gone: its answer is not wanted
                raise
            except TelegramRetryAfter as error:
                # Telegram's clock wins over ours: nothing more to this chat until it allows.
                await self.limiter.told_to_wait(chat_id, float(error.retry_after))
                raise


def create_session(
    api_url: str, limiter: RateLimiter | None = None, *, pace: float = 1.0
) -> AiohttpSession:
    """An aiogram session aimed at the configured Bot API server, rate-limited, with retries.

    `pace` > 1 shortens the waits between retries by that factor (tests run Telegram faster).
    """
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_url))
    session.middleware(RetryMiddleware(base_delay=0.5 / pace, max_delay=30.0 / pace))
    session.middleware(RateLimitMiddleware(limiter or RateLimiter()))
    session.middleware(MeteredRequests())
    return session


class StartupError(Exception):
    """A start-up failure the process reports in one line and exits on, with its exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


async def wait_for_telegram(
    bot: Bot, api_url: str, *, first_delay: float = 1.0, max_delay: float = 30.0
) -> None:
    """Check the token with getMe, retrying with backoff while Telegram can't be reached.

    A token Telegram refuses is a StartupError (exit code 2): retrying can't fix it.
    """
    delay = first_delay
    while True:
        try:
            await bot.get_me()
            return
        except (TelegramUnauthorizedError, TelegramNotFound):
            # Telegram answers 401 for a revoked token and 404 for a malformed one.
            raise StartupError(
                "Telegram rejected BOT_TOKEN: check it, or get a new token from @BotFather "
                "in Telegram, and put it in BOT_TOKEN (environment or .env).",
                exit_code=2,
            ) from None
        except (TelegramNetworkError, TelegramServerError, TelegramRetryAfter) as error:
            # The class name only: aiogram's messages may quote the request URL (the token).
            log.warning(
                "Telegram is unreachable at %s (%s); retrying in %.0fs",
                api_url,
                type(error).__name__,
                delay,
            )
        await asyncio.sleep(delay)
        delay = min(max_delay, delay * 2)


def is_gone(error: TelegramBadRequest) -> bool:
    """Whether an edit failed because the message no longer exists."""
    text = error.message.lower()
    return "message to edit not found" in text or "message can't be edited" in text
