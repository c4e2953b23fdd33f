"""Fixtures for end-to-end tests: a fake Telegram, the simulator and the bot between them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.playground.emulator import FakeTelegram
from bot.userapi.simulator import Simulator, SimulatorConfig
from tests.conftest import fresh_postgres_database
from tests.e2e.harness import SIM_KEY, BotHarness, make_harness
from tests.e2e.process import API_KEY


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    """The simulator, at the pace a test module sets in SIM_PACE (seconds per step)."""
    pace = getattr(request.module, "SIM_PACE", 0.1)
    simulator = Simulator(SimulatorConfig(pace=pace, api_key=SIM_KEY, grid_size=512))
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def external_sim() -> AsyncIterator[Simulator]:
    """A simulator outside the bot, for a bot run as its own process (`python -m bot`)."""
    simulator = Simulator(SimulatorConfig(pace=0.05, api_key=API_KEY, grid_size=256))
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def webhook_harness(
    tg: FakeTelegram, sim: Simulator, tmp_path: Path
) -> AsyncIterator[BotHarness]:
    async for runner in make_harness(tg, sim, tmp_path, webhooks=True):
        yield runner


@pytest.fixture
async def polling_harness(
    tg: FakeTelegram, sim: Simulator, tmp_path: Path
) -> AsyncIterator[BotHarness]:
    async for runner in make_harness(tg, sim, tmp_path, webhooks=False):
        yield runner


@pytest.fixture(params=["webhooks", "polling", "webhooks-postgresql"])
async def harness(
    request: pytest.FixtureRequest, tg: FakeTelegram, sim: Simulator, tmp_path: Path
) -> AsyncIterator[BotHarness]:
    """The same test with webhooks, with polling, and with webhooks on PostgreSQL."""
    overrides = {}
    if request.param.endswith("-postgresql"):
        server: str = request.getfixturevalue("postgres_url")
        overrides["database_url"] = await fresh_postgres_database(server)
    webhooks = request.param.startswith("webhooks")
    async for runner in make_harness(tg, sim, tmp_path, webhooks=webhooks, **overrides):
        yield runner


@pytest.fixture
async def webapp_bot(
    tg: FakeTelegram, sim: Simulator, tmp_path: Path
) -> AsyncIterator[BotHarness]:
    """The bot with userapi webhooks and the Vary (Region) Mini App."""
    runner = BotHarness(tg=tg, sim=sim, database_path=tmp_path / "bot.sqlite3", webhooks=True)
    # Telegram needs HTTPS for Mini Apps; the test reaches the same server over plain HTTP.
    runner.overrides["webapp_url"] = f"https://127.0.0.1:{runner.port}"
    await runner.start()
    yield runner
    await runner.stop()
