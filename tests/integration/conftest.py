"""The bot's userapi webhook endpoint on a test server, with Jobs and a recording view behind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.jobs.service import Jobs
from bot.jobs.values import Delivered
from bot.userapi import UserAPIClient
from bot.web.server import USERAPI_WEBHOOK_PREFIX, build_web_app
from storage.database import Database
from storage.tasks import TaskRecord, TaskRepo

SECRET = "s" * 40
PATH = USERAPI_WEBHOOK_PREFIX + SECRET
KNOWN = "0f2c7c1e-1111-4222-8333-444455556666"


class RecordingView:
    """A JobView that records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    async def job_started(self, task: TaskRecord) -> None:
        self.calls.append(("started", task.id))

    async def job_progress(self, task: TaskRecord) -> None:
        self.calls.append(("progress", task.id))

    async def job_finished(self, task: TaskRecord) -> Delivered:
        self.calls.append(("finished", task.id))
        return Delivered(None, None)

    async def show_again(self, task: TaskRecord) -> None:
        self.calls.append(("again", task.id))


class Endpoint:
    """The bot's web app on a test server, with the Jobs and view behind it."""

    def __init__(
        self, client: TestClient[Any, Any], jobs: Jobs, view: RecordingView, repo: TaskRepo
    ) -> None:
        self.client = client
        self.jobs = jobs
        self.view = view
        self.repo = repo


async def store_task(repo: TaskRepo, task_hash: str, prompt: str, *, chat_id: int) -> None:
    """Store an accepted imagine job as the bot would, asked for in a private chat."""
    record = await repo.create(
        type="imagine",
        prompt=prompt,
        parent_id=None,
        action=None,
        choice=None,
        account_hash=None,
        chat_id=chat_id,
        user_id=chat_id,
        thread_id=None,
        request_message_id=None,
        locale="en",
    )
    await repo.set_hash(record.id, task_hash)


async def public_dns(host: str, port: int) -> list[str]:
    """DNS for tests without network: every name is public but those under `inside.`."""
    return ["10.0.0.7"] if host.startswith("inside.") else ["93.184.215.14"]


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[Endpoint]:
    db = await Database.open(tmp_path / "fuzz.sqlite3")
    repo = TaskRepo(db)
    await store_task(repo, KNOWN, "a known task", chat_id=1)
    view = RecordingView()
    api = UserAPIClient(base_url="http://127.0.0.1:9", api_key="unused", resolve=public_dns)
    jobs = Jobs(repo=repo, client=api, view=view, webhook_url="http://bot/hook")
    client = TestClient(
        TestServer(build_web_app(jobs=jobs, client=api, tasks=repo, webhook_secret=SECRET))
    )
    await client.start_server()
    yield Endpoint(client, jobs, view, repo)
    await client.close()
    await jobs.drain()
    await api.aclose()
    await db.close()
