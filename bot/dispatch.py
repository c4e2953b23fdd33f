"""The dispatcher: the routers, the middlewares every update passes, and what handlers get."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Dispatcher
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import SimpleEventIsolation
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
from aiogram.types import TelegramObject
from aiogram.utils.i18n import I18n
from redis.asyncio import Redis

from bot.telegram.albums import (
    AlbumParts,
    LocalAlbumParts,
    LocalRecentAlbums,
    RecentAlbums,
    RedisAlbumParts,
    RedisRecentAlbums,
)
from bot.telegram.metered import ObserveUpdates
from handlers import get_routers
from handlers.inline.share import not_shared_by_us
from handlers.middlewares.access import AccessMiddleware
from handlers.middlewares.albums import AlbumMiddleware
from handlers.middlewares.language import UserLocaleMiddleware
from handlers.middlewares.throttle import FloodGate, RedisThrottle, Throttle
from storage.database import Database
from storage.fsm import DatabaseStorage
from storage.prompts import PromptRequestRepo
from storage.uploads import UploadRepo
from storage.users import UserRepo


class RunningHandlers(BaseMiddleware):
    """Knows the updates being handled, so a stop can wait for them (an outer middleware)."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        """Run the update's handlers, noting the task that runs them."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - aiogram always handles inside a task
            return await handler(event, data)
        self._running.add(task)
        try:
            return await handler(event, data)
        finally:
            self._running.discard(task)

    async def finish(self, grace: float) -> None:
        """Wait for running updates to end, then cancel those still running."""
        running = {task for task in self._running if task is not asyncio.current_task()}
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


def build_dispatcher(
    db: Database,
    redis: Redis | None,
    handlers: RunningHandlers,
    i18n: I18n,
    **dependencies: Any,
) -> Dispatcher:
    """The dispatcher: the routers, the middlewares every update passes, and what handlers get."""
    # Waiting states survive a restart: in the database, or in Redis where replicas share
    # them (and take turns on one user's updates, so two replicas never interleave a flow).
    # So do albums being gathered, albums seen lately and flood counters: any replica may
    # take any update, so what one update leaves for the next is where every replica looks.
    storage: BaseStorage = DatabaseStorage(db)
    isolation: BaseEventIsolation = SimpleEventIsolation()
    parts: AlbumParts = LocalAlbumParts()
    recent: RecentAlbums = LocalRecentAlbums()
    throttle: FloodGate = Throttle()
    if redis is not None:
        storage = RedisStorage(redis, key_builder=DefaultKeyBuilder(with_bot_id=True))
        isolation = RedisEventIsolation(redis, key_builder=DefaultKeyBuilder(with_bot_id=True))
        parts, recent, throttle = (
            RedisAlbumParts(redis),
            RedisRecentAlbums(redis),
            RedisThrottle(redis),
        )
    dispatcher = Dispatcher(
        storage=storage,
        events_isolation=isolation,
        prompts=PromptRequestRepo(db),
        users=UserRepo(db),
        uploads=UploadRepo(db),
        **dependencies,
    )
    dispatcher.update.outer_middleware(ObserveUpdates())
    dispatcher.update.outer_middleware(handlers)
    # A root filter: no router below sees a result shared back through inline mode.
    dispatcher.message.filter(not_shared_by_us)
    dispatcher.include_routers(*get_routers(AlbumMiddleware(parts=parts, recent=recent)))
    UserLocaleMiddleware(i18n).setup(dispatcher)
    access_middleware = AccessMiddleware(throttle=throttle)
    dispatcher.message.outer_middleware(access_middleware)
    dispatcher.callback_query.outer_middleware(access_middleware)
    return dispatcher
