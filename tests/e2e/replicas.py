"""Two replicas of one bot (`python -m bot` twice) behind a round-robin proxy, by webhook."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bot.playground.emulator import FakeTelegram
from bot.userapi.simulator import Simulator
from tests.conftest import fresh_postgres_database
from tests.e2e.harness import free_port
from tests.e2e.process import API_KEY, Output, clean_env, start_bot, wait_healthy
from tests.e2e.proxy import RoundRobinProxy


@dataclass
class Replicas:
    """The proxy Telegram and userapi reach the replicas through, and the replicas."""

    proxy: RoundRobinProxy
    database: str
    processes: list[tuple[asyncio.subprocess.Process, Output]] = field(default_factory=list)


@asynccontextmanager
async def webhook_replicas(
    tg: FakeTelegram,
    sim: Simulator,
    tmp_path: Path,
    postgres_url: str,
    redis_url: str,
    **settings: str,
) -> AsyncIterator[Replicas]:
    """Two replicas on a fresh PostgreSQL database and Redis, healthy, stopped at the end."""
    ports = [free_port(), free_port()]
    proxy = RoundRobinProxy([f"http://127.0.0.1:{port}" for port in ports])
    await proxy.start()
    replicas = Replicas(proxy, await fresh_postgres_database(postgres_url))
    try:
        for port in ports:
            env = clean_env(
                BOT_TOKEN=tg.token,
                TELEGRAM_API_URL=tg.base_url,
                USERAPI_KEY=API_KEY,
                USERAPI_BASE_URL=sim.base_url,
                WEB_HOST="127.0.0.1",
                WEB_PORT=str(port),
                PUBLIC_URL=proxy.url,
                TELEGRAM_WEBHOOK="true",
                DATABASE_URL=replicas.database,
                REDIS_URL=redis_url,
                **settings,
            )
            replicas.processes.append(await start_bot(env, tmp_path))
        for backend in proxy.backends:
            await wait_healthy(f"{backend}/healthz")
        yield replicas
    finally:
        for process, output in replicas.processes:
            if process.returncode is None:
                process.terminate()
                await process.wait()
            await output.close()
        await proxy.stop()
