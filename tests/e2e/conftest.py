"""Fixtures for end-to-end tests: a fake Telegram, the simulator and the bot between them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.userapi.simulator import Simulator, SimulatorConfig
from tests.e2e.harness import SIM_KEY, BotHarness
from tests.fake_telegram import FakeTelegram


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimulatorConfig(pace=0.1, api_key=SIM_KEY, grid_size=512))
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture(params=["webhooks", "polling"])
async def harness(
    request: pytest.FixtureRequest,
    tg: FakeTelegram,
    sim: Simulator,
    tmp_path: Path,
) -> AsyncIterator[BotHarness]:
    runner = BotHarness(
        tg=tg,
        sim=sim,
        database_path=tmp_path / "bot.sqlite3",
        webhooks=request.param == "webhooks",
    )
    await runner.start()
    yield runner
    await runner.stop()
