"""Albums across two replicas behind a round-robin proxy: each album handled once, whole."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.playground.emulator import FakeTelegram
from bot.userapi.simulator import Simulator
from tests.e2e.harness import results, texts, until
from tests.e2e.image_session import picture
from tests.e2e.proxy import RoundRobinProxy
from tests.e2e.replicas import webhook_replicas

BLEND = "/midjourney/v2/blend"
IMAGINE = "/midjourney/v2/imagine"


@pytest.fixture
async def proxy(
    tg: FakeTelegram, external_sim: Simulator, tmp_path: Path, postgres_url: str, redis_url: str
) -> AsyncIterator[RoundRobinProxy]:
    """Two replicas on PostgreSQL and Redis, taking Telegram's webhook through the proxy."""
    async with webhook_replicas(tg, external_sim, tmp_path, postgres_url, redis_url) as replicas:
        yield replicas.proxy


async def test_an_album_split_across_replicas_is_blended_once_and_a_reply_takes_it_whole(
    tg: FakeTelegram, external_sim: Simulator, proxy: RoundRobinProxy
) -> None:
    sim = external_sim
    users = [tg.user(9800 + n, f"Album{n}") for n in range(3)]
    chats = [tg.private_chat(user) for user in users]
    # Every album's first part reaches the first replica, its second part the other one.
    proxy.pinned = proxy.backends[0]
    firsts = [
        tg.send_message(chat, user, photo=picture(color="red"), media_group_id=f"split-{n}")
        for n, (chat, user) in enumerate(zip(chats, users, strict=True))
    ]
    # Nothing else goes through the proxy yet: three requests are the three first parts.
    await until(lambda: len(proxy.served) == 3, "the first parts on the first replica")
    proxy.pinned = proxy.backends[1]
    for n, (chat, user) in enumerate(zip(chats, users, strict=True)):
        tg.send_message(
            chat, user, photo=picture(color="blue"), media_group_id=f"split-{n}", caption="/blend"
        )
    await until(lambda: len(proxy.served) == 6, "the second parts on the other replica")
    assert proxy.served == [proxy.backends[0]] * 3 + [proxy.backends[1]] * 3
    proxy.pinned = None

    await until(lambda: all(results(tg, chat["id"]) for chat in chats), "three blends", timeout=30)
    await asyncio.sleep(2)  # no second handling of any album comes later
    blends = [request.json() for request in sim.requests_to(BLEND)]
    assert len(blends) == 3, "each album blended once"
    assert all(len(blend["urls"]) == 2 for blend in blends), "each with both photos"
    for chat in chats:
        assert len(results(tg, chat["id"])) == 1
        said = texts(tg, chat["id"])
        assert not [t for t in said if "Blend takes" in t or "What should I do" in t], said

    # A reply to the part the first replica saw, taken by the other: the album, whole.
    ann, ann_chat = users[0], chats[0]
    proxy.pinned = proxy.backends[1]
    tg.send_message(
        ann_chat, ann, "/imagine two moods", reply_to_message_id=firsts[0]["message_id"]
    )
    await until(lambda: len(results(tg, ann_chat["id"])) == 2, "the image prompt", timeout=30)
    prompt = sim.requests_to(IMAGINE)[-1].json()["prompt"].split(" ")
    assert prompt[2:] == ["two", "moods"]
    assert all(part.startswith(f"{sim.base_url}/cdn/") for part in prompt[:2]), prompt
