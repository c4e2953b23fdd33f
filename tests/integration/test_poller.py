"""The status poller's order within its budget, against the simulator over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from bot.jobs.poller import StatusPoller
from bot.jobs.service import Jobs
from bot.userapi import UserAPIClient
from bot.userapi.simulator import Simulator, SimulatorConfig
from storage.database import Database
from storage.tasks import TaskRepo
from tests.clock import ManualClock
from tests.integration.conftest import RecordingView, store_task

KEY = "poller-key"
STATUS = "/midjourney/v2/status"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimulatorConfig(pace=0.0, api_key=KEY, hold=True))
    await simulator.start()
    yield simulator
    await simulator.stop()


def asked_about(sim: Simulator) -> list[str]:
    """The task hashes of the status requests the simulator received."""
    return [parse_qs(r.query)["hash"][0] for r in sim.requests_to(STATUS)]


async def stored_task(repo: TaskRepo, api: UserAPIClient, n: int) -> str:
    """Start a job at the simulator and store it as the bot would; return its hash."""
    task_hash = await api.imagine(prompt=f"cat {n}")
    await store_task(repo, task_hash, f"cat {n}", chat_id=n)
    return task_hash


async def test_a_new_task_is_asked_about_before_a_backlog_of_older_ones(
    sim: Simulator, tmp_path: Path
) -> None:
    db = await Database.open(tmp_path / "poll.sqlite3")
    repo = TaskRepo(db)
    clock = ManualClock()
    async with UserAPIClient(base_url=sim.base_url, api_key=KEY) as api:
        jobs = Jobs(repo=repo, client=api, view=RecordingView(), webhook_url=None)
        poller = StatusPoller(
            repo=repo,
            client=api,
            jobs=jobs,
            interval=3.0,
            max_interval=30.0,
            quiet_after=None,
            max_rate=4.0,
            clock=clock,
        )
        backlog = [await stored_task(repo, api, n) for n in range(1, 31)]
        sim.clear_requests()
        await poller.tick()  # the budget covers 4 of the 30 never asked about
        first = asked_about(sim)
        assert len(first) == 4 and set(first) <= set(backlog)
        fresh = await stored_task(repo, api, 99)
        clock.advance(1.1)  # the budget refills
        sim.clear_requests()
        await poller.tick()
        asked = asked_about(sim)
        assert fresh in asked
        await jobs.drain()
    await db.close()
