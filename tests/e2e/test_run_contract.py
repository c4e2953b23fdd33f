"""The run contract of SPEC: `python -m bot` as a real process, configured by the environment."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bot.playground.emulator import FakeTelegram
from bot.userapi.simulator import Simulator
from tests.e2e.harness import free_port
from tests.e2e.process import API_KEY, REPO, Output, clean_env, start_bot, wait_healthy


@pytest.mark.parametrize("token", [None, ""])
def test_missing_bot_token_names_botfather_and_the_playground_and_exits_2(
    tmp_path: Path, token: str | None
) -> None:
    # cwd without a .env, so nothing supplies a token; `BOT_TOKEN=` is as good as none.
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=clean_env() if token is None else clean_env(BOT_TOKEN=token),
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
    assert "`make run` without a token starts the playground" in lines[0]
    assert "Traceback" not in done.stderr + done.stdout


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
    process, output = await start_bot(env, tmp_path)
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


def make_run() -> list[str]:
    """`make run` in the checkout, with this venv (already installed: nothing to reinstall)."""
    venv = Path(sys.prefix)
    if venv == Path(sys.base_prefix) or not (venv / "bin" / "python").exists():
        pytest.skip("make run needs the tests to run in the project's venv")
    return ["make", "-C", str(REPO), "run", f"VENV={venv}", "-o", f"{venv}/.installed-run"]


async def run_make(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, Output]:
    """`make run` in its own process group, as a terminal runs it (Ctrl-C reaches it all)."""
    process = await asyncio.create_subprocess_exec(
        *make_run(),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    return process, Output(process)


async def ctrl_c(process: asyncio.subprocess.Process) -> int:
    """Interrupt the whole group as a terminal's Ctrl-C does; the exit code."""
    os.killpg(process.pid, signal.SIGINT)
    return await asyncio.wait_for(process.wait(), timeout=15)


async def test_make_run_without_a_token_starts_the_playground(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(
        BOT_TOKEN="",
        PLAYGROUND_PORT=str(port),
        WEB_HOST="127.0.0.1",
        WEB_PORT=str(free_port()),
        DATABASE_PATH=str(tmp_path / "bot.sqlite3"),
    )
    process, output = await run_make(env)
    try:
        url = f"http://127.0.0.1:{port}/"
        await output.wait_for(f"open {url} in a browser", timeout=60)
        async with httpx.AsyncClient() as http:
            page = await http.get(url)
            state = (await http.get(f"{url}api/state")).json()
        assert page.status_code == 200 and "playground.js" in page.text
        assert [chat["title"] for chat in state["chats"]][-1] == "Playground group"
        await ctrl_c(process)
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        await output.close()
    lines = output.stdout.splitlines()
    assert any(line.startswith("Playground ready: open http://127.0.0.1:") for line in lines)
    assert any("@BotFather" in line and "BOT_TOKEN" in line for line in lines)
    assert "Traceback" not in output.stdout + output.stderr
    # The playground keeps its own database: the real bot's is untouched.
    assert not (tmp_path / "bot.sqlite3").exists()


async def test_make_run_with_a_token_starts_the_bot(tg: FakeTelegram, tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(
        BOT_TOKEN=tg.token,
        TELEGRAM_API_URL=tg.base_url,
        WEB_HOST="127.0.0.1",
        WEB_PORT=str(port),
        DATABASE_PATH=str(tmp_path / "bot.sqlite3"),
    )
    process, output = await run_make(env)
    try:
        await wait_healthy(f"http://127.0.0.1:{port}/healthz", timeout=60)
        await ctrl_c(process)
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        await output.close()
    assert "Playground" not in output.stdout
    assert "Traceback" not in output.stdout + output.stderr
    assert tg.calls("getMe")
    assert (tmp_path / "bot.sqlite3").exists()
