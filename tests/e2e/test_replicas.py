"""Two replicas of one bot (`python -m bot` twice) on PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.playground.emulator import ApiCall, FakeTelegram, LimitedTelegram
from bot.userapi.simulator import Simulator
from bot.web.server import USERAPI_WEBHOOK_PREFIX, derive_secret
from storage.database import Database, database_url
from tests.conftest import fresh_postgres_database
from tests.e2e.harness import button_data, free_port, post, results, said, snapshot, until
from tests.e2e.image_session import labels_of, picture
from tests.e2e.process import API_KEY, Output, clean_env, start_bot, wait_healthy
from tests.e2e.replicas import webhook_replicas

IMAGINE = "/midjourney/v2/imagine"


async def accepted(db: Database, count: int) -> bool:
    """Whether `count` jobs are stored with the API's hash."""
    row = await db.fetch_one("SELECT COUNT(*) AS n FROM tasks WHERE hash IS NOT NULL")
    return row is not None and int(row["n"]) >= count


async def waiting(db: Database, count: int) -> bool:
    """Whether `count` jobs wait in the queue."""
    row = await db.fetch_one("SELECT COUNT(*) AS n FROM tasks WHERE status = 'queued'")
    return row is not None and int(row["n"]) == count


def conflicts(tg: FakeTelegram) -> int:
    """getUpdates calls Telegram answered 409: two pollers at once."""
    return sum(1 for call in tg.calls("getUpdates") if call.status == 409)


async def test_one_replica_polls_a_killed_leader_is_replaced_and_a_stopped_one_hands_over(
    tg: FakeTelegram, external_sim: Simulator, tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    sim = external_sim
    database = await fresh_postgres_database(postgres_url)
    ports = [free_port(), free_port()]
    replicas: list[tuple[asyncio.subprocess.Process, Output]] = []

    def settings(port: int) -> dict[str, str]:
        return clean_env(
            BOT_TOKEN=tg.token,
            TELEGRAM_API_URL=tg.base_url,
            USERAPI_KEY=API_KEY,
            USERAPI_BASE_URL=sim.base_url,
            WEB_HOST="127.0.0.1",
            WEB_PORT=str(port),
            DATABASE_URL=database,
            REDIS_URL=redis_url,
            POLL_INTERVAL="0.1",
            POLL_MAX_INTERVAL="0.5",
        )

    for port in ports:
        replicas.append(await start_bot(settings(port), tmp_path))
    try:
        for port in ports:
            await wait_healthy(f"http://127.0.0.1:{port}/healthz")
        users = [tg.user(9001 + n, f"User{n}") for n in range(3)]
        chats = [tg.private_chat(user) for user in users]
        for chat, user in zip(chats, users, strict=True):
            tg.send_message(chat, user, f"/imagine a fox number {user['id']}")
        await until(
            lambda: all(results(tg, chat["id"]) for chat in chats), "three results", timeout=30
        )
        # Polling for a few seconds more: Telegram never sees two pollers at once.
        await asyncio.sleep(3)
        assert conflicts(tg) == 0

        leader = next(i for i, (_, output) in enumerate(replicas) if "Leading" in output.stderr)
        standby = replicas[1 - leader][1]
        assert "Leading" not in standby.stderr

        # A flow half done (waiting for a photo to describe) and a job in flight, then the
        # leader dies without a word (kill -9).
        describer, describer_chat = users[1], chats[1]
        tg.send_message(describer_chat, describer, "/describe")
        await tg.wait_for("sendMessage", said(describer_chat["id"], "Send me the photo"))
        sim.config.hold = True
        tg.send_message(chats[0], users[0], "/imagine a fox in flight")
        await until(lambda: len(sim.requests_to(IMAGINE)) == 4, "the fourth job sent")
        # Killed once it is stored as accepted (killed between its POST and storing the
        # answer, it would be failed, not resent: the API may have it).
        db = await Database.open(database_url(database, tmp_path), migrate=False)
        try:
            await until(lambda: accepted(db, 4), "the fourth job accepted")
        finally:
            await db.close()
        process = replicas[leader][0]
        process.kill()
        await process.wait()
        killed_at = time.monotonic()
        sim.release()

        # The standby takes the lead, polls Telegram and userapi, and delivers.
        late = tg.user(9100, "Late")
        late_chat = tg.private_chat(late)
        tg.send_message(late_chat, late, "/imagine a fox after the failover")
        await until(
            lambda: bool(results(tg, late_chat["id"])), "served after failover", timeout=40
        )
        await until(
            lambda: len(results(tg, chats[0]["id"])) == 2, "in-flight job delivered", timeout=20
        )
        # The waiting state lives in Redis: the new leader finishes the flow the dead one began.
        tg.send_message(describer_chat, describer, None, photo=picture())
        await tg.wait_for(
            "sendMessage",
            lambda c: (
                c.ok
                and int(c.params["chat_id"]) == describer_chat["id"]
                and labels_of(c)[:1] == [["1", "2", "3", "4"]]
            ),
            timeout=20,
        )
        assert time.monotonic() - killed_at < 20 + 10  # takeover <= 17 s, then a 1 s job
        assert "Leading" in standby.stderr
        await asyncio.sleep(2)
        # Each job submitted once and each result delivered once.
        prompts = [request.json()["prompt"] for request in sim.requests_to(IMAGINE)]
        assert len(prompts) == len(set(prompts)) == 5
        assert [len(results(tg, chat["id"])) for chat in chats] == [2, 1, 1]
        assert len(results(tg, late_chat["id"])) == 1
        assert conflicts(tg) == 0

        # A rolling deploy: the dead replica comes back, then the leader gets SIGTERM. It
        # hands the lead over and exits within 10 s; the other serves at once.
        replicas.append(await start_bot(settings(ports[leader]), tmp_path))
        await wait_healthy(f"http://127.0.0.1:{ports[leader]}/healthz")
        current = replicas[1 - leader][0]
        stopped_at = time.monotonic()
        current.terminate()
        await asyncio.wait_for(current.wait(), 10)
        assert time.monotonic() - stopped_at < 10
        tg.send_message(late_chat, late, "/imagine a fox after the deploy")
        await until(lambda: len(results(tg, late_chat["id"])) == 2, "served after the deploy")
        assert time.monotonic() - stopped_at < 10
        assert "Leading" in replicas[-1][1].stderr
        assert conflicts(tg) == 0
    finally:
        for process, output in replicas:
            if process.returncode is None:
                process.terminate()
                await process.wait()
            await output.close()


@pytest.fixture
async def limited() -> AsyncIterator[LimitedTelegram]:
    """A fake Telegram that answers 429 to whatever breaks Telegram's limits."""
    fake = LimitedTelegram()
    await fake.start()
    yield fake
    await fake.stop()


async def test_two_replicas_behind_a_load_balancer_share_slots_and_survive_a_kill(
    limited: LimitedTelegram,
    external_sim: Simulator,
    tmp_path: Path,
    postgres_url: str,
    redis_url: str,
) -> None:
    tg, sim = limited, external_sim
    async with webhook_replicas(
        tg, sim, tmp_path, postgres_url, redis_url, MAX_CONCURRENT_JOBS="30"
    ) as replicas:
        proxy, backends = replicas.proxy, replicas.proxy.backends
        # A job started on one replica, its button pressed on the other.
        ann = tg.user(9500, "Ann")
        ann_chat = tg.private_chat(ann)
        proxy.pinned = backends[0]
        tg.send_message(ann_chat, ann, "/imagine a lighthouse")
        await until(lambda: bool(results(tg, ann_chat["id"])), "the grid", timeout=30)
        grid = results(tg, ann_chat["id"])[0]
        proxy.pinned = backends[1]
        tg.press(dict(grid.result), button_data(dict(grid.result), "U1"), ann)
        await until(lambda: len(results(tg, ann_chat["id"])) == 2, "the upscale", timeout=30)
        proxy.pinned = None

        # 40 jobs at once, 30 slots across both replicas: 30 go to Midjourney, 10 wait.
        sim.config.hold = True
        users = [tg.user(9600 + n, f"User{n}") for n in range(40)]
        chats = [tg.private_chat(user) for user in users]
        for chat, user in zip(chats, users, strict=True):
            tg.send_message(chat, user, f"/imagine a crowd number {user['id']}")
        before = len(sim.requests_to(IMAGINE))
        await until(lambda: len(sim.requests_to(IMAGINE)) - before == 30, "30 jobs", timeout=30)
        db = await Database.open(database_url(replicas.database, tmp_path), migrate=False)
        try:
            await until(lambda: accepted(db, before + 30), "30 accepted")
            await until(lambda: waiting(db, 10), "10 waiting")
        finally:
            await db.close()
        await asyncio.sleep(2)
        assert len(sim.requests_to(IMAGINE)) - before == 30, "never more than 30 at once"

        # One replica dies with jobs at Midjourney and jobs waiting; the other finishes all.
        replicas.processes[0][0].kill()
        await replicas.processes[0][0].wait()
        sim.release()
        await until(
            lambda: all(results(tg, chat["id"]) for chat in chats), "every result", timeout=90
        )
        await asyncio.sleep(2)
        assert [len(results(tg, chat["id"])) for chat in chats] == [1] * 40
        prompts = [r.json()["prompt"] for r in sim.requests_to(IMAGINE)[before:]]
        assert len(prompts) == len(set(prompts)) == 40, "each job submitted once"
        # Both replicas sent within one budget: Telegram never had to say "too many".
        assert not tg.refused, [call.params.get("chat_id") for call in tg.refused]


async def test_progress_alternating_between_replicas_leaves_only_the_result_in_the_chat(
    tg: FakeTelegram, external_sim: Simulator, tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    sim = external_sim
    sim.config.send_webhooks = False  # the test posts each webhook to the replica it chooses
    hook = USERAPI_WEBHOOK_PREFIX + derive_secret(tg.token, "userapi-webhook")
    async with webhook_replicas(
        tg, sim, tmp_path, postgres_url, redis_url, PROGRESS_EDIT_INTERVAL="0.2"
    ) as replicas:
        proxy, backends = replicas.proxy, replicas.proxy.backends
        ann = tg.user(9800, "Ann")
        chat = tg.private_chat(ann)
        chat_id = int(chat["id"])
        # Replica A takes the request and posts the status message.
        proxy.pinned = backends[0]
        tg.send_message(chat, ann, "/imagine a heron at dawn")
        await tg.wait_for("sendMessage", lambda c: c.ok and int(c.params["chat_id"]) == chat_id)
        await until(lambda: len(sim.tasks) == 1, "the job at Midjourney")
        proxy.pinned = None
        [task_hash] = list(sim.tasks)
        await sim.wait_for_status(task_hash, "done")
        previews = [t["progress"] for t in sim.history[task_hash] if t["status"] == "progress"]
        assert len(previews) >= 2

        def shown_previews() -> int:
            methods = ("sendPhoto", "editMessageMedia")
            return sum(
                1
                for method in methods
                for c in tg.calls(method)
                if c.ok and int(c.params["chat_id"]) == chat_id and not has_buttons(c)
            )

        # Replica B shows the first preview (a photo in place of A's text), then replica A,
        # which posted the text, shows the second: on the same photo, not a new one.
        steps = zip(backends[::-1], previews[:2], strict=True)
        for turn, (backend, progress) in enumerate(steps, 1):
            body = snapshot(sim, task_hash, "progress", progress)
            assert await post(backend + hook, body) == 200
            await until(lambda: shown_previews() == turn, f"preview {turn}")  # noqa: B023
        deletions = len(tg.calls("deleteMessage"))
        assert await post(backends[1] + hook, snapshot(sim, task_hash, "done")) == 200
        await until(lambda: bool(results(tg, chat_id)), "the result")
        # The result's replica then deletes the status message (as it knows it).
        await tg.wait_for("deleteMessage", count=deletions + 1)
        assert [m["message_id"] for m in tg.bot_messages(chat_id)] == [
            results(tg, chat_id)[0].result["message_id"]
        ]
        assert len(tg.calls("sendPhoto")) == 2, "one preview photo, then the result"


def has_buttons(call: ApiCall) -> bool:
    """Whether a call put buttons under its message (a result does; a preview doesn't)."""
    return bool(call.params.get("reply_markup"))
