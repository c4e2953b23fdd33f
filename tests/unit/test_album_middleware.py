"""AlbumMiddleware: an album reaches the handlers once, whole, and no update waits for it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot, Dispatcher, F, Router
from aiogram.types import Chat, Message, PhotoSize, Update, User

from bot.telegram.albums import AlbumKey, RecentAlbums
from handlers.middlewares.albums import AlbumMiddleware

QUIET = 0.4


def photo_update(message_id: int, group: str | None) -> Update:
    """A private photo message, part of album `group` if given."""
    message = Message(
        message_id=message_id,
        date=datetime.now(UTC),
        chat=Chat(id=7, type="private"),
        from_user=User(id=7, is_bot=False, first_name="Ann"),
        photo=[
            PhotoSize(file_id=f"f{message_id}", file_unique_id=f"u{message_id}", width=9, height=9)
        ],
        media_group_id=group,
    )
    return Update(update_id=message_id, message=message)


class Seen:
    """What the handler was given, and a way to wait for it."""

    def __init__(self) -> None:
        self.albums: list[list[int]] = []
        self.recent: RecentAlbums | None = None
        self.arrived = asyncio.Event()

    async def handler(
        self, message: Message, recent_albums: RecentAlbums, album: list[Message] | None = None
    ) -> None:
        """Note the album (or the lone message)."""
        self.albums.append([m.message_id for m in album or [message]])
        self.recent = recent_albums
        self.arrived.set()


def dispatcher(seen: Seen) -> Dispatcher:
    router = Router()
    router.message.outer_middleware(AlbumMiddleware(quiet=QUIET))
    router.message.register(seen.handler, F.photo)
    dp = Dispatcher()
    dp.include_router(router)
    return dp


async def test_an_album_reaches_the_handler_once_whole_and_no_update_waits() -> None:
    seen = Seen()
    dp = dispatcher(seen)
    bot = Bot("42:TEST")
    loop = asyncio.get_running_loop()
    started = loop.time()
    for message_id in (12, 10, 11):  # parts may arrive out of order
        await dp.feed_update(bot, photo_update(message_id, "g1"))
    # Each part's update is done at once: none sits out the quiet time in an update slot.
    assert loop.time() - started < QUIET / 2
    assert seen.albums == []
    await asyncio.wait_for(seen.arrived.wait(), timeout=5)
    await asyncio.sleep(QUIET * 1.5)  # no second call for the other parts
    assert seen.albums == [[10, 11, 12]]
    assert seen.recent is not None
    album = await seen.recent.images(AlbumKey(bot.id, 7, "g1"))
    assert [ref.file_id for ref in album] == ["f10", "f11", "f12"]
    await bot.session.close()


async def test_a_single_photo_goes_straight_through() -> None:
    seen = Seen()
    dp = dispatcher(seen)
    bot = Bot("42:TEST")
    await dp.feed_update(bot, photo_update(5, None))
    assert seen.albums == [[5]]  # handled within its own update
    await bot.session.close()


async def test_two_albums_at_once_stay_apart() -> None:
    seen = Seen()
    dp = dispatcher(seen)
    bot = Bot("42:TEST")
    updates: list[Any] = [photo_update(1, "a"), photo_update(2, "b"), photo_update(3, "a")]
    for update in updates:
        await dp.feed_update(bot, update)
    for _ in range(50):
        if len(seen.albums) == 2:
            break
        await asyncio.sleep(0.1)
    assert sorted(seen.albums) == [[1, 3], [2]]
    await bot.session.close()


async def test_shutdown_handles_an_album_still_gathering_at_once() -> None:
    seen = Seen()
    router = Router()
    albums = AlbumMiddleware(quiet=30)  # parts would be awaited far longer than the test runs
    router.message.outer_middleware(albums)
    router.shutdown.register(albums.drain)
    router.message.register(seen.handler, F.photo)
    dp = Dispatcher()
    dp.include_router(router)
    bot = Bot("42:TEST")
    for message_id in (1, 2):
        await dp.feed_update(bot, photo_update(message_id, "g"))
    await asyncio.wait_for(dp.emit_shutdown(), timeout=5)
    assert seen.albums == [[1, 2]]
    await bot.session.close()
