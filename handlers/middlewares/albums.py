"""Albums handed to the image handlers whole, and the image flows they work with."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.types import Message, TelegramObject

from bot.telegram.albums import (
    AlbumKey,
    AlbumParts,
    LocalAlbumParts,
    LocalRecentAlbums,
    RecentAlbums,
)
from handlers.images.flows import ImageFlows

log = logging.getLogger(__name__)
# Album parts arrive as separate updates a few milliseconds apart; wait this long for quiet.
ALBUM_QUIET_SECONDS = 0.6
# At shutdown, how long albums already received may take to be handled before they are dropped.
ALBUM_GRACE_SECONDS = 5.0


Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class AlbumMiddleware(BaseMiddleware):
    """Hands the image handlers a whole album (`album`: its messages) as one update.

    Telegram sends an album as separate messages sharing media_group_id. Every part is
    remembered in `recent` (a later reply may name any of them) and kept in `parts`, and its
    update returns at once; once the parts have stopped coming for `quiet` seconds, the
    handlers run once, for the first message, from a task of this middleware's, so no update
    slot is held while the album arrives. With parts shared in Redis, every replica holding a
    part waits, and the one that takes the album handles it (bot/telegram/albums.py). At
    shutdown (`drain`, on the router's shutdown) albums stop waiting and are handled as they are.
    """

    def __init__(
        self,
        quiet: float = ALBUM_QUIET_SECONDS,
        *,
        parts: AlbumParts | None = None,
        recent: RecentAlbums | None = None,
    ) -> None:
        self.quiet = quiet
        self.parts = parts or LocalAlbumParts()
        self.recent = recent or LocalRecentAlbums()
        # The generation this process waits on, per album: one task each.
        self._gathering: dict[AlbumKey, str] = {}
        self._waiting: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        """Pass single messages on; gather an album's parts and pass the album on once."""
        data["recent_albums"] = self.recent
        bot: Bot = data["bot"]
        if not isinstance(event, Message) or event.media_group_id is None:
            return await handler(event, data)
        if not (event.photo or event.document):
            return await handler(event, data)  # a video of an album is no image: not collected
        key = AlbumKey(bot.id, event.chat.id, event.media_group_id)
        await self.recent.add(key, event)
        generation = await self.parts.add(key, event)
        if self._gathering.get(key) == generation:
            return None  # this process waits for that album already
        self._gathering[key] = generation
        task = asyncio.create_task(self._when_quiet(key, generation, handler, data))
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)
        return None

    async def _when_quiet(
        self, key: AlbumKey, generation: str, handler: Handler, data: dict[str, Any]
    ) -> None:
        try:
            album = await self._gather(key, generation, data["bot"])
        except Exception:
            # Out of the update's own task, so the dispatcher can't log it: this does.
            log.exception("Gathering album %s failed", key.group)
            return
        finally:
            if self._gathering.get(key) == generation:
                del self._gathering[key]
        if not album:
            return  # another replica took it
        data["album"] = album
        try:
            await handler(album[0], data)
        except Exception:
            log.exception("Handling album %s failed", key.group)

    async def _gather(self, key: AlbumKey, generation: str, bot: Bot) -> list[Message]:
        """Wait until the parts stop coming (or shutdown), then take them; [] if taken."""
        while True:
            quiet = 0.0 if self._closing.is_set() else self.quiet
            found = await self.parts.take(key, generation, quiet, bot)
            if isinstance(found, list):
                return found
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), found)

    async def drain(self, grace: float = ALBUM_GRACE_SECONDS) -> None:
        """Handle the albums received so far now (no more parts will come), within `grace`."""
        self._closing.set()
        if not self._waiting:
            return
        _, late = await asyncio.wait(set(self._waiting), timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


async def image_flows(handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
    """Hands the image handlers `image_flows`, built from the dispatcher's dependencies."""
    data["image_flows"] = ImageFlows(
        bot=data["bot"],
        jobs=data["jobs"],
        client=data["client"],
        uploads=data["uploads"],
        user_settings=data["user_settings"],
        settings=data["settings"],
        translator=data.get("translator"),
    )
    return await handler(event, data)
