"""The run contract of SPEC: `python -m bot` as a real process, configured by the environment."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.userapi.simulator import Simulator, SimulatorConfig
from tests.e2e.harness import free_port
from tests.fake_telegram import FakeTelegram

REPO = Path(__file__).resolve().parents[2]
API_KEY = "sk-userapi-VERY-secret-key-0042"
# Every setting the bot reads; the child gets only what a test gives it.
SETTINGS = (
    "BOT_TOKEN",
    "TELEGRAM_API_URL",
    "USERAPI_KEY",
    "USERAPI_BASE_URL",
    "PUBLIC_URL",
    "WEB_HOST",
    "WEB_PORT",
    "DATABASE_PATH",
    "ADMIN_IDS",
    "USERAPI_ACCOUNTS",
    "TELEGRAM_WEBHOOK",
    "SIMULATOR_PACE",
    "POLL_INTERVAL",
    "POLL_MAX_INTERVAL",
    "WEBHOOK_QUIET_AFTER",
    "PROGRESS_EDIT_INTERVAL",
    "LOG_LEVEL",
)


def clean_env(**values: str) -> dict[str, str]:
    """The parent's environment without any bot setting, plus `values` and the repo on the path."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS}
    env["PYTHONPATH"] = str(REPO)
    env.update(values)
    return env


def test_missing_bot_token_names_botfather_and_exits_2(tmp_path: Path) -> None:
    # cwd without a .env, so nothing supplies a token.
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2
    assert len(lines) == 1, done.stderr
    assert "@BotFather" in lines[0]
    assert "BOT_TOKEN" in lines[0]
    assert "Traceback" not in done.stderr + done.stdout


class Output:
    """Collects a child's stdout and stderr as they come, so its pipes never fill up."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.stdout = ""
        self.stderr = ""
        assert process.stdout is not None and process.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(process.stdout, "stdout")),
            asyncio.create_task(self._read(process.stderr, "stderr")),
        ]

    async def _read(self, stream: asyncio.StreamReader, name: str) -> None:
        async for line in stream:
            setattr(self, name, getattr(self, name) + line.decode(errors="replace"))

    async def wait_for(self, needle: str, timeout: float = 15.0) -> None:
        """Wait until `needle` appears in stderr or stdout."""
        deadline = asyncio.get_running_loop().time() + timeout
        while needle not in self.stderr + self.stdout:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{needle!r} not in the output:\n{self.stderr}")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        """Read to the end (the child has exited)."""
        await asyncio.gather(*self._readers)


@pytest.fixture
async def external_sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimulatorConfig(pace=0.05, api_key=API_KEY, grid_size=256))
    await simulator.start()
    yield simulator
    await simulator.stop()


async def wait_healthy(url: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient() as http:
        while True:
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{url} never answered 200")
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("api", ["built-in simulator", "external api"])
async def test_python_m_bot_serves_an_imagine_and_stops_on_sigterm(
    api: str, tg: FakeTelegram, external_sim: Simulator, tmp_path: Path
) -> None:
    port = free_port()
    env = clean_env(
        BOT_TOKEN=tg.token,
        TELEGRAM_API_URL=tg.base_url,
        WEB_HOST="127.0.0.1",
        WEB_PORT=str(port),
        DATABASE_PATH=str(tmp_path / "data" / "bot.sqlite3"),
        SIMULATOR_PACE="0.05",
        POLL_INTERVAL="0.1",
        POLL_MAX_INTERVAL="0.5",
        PROGRESS_EDIT_INTERVAL="0.1",
        # The most talkative level: a secret must not leak even there.
        LOG_LEVEL="DEBUG",
    )
    if api == "external api":
        env.update(USERAPI_KEY=API_KEY, USERAPI_BASE_URL=external_sim.base_url)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    output = Output(process)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}/healthz")
        if api == "built-in simulator":
            await output.wait_for("BUILT-IN SIMULATOR")

        ann = tg.user(3001, "Ann")
        tg.send_message(tg.private_chat(ann), ann, "/imagine a harbour at dawn")
        photo = await tg.wait_for(
            "sendPhoto", lambda c: c.ok and "reply_markup" in c.params, timeout=20
        )
        labels = [
            b["text"] for row in photo.params["reply_markup"]["inline_keyboard"] for b in row
        ]
        assert labels[:8] == ["U1", "U2", "U3", "U4", "V1", "V2", "V3", "V4"]
        if api == "external api":
            assert external_sim.requests_to("/midjourney/v2/imagine")

        process.send_signal(signal.SIGTERM)
        returncode = await asyncio.wait_for(process.wait(), timeout=10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await output.close()

    assert returncode == 0, output.stderr
    logs = output.stdout + output.stderr
    assert "Traceback" not in logs
    assert ("SIMULATOR" in logs) is (api == "built-in simulator")
    secret_part = tg.token.split(":", 1)[1]
    assert tg.token not in logs and secret_part not in logs
    assert API_KEY not in logs
