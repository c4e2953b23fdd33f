"""Runs the real bot in-process against the fake Telegram server and the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bot.app import App, start_app
from bot.config import Settings
from bot.playground.emulator import ApiCall, FakeTelegram
from bot.userapi.simulator import Simulator
from bot.web.server import USERAPI_WEBHOOK_PREFIX, derive_secret
from storage.tasks import TaskRepo

SIM_KEY = "test-api-key"
# The simulator's and the Telegram emulator's packages: their tasks are the tests' side.
TESTS_SIDE = ("bot.userapi.simulator", "bot.playground.emulator")
# Long enough for a wrongly started delivery to reach the fake Telegram (they take ~50 ms).
SETTLE = 0.5


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bot_tasks() -> list[asyncio.Task[Any]]:
    """Unfinished tasks running the bot's own code (the simulator and emulator are the tests')."""
    found = []
    for task in asyncio.all_tasks():
        frame = getattr(task.get_coro(), "cr_frame", None)
        module = str(frame.f_globals.get("__name__", "")) if frame is not None else ""
        outside = any(module == name or module.startswith(f"{name}.") for name in TESTS_SIDE)
        if module.startswith(("bot.", "handlers.")) and not outside:
            found.append(task)
    return found


def button_data(message: dict[str, Any], label: str) -> str:
    """The callback data of the button with this label on a bot message."""
    for row in message.get("reply_markup", {}).get("inline_keyboard", []):
        for button in row:
            if button["text"] == label:
                return str(button["callback_data"])
    raise AssertionError(f"no button {label!r} on message {message.get('message_id')}")


def button_labels(message: dict[str, Any]) -> list[list[str]]:
    """The labels of a message's inline keyboard, row by row."""
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [[button["text"] for button in row] for row in rows]


@dataclass
class BotHarness:
    """A bot wired to a fake Telegram and a simulator, startable and stoppable at will."""

    tg: FakeTelegram
    sim: Simulator
    database_path: Path
    webhooks: bool
    port: int = field(default_factory=free_port)
    overrides: dict[str, Any] = field(default_factory=dict)
    app: App | None = None
    _runner: asyncio.Task[None] | None = None

    def settings(self) -> Settings:
        """Settings as the environment would give them."""
        values: dict[str, Any] = {
            "bot_token": self.tg.token,
            "telegram_api_url": self.tg.base_url,
            "userapi_key": SIM_KEY,
            "userapi_base_url": self.sim.base_url,
            "public_url": f"http://127.0.0.1:{self.port}" if self.webhooks else None,
            "web_host": "127.0.0.1",
            "web_port": self.port,
            "database_path": self.database_path,
            "poll_interval": 0.05,
            "poll_max_interval": 0.3,
            "webhook_quiet_after": 30.0,
            "progress_edit_interval": 0.05,
            # Telegram's limits, 20x faster: every request still passes the limiter.
            "telegram_rate_scale": 20.0,
        }
        values.update(self.overrides)
        return Settings(_env_file=None, **values)

    async def start(self) -> App:
        """Start the bot and its Telegram polling."""
        self.app = await start_app(self.settings())
        self._runner = asyncio.create_task(self.app.wait())
        return self.app

    async def stop(self) -> None:
        """Stop the bot as SIGTERM would, and fail if it left anything running or open."""
        app, runner = self.app, self._runner
        self.app, self._runner = None, None
        if app is not None:
            await app.stop()
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        # aiogram opens a new session on any request after close(); a task of the bot's still
        # running could do so long after this test, and the leak would surface in another.
        left = bot_tasks()
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        reopened = getattr(app.bot.session, "_session", None) if app is not None else None
        if isinstance(reopened, aiohttp.ClientSession) and not reopened.closed:
            await reopened.close()
        else:
            reopened = None
        # Anything else the bot left open is reported now, against the test that left it.
        gc.collect()
        assert not left, f"the bot left tasks running after stop: {left}"
        assert reopened is None, "a request after stop reopened the Telegram session"

    async def photo_reply(
        self,
        chat_id: int,
        predicate: Callable[[ApiCall], bool] = lambda c: True,
        *,
        count: int = 1,
        timeout: float = 15.0,
    ) -> dict[str, Any]:
        """Wait for the count-th successful sendPhoto to a chat and return the sent message."""
        call = await self.tg.wait_for(
            "sendPhoto",
            lambda c: c.ok and int(c.params["chat_id"]) == chat_id and predicate(c),
            count=count,
            timeout=timeout,
        )
        return dict(call.result)


def userapi_webhook_url(harness: BotHarness, secret: str | None = None) -> str:
    """The bot's userapi webhook URL (with the real secret unless one is given)."""
    real = derive_secret(harness.tg.token, "userapi-webhook")
    return f"http://127.0.0.1:{harness.port}{USERAPI_WEBHOOK_PREFIX}{secret or real}"


async def wait_in_flight(harness: BotHarness, count: int, timeout: float = 10.0) -> list[str]:
    """Wait until the bot has stored `count` accepted, unfinished tasks; return their hashes."""
    assert harness.app is not None, "the bot is not running"
    repo = TaskRepo(harness.app.db)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        hashes = [record.hash for record in await repo.in_flight() if record.hash]
        if len(hashes) >= count:
            return hashes
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{len(hashes)} of {count} tasks in flight after {timeout}s")
        await asyncio.sleep(0.02)


# ------------------------------------------------- what the bot showed, and posting to it


def has_keyboard(call: ApiCall) -> bool:
    return "reply_markup" in call.params


def results(tg: FakeTelegram, chat_id: int) -> list[ApiCall]:
    """Successful result photos (the ones with buttons) sent to a chat."""
    return [
        c
        for c in tg.calls("sendPhoto")
        if c.ok and has_keyboard(c) and int(c.params["chat_id"]) == chat_id
    ]


def texts(tg: FakeTelegram, chat_id: int) -> list[str]:
    """The current texts and captions of the bot's messages in a chat."""
    return [str(m.get("text") or m.get("caption") or "") for m in tg.bot_messages(chat_id)]


async def wait_text(tg: FakeTelegram, chat_id: int, needle: str, timeout: float = 10.0) -> str:
    """Wait until one of the bot's messages in a chat (as edited) contains `needle`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [text for text in texts(tg, chat_id) if needle in text]
        if found:
            return found[0]
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"no message with {needle!r}; have {texts(tg, chat_id)}")
        await asyncio.sleep(0.02)


def snapshot(sim: Simulator, task_hash: str, status: str, progress: int | None = None) -> bytes:
    """The task object as the simulator had it at a status (and progress), as a webhook body."""
    for task in sim.history[task_hash]:
        if task["status"] == status and progress in (None, task["progress"]):
            return json.dumps(task).encode()
    raise AssertionError(f"task {task_hash} never was {status} {progress}")


async def post(url: str, body: bytes) -> int:
    async with httpx.AsyncClient() as http:
        response = await http.post(url, content=body, headers={"Content-Type": "application/json"})
        return response.status_code


def edits_and_sends(tg: FakeTelegram, since: int) -> list[ApiCall]:
    """Calls after index `since` that show something in a chat."""
    shown = (
        "sendmessage",
        "sendphoto",
        "senddocument",
        "editmessagetext",
        "editmessagecaption",
        "editmessagemedia",
        "deletemessage",
    )
    return [c for c in tg.requests[since:] if c.method.lower() in shown]


# ------------------------------------------------------------------------- starting bots

MakeBot = Callable[..., Awaitable[BotHarness]]


@contextlib.asynccontextmanager
async def started_bots(
    tg: FakeTelegram, sim: Simulator, tmp_path: Path, **defaults: Any
) -> AsyncIterator[MakeBot]:
    """A maker of started bots on one database (polling unless `webhooks=True`); all stopped
    on exit. Settings: `defaults`, then what each call overrides."""
    started: list[BotHarness] = []

    async def make(*, webhooks: bool = False, **overrides: Any) -> BotHarness:
        runner = BotHarness(
            tg=tg,
            sim=sim,
            database_path=tmp_path / "bot.sqlite3",
            webhooks=webhooks,
            overrides={**defaults, **overrides},
        )
        await runner.start()
        started.append(runner)
        return runner

    try:
        yield make
    finally:
        for runner in started:
            await runner.stop()


async def make_harness(
    tg: FakeTelegram, sim: Simulator, tmp_path: Path, *, webhooks: bool, **overrides: Any
) -> AsyncIterator[BotHarness]:
    """A started bot taking userapi updates by webhook or by polling; stopped afterwards."""
    async with started_bots(tg, sim, tmp_path) as make:
        yield await make(webhooks=webhooks, **overrides)


# ------------------------------------------------------------------ matching bot calls


def said(chat_id: int, needle: str) -> Callable[[ApiCall], bool]:
    """Matches a successful call that put a text holding `needle` into a chat."""

    def match(call: ApiCall) -> bool:
        text = str(call.params.get("text") or "")
        return call.ok and int(call.params["chat_id"]) == chat_id and needle in text

    return match


def keyboard_in(chat_id: int) -> Callable[[ApiCall], bool]:
    """Matches a successful call that sent a message with buttons to a chat (a result)."""
    return lambda c: c.ok and int(c.params["chat_id"]) == chat_id and has_keyboard(c)


async def until(
    check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 10.0
) -> None:
    """Wait until `check()` holds (asked every 20 ms) instead of sleeping a guessed while."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await _holds(check()):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"not {what} after {timeout}s")
        await asyncio.sleep(0.02)


async def _holds(answer: bool | Awaitable[bool]) -> bool:
    return await answer if inspect.isawaitable(answer) else answer


async def answer_of(tg: FakeTelegram, query_id: str) -> dict[str, Any]:
    """Wait for the bot to answer a button press and return the answer."""
    await tg.wait_for(
        "answerCallbackQuery", lambda c: c.params.get("callback_query_id") == query_id
    )
    answer = tg.callback_answer(query_id)
    assert answer is not None
    return answer
