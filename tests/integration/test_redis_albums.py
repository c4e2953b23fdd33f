"""Albums gathered in Redis: two replicas' parts make one album, handled once, whole."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.types import Message
from redis.asyncio import Redis

from bot.telegram.albums import AlbumKey, RedisAlbumParts, RedisRecentAlbums
from handlers.middlewares.albums import AlbumMiddleware
from tests.unit.test_album_middleware import Seen, photo_update

QUIET = 0.4


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def bot() -> AsyncIterator[Bot]:
    bot = Bot("42:TEST")
    yield bot
    await bot.session.close()


def replica(redis: Redis, seen: Seen) -> tuple[Dispatcher, AlbumMiddleware]:
    """One replica's dispatcher, its albums in Redis; its handler notes into `seen`."""
    albums = AlbumMiddleware(QUIET, parts=RedisAlbumParts(redis), recent=RedisRecentAlbums(redis))
    router = Router()
    router.message.outer_middleware(albums)
    router.shutdown.register(albums.drain)
    router.message.register(seen.handler, F.photo)
    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    return dispatcher, albums


async def handled(seen: Seen, count: int) -> None:
    """Wait until the handlers ran `count` times in all, then a while for any extra run."""
    for _ in range(100):
        if len(seen.albums) >= count:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(QUIET * 2)


async def test_parts_on_two_replicas_are_one_album_handled_once(redis: Redis, bot: Bot) -> None:
    seen = Seen()
    replicas = [replica(redis, seen)[0], replica(redis, seen)[0]]
    for n, message_id in enumerate((12, 10, 11, 13)):  # in turn, out of order
        await replicas[n % 2].feed_update(bot, photo_update(message_id, "g1"))
    await handled(seen, 1)
    assert seen.albums == [[10, 11, 12, 13]]
    assert seen.recent is not None
    album = await seen.recent.images(AlbumKey(bot.id, 7, "g1"))
    assert [ref.file_id for ref in album] == ["f10", "f11", "f12", "f13"]


async def test_a_replica_that_dies_gathering_leaves_the_album_to_another(
    redis: Redis, bot: Bot
) -> None:
    seen = Seen()
    dispatcher, _ = replica(redis, seen)
    first = photo_update(1, "g2").message
    assert first is not None
    # The first part's replica noted it, then died before the parts stopped coming.
    await RedisAlbumParts(redis).add(AlbumKey(bot.id, 7, "g2"), first)
    await dispatcher.feed_update(bot, photo_update(2, "g2"))
    await handled(seen, 1)
    assert seen.albums == [[1, 2]]


async def test_a_part_later_than_the_window_is_an_album_of_its_own(redis: Redis, bot: Bot) -> None:
    seen = Seen()
    replicas = [replica(redis, seen)[0], replica(redis, seen)[0]]
    await replicas[0].feed_update(bot, photo_update(1, "g3"))
    await replicas[1].feed_update(bot, photo_update(2, "g3"))
    await handled(seen, 1)
    await replicas[1].feed_update(bot, photo_update(3, "g3"))
    await handled(seen, 2)
    assert seen.albums == [[1, 2], [3]]


async def test_a_stopping_replica_hands_over_the_album_at_once(redis: Redis, bot: Bot) -> None:
    seen = Seen()
    stopping, albums = replica(redis, seen)
    albums.quiet = 30  # parts would be awaited far longer than the test runs
    other, _ = replica(redis, seen)
    await stopping.feed_update(bot, photo_update(1, "g4"))
    await other.feed_update(bot, photo_update(2, "g4"))
    await asyncio.wait_for(stopping.emit_shutdown(), timeout=5)
    # Handled by the stopping replica with both parts, or by the other: once, whole.
    await handled(seen, 1)
    assert seen.albums == [[1, 2]]


async def test_parts_come_back_as_the_messages_they_were(redis: Redis, bot: Bot) -> None:
    update = photo_update(5, "g5")
    assert update.message is not None
    sent = update.message.model_copy(update={"caption": "/blend"})
    parts = RedisAlbumParts(redis)
    key = AlbumKey(bot.id, 7, "g5")
    generation = await parts.add(key, sent)
    assert await parts.add(key, sent) == generation  # the same album
    taken = await parts.take(key, generation, 0.0, bot)
    assert isinstance(taken, list) and len(taken) == 1
    back: Message = taken[0]
    # Telegram's dates are whole seconds, as the JSON keeps them.
    assert back.model_dump_json() == sent.model_dump_json() and back.caption == "/blend"
    assert back.bot is bot  # bound, so its answers can be sent
    assert await parts.take(key, generation, 0.0, bot) == []  # taken once
