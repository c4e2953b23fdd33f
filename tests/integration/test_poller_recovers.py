"""The status poller keeps polling after a sweep fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.jobs.poller import StatusPoller
from bot.jobs.service import Jobs
from bot.jobs.values import Delivered
from bot.userapi import UserAPIClient
from bot.userapi.simulator import Simulator, SimulatorConfig
from storage.database import Database
from storage.tasks import TaskRecord, TaskRepo
from tests.integration.conftest import RecordingView, store_task

KEY = "poller-key"


class FlakyView(RecordingView):
    """Fails the first progress it is shown, as a bug or a hiccup would."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = asyncio.Event()
        self.finished = asyncio.Event()

    async def job_progress(self, task: TaskRecord) -> None:
        if not self.failed.is_set():
            self.failed.set()
            raise RuntimeError("a bad moment")
        await super().job_progress(task)

    async def job_finished(self, task: TaskRecord) -> Delivered:
        self.finished.set()
        return await super().job_finished(task)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimulatorConfig(pace=0.05, api_key=KEY, hold=True))
    await simulator.start()
    yield simulator
    await simulator.stop()


async def test_a_failed_sweep_does_not_end_polling(
    sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = await Database.open(tmp_path / "poll.sqlite3")
    repo = TaskRepo(db)
    view = FlakyView()
    async with UserAPIClient(base_url=sim.base_url, api_key=KEY) as api:
        jobs = Jobs(repo=repo, client=api, view=view, webhook_url=None)
        poller = StatusPoller(
            repo=repo, client=api, jobs=jobs, interval=0.05, max_interval=0.2, quiet_after=None
        )
        await store_task(repo, await api.imagine(prompt="a cat"), "a cat", chat_id=1)
        running = asyncio.create_task(poller.run())
        try:
            async with asyncio.timeout(15):
                # The sweep that sees `waiting` fails; later ones see the task through.
                await view.failed.wait()
                sim.release()
                await view.finished.wait()
        finally:
            poller.stop()
            await running
            await jobs.drain()
    await db.close()
    assert "A status sweep failed" in caplog.text
