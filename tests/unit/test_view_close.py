"""Closing the Telegram view leaves no progress edit behind to reopen the closed session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType

from bot.delivery.results import TelegramView
from bot.telegram.i18n import build_i18n
from bot.userapi import UserAPIClient
from storage.database import Database
from storage.tasks import TaskRecord, TaskRepo
from tests.factories import stored, task_record


class StalledSession(BaseSession):
    """A session whose requests never get an answer (like one waiting for a rate limit)."""

    def __init__(self) -> None:
        super().__init__()
        self.sending = asyncio.Event()
        self.cancelled = 0

    async def make_request(
        self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None
    ) -> TelegramType:
        """Hang until cancelled, counting the cancellation."""
        self.sending.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        raise AssertionError("unreachable")

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        """Never used here."""
        raise NotImplementedError
        yield b""  # pragma: no cover - makes this an async generator

    async def close(self) -> None:
        """Nothing to close."""


def progress_record() -> TaskRecord:
    """A running job whose status message is a text, ready for a progress edit."""
    return task_record(status="progress", progress=40, status_message_id=7)


async def test_close_cancels_an_edit_already_sending(tmp_path: Path) -> None:
    session = StalledSession()
    db = await Database.open(tmp_path / "bot.sqlite3")
    client = UserAPIClient(base_url="http://127.0.0.1:9", api_key="k")
    bot = Bot(token="42:TEST", session=session)
    view = TelegramView(bot, TaskRepo(db), client, build_i18n(), edit_interval=0.0)
    try:
        await view.job_progress(await stored(db, progress_record()))
        # Past its throttle wait the edit is sending: close() must still cancel it.
        await asyncio.wait_for(session.sending.wait(), 5)
        await view.close()
        assert session.cancelled == 1
    finally:
        await client.aclose()
        await db.close()
