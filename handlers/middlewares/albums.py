"""Albums handed to the image handlers whole, and the image flows they work with."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Message, TelegramObject

from handlers.images.common import RecentAlbums
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
    remembered (a later reply may name any of them) and returns at once; once the parts have
    stopped coming for `quiet` seconds, the handlers run once, for the first message, from a
    task of this middleware's, so no update slot is held while the album arrives. At shutdown
    (`drain`, on the router's shutdown) albums stop waiting and are handled as they are.
    """

    def __init__(self, quiet: float = ALBUM_QUIET_SECONDS) -> None:
        self.quiet = quiet
        self.recent = RecentAlbums()
        self._parts: dict[tuple[int, str], list[Message]] = {}
        self._waiting: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        """Pass single messages on; gather an album's parts and pass the album on once."""
        data["recent_albums"] = self.recent
        if not isinstance(event, Message) or event.media_group_id is None:
            return await handler(event, data)
        if not (event.photo or event.document):
            return await handler(event, data)  # a video of an album is no image: not collected
        self.recent.add(event)
        key = (event.chat.id, event.media_group_id)
        parts = self._parts.get(key)
        if parts is not None:
            parts.append(event)
            return None
        self._parts[key] = [event]
        task = asyncio.create_task(self._when_quiet(key, handler, data))
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)
        return None

    async def _when_quiet(
        self, key: tuple[int, str], handler: Handler, data: dict[str, Any]
    ) -> None:
        seen = 0
        while seen != len(self._parts[key]) and not self._closing.is_set():
            seen = len(self._parts[key])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.quiet)
        album = sorted(self._parts.pop(key), key=lambda m: m.message_id)
        data["album"] = album
        try:
            await handler(album[0], data)
        except Exception:
            # Out of the update's own task, so the dispatcher can't log it: this does.
            log.exception("Handling album %s failed", key[1])

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
