"""A replica whose leader's work fails: `python -m bot` says why and exits non-zero."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from bot.playground.emulator import FakeTelegram
from bot.userapi.simulator import Simulator
from storage.database import Database, database_url
from tests.conftest import fresh_postgres_database
from tests.e2e.harness import free_port
from tests.e2e.process import API_KEY, clean_env, start_bot, wait_healthy


async def test_a_standby_failing_as_it_takes_the_lead_logs_why_and_exits_non_zero(
    tg: FakeTelegram, external_sim: Simulator, tmp_path: Path, postgres_url: str, redis_url: str
) -> None:
    database = await fresh_postgres_database(postgres_url)
    port = free_port()
    redis = Redis.from_url(redis_url)
    # Another replica leads: this one starts as a standby.
    lease = f"mjbot:lease:{tg.token.split(':', 1)[0]}:leader"
    await redis.set(lease, "another-replica", px=600_000)
    env = clean_env(
        BOT_TOKEN=tg.token,
        TELEGRAM_API_URL=tg.base_url,
        USERAPI_KEY=API_KEY,
        USERAPI_BASE_URL=external_sim.base_url,
        WEB_HOST="127.0.0.1",
        WEB_PORT=str(port),
        DATABASE_URL=database,
        REDIS_URL=redis_url,
    )
    process, output = await start_bot(env, tmp_path)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}/healthz")
        # A schema this release can't read (another release migrated it): taking up the work
        # the leader left fails. Only that: the claim renewal and stop don't read the column.
        db = await Database.open(database_url(database, tmp_path), migrate=False)
        try:
            await db.execute("ALTER TABLE tasks RENAME COLUMN hash TO task_hash")
        finally:
            await db.close()
        await redis.delete(lease)  # the leader is gone
        returncode = await asyncio.wait_for(process.wait(), timeout=20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await output.close()
        await redis.aclose()
    assert returncode == 1, output.stderr
    assert "Leading" in output.stderr
    # The failure with its traceback, not just "Stopping".
    failure = output.stderr[output.stderr.index("The bot failed") :]
    assert "Traceback" in failure and 'column "hash" does not exist' in failure, failure
