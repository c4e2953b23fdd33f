"""Running the bot as a real process (`python -m bot`), as the run contract says."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx

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
    "MAX_CONCURRENT_JOBS",
    "WEBHOOK_GRACE",
    "DATABASE_URL",
    "REDIS_URL",
    "PLAYGROUND_PORT",
    "LOG_FORMAT",
    "METRICS_TOKEN",
)


def clean_env(**values: str) -> dict[str, str]:
    """The parent's environment without any bot setting, plus `values` and the repo on the path."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS}
    env["PYTHONPATH"] = str(REPO)
    env.update(values)
    return env


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


async def start_bot(
    env: dict[str, str], cwd: Path, module: str = "bot"
) -> tuple[asyncio.subprocess.Process, Output]:
    """`python -m bot` (or another module, `bot.playground`) as a child process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return process, Output(process)
