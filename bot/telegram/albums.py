"""Albums every replica sees alike: the parts being gathered and the albums seen lately.

Telegram sends an album as one update per part; behind a load balancer the parts land on
different replicas. With Redis, the parts and the albums seen lately are kept there, so each
replica sees all of them; without it (one replica) they stay in the process.

Gathering: a part that finds no album starts one (its `generation`, set once in Redis); every
replica holding a part of it waits for the window after the last part (on Redis' clock), then
tries to `take` it. Taking is one atomic step that hands over all parts and forgets the album,
so exactly one replica handles it; the others find nothing left. If a replica dies while its
album is gathered, any other replica holding a part takes it. A part later than the window
finds the album taken and starts one of its own, handled alone, as with one replica. What is
lost: an album taken by a replica that dies before handling it, and one whose every part went
to a replica that died (their updates were done when the parts were noted).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import NamedTuple, Protocol

from aiogram import Bot
from aiogram.types import Message
from redis.asyncio import Redis

from bot.telegram.uploads import ImageRef, image_of

# Parts not taken (every replica holding them died) are forgotten after this long.
PARTS_KEPT_SECONDS = 60.0
# Albums remembered per bot in memory, so `/imagine` replying to one photo takes them all.
ALBUMS_KEPT = 200
# With Redis, an album is remembered this long after its last part came.
ALBUMS_KEPT_SECONDS = 24 * 3600.0

# KEYS: the album. ARGV: a new generation, message id, the message (JSON), keep (ms).
# Returns the album's generation: the one given when this part started it.
_ADD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSETNX', KEYS[1], 'gen', ARGV[1])
redis.call('HSET', KEYS[1], 'part:' .. ARGV[2], ARGV[3], 'last', now)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('HGET', KEYS[1], 'gen')
"""

# KEYS: the album. ARGV: generation, quiet (ms). Returns the milliseconds still to wait for
# quiet, or the album's fields (then forgotten); an empty list when the generation is gone.
_TAKE = """
if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1] then return {} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = tonumber(redis.call('HGET', KEYS[1], 'last')) + tonumber(ARGV[2]) - now
if wait > 0 then return wait end
local fields = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return fields
"""


class AlbumKey(NamedTuple):
    """One album: the bot that got it, its chat and its media_group_id."""

    bot_id: int
    chat_id: int
    group: str

    @classmethod
    def of(cls, bot: Bot, message: Message) -> AlbumKey | None:
        """The album a message is part of, if it is part of one."""
        if message.media_group_id is None:
            return None
        return cls(bot.id, message.chat.id, message.media_group_id)


class AlbumParts(Protocol):
    """Parts of albums still arriving, gathered until the parts stop coming."""

    async def add(self, key: AlbumKey, message: Message) -> str:
        """Keep one part; the generation of the album it joined (or started)."""
        ...

    async def take(
        self, key: AlbumKey, generation: str, quiet: float, bot: Bot
    ) -> list[Message] | float:
        """Seconds still to wait for `quiet` after the last part, or all the parts (in
        message_id order, then forgotten); [] when this generation was taken already."""
        ...


class RecentAlbums(Protocol):
    """The images of albums seen lately (a reply may name any part of one)."""

    async def add(self, key: AlbumKey, message: Message) -> None:
        """Note one part's image as it arrives."""
        ...

    async def images(self, key: AlbumKey) -> list[ImageRef]:
        """The album's images in message_id order; [] when it is not remembered."""
        ...


class LocalAlbumParts:
    """Album parts in this process: one replica."""

    def __init__(self) -> None:
        # Each album's generation, when its last part came (monotonic), its parts by id.
        self._albums: dict[AlbumKey, tuple[str, float, dict[int, Message]]] = {}

    async def add(self, key: AlbumKey, message: Message) -> str:
        """Keep one part; the generation of the album it joined (or started)."""
        generation, _, parts = self._albums.get(key) or (secrets.token_hex(8), 0.0, {})
        parts[message.message_id] = message
        self._albums[key] = (generation, time.monotonic(), parts)
        return generation

    async def take(
        self, key: AlbumKey, generation: str, quiet: float, bot: Bot
    ) -> list[Message] | float:
        """Seconds still to wait, or the parts in message_id order; [] when taken already."""
        album = self._albums.get(key)
        if album is None or album[0] != generation:
            return []
        wait = album[1] + quiet - time.monotonic()
        if wait > 0:
            return wait
        del self._albums[key]
        return [album[2][message_id] for message_id in sorted(album[2])]


class LocalRecentAlbums:
    """Albums seen lately by this process, the least recent forgotten first."""

    def __init__(self, limit: int = ALBUMS_KEPT) -> None:
        self._limit = limit
        self._albums: dict[AlbumKey, dict[int, ImageRef]] = {}

    async def add(self, key: AlbumKey, message: Message) -> None:
        """Note one part's image as it arrives."""
        ref = image_of(message)
        if ref is None:
            return
        # Re-inserted, so the dict's order is the order of use.
        album = self._albums.pop(key, {})
        album[message.message_id] = ref
        self._albums[key] = album
        while len(self._albums) > self._limit:
            del self._albums[next(iter(self._albums))]

    async def images(self, key: AlbumKey) -> list[ImageRef]:
        """The album's images in message_id order; [] when it is not remembered."""
        album = self._albums.get(key, {})
        return [album[message_id] for message_id in sorted(album)]


def _prefix(key: AlbumKey) -> str:
    return f"mjbot:{key.bot_id}:album:{key.chat_id}:{key.group}"


class RedisAlbumParts:
    """Album parts in Redis, so every replica gathers the same album."""

    def __init__(self, redis: Redis, kept: float = PARTS_KEPT_SECONDS) -> None:
        self._add = redis.register_script(_ADD)
        self._take = redis.register_script(_TAKE)
        self._kept_ms = int(kept * 1000)

    async def add(self, key: AlbumKey, message: Message) -> str:
        """Keep one part; the generation of the album it joined (or started)."""
        part = message.model_dump_json(by_alias=True, exclude_none=True)
        args: list[str | int] = [secrets.token_hex(8), message.message_id, part, self._kept_ms]
        generation = await self._add(keys=[_prefix(key) + ":parts"], args=args)
        return generation.decode() if isinstance(generation, bytes) else str(generation)

    async def take(
        self, key: AlbumKey, generation: str, quiet: float, bot: Bot
    ) -> list[Message] | float:
        """Seconds still to wait, or the parts in message_id order; [] when taken already."""
        args: list[str | int] = [generation, int(quiet * 1000)]
        found = await self._take(keys=[_prefix(key) + ":parts"], args=args)
        if isinstance(found, int):
            return found / 1000
        names = [name.decode() if isinstance(name, bytes) else name for name in found[::2]]
        parts = [
            Message.model_validate_json(value, context={"bot": bot})
            for name, value in zip(names, found[1::2], strict=True)
            if name.startswith("part:")
        ]
        return sorted(parts, key=lambda part: part.message_id)


class RedisRecentAlbums:
    """Albums seen lately by any replica, in Redis, each forgotten a while after its last part."""

    def __init__(self, redis: Redis, kept: float = ALBUMS_KEPT_SECONDS) -> None:
        self._redis = redis
        self._kept_ms = int(kept * 1000)

    async def add(self, key: AlbumKey, message: Message) -> None:
        """Note one part's image as it arrives."""
        ref = image_of(message)
        if ref is None:
            return
        name = _prefix(key) + ":images"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(name, str(message.message_id), json.dumps(ref.to_dict()))
            pipe.pexpire(name, self._kept_ms)
            await pipe.execute()

    async def images(self, key: AlbumKey) -> list[ImageRef]:
        """The album's images in message_id order; [] when it is not remembered."""
        found = await self._redis.hgetall(_prefix(key) + ":images")
        return [ImageRef.from_dict(json.loads(found[k])) for k in sorted(found, key=int)]
