"""Start-up failures of `python -m bot` as a real process: one clear line each, a clean exit."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

from bot.playground.emulator import FakeTelegram
from tests.e2e.harness import free_port
from tests.e2e.process import Output, clean_env

TOKEN = "987654:AAH-start-up-secret-token-value"


async def start_bot(tmp_path: Path, **env: str) -> tuple[asyncio.subprocess.Process, Output]:
    """`python -m bot` with only the given settings (plus a free port and a fresh database)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env=clean_env(
            **{
                "WEB_HOST": "127.0.0.1",
                "WEB_PORT": str(free_port()),
                "DATABASE_PATH": str(tmp_path / "bot.sqlite3"),
                **env,
            }
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return process, Output(process)


async def finish(process: asyncio.subprocess.Process, output: Output, timeout: float) -> int:
    """The exit code, once the child exits by itself within `timeout` (killed otherwise)."""
    try:
        return await asyncio.wait_for(process.wait(), timeout=timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await output.close()


async def test_unreachable_telegram_is_retried_in_one_line_each_and_sigterm_stops_it(
    tmp_path: Path,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    process, output = await start_bot(
        tmp_path, BOT_TOKEN=TOKEN, TELEGRAM_API_URL=closed, LOG_LEVEL="DEBUG"
    )
    try:
        # Backoff from 1 s: the first two retries come within ~3 s.
        deadline = time.monotonic() + 20
        while output.stderr.count("Telegram is unreachable") < 2:
            assert time.monotonic() < deadline, output.stderr
            assert process.returncode is None, output.stderr
            await asyncio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        returncode = await finish(process, output, timeout=10)
    finally:
        if process.returncode is None:
            process.kill()
            await finish(process, output, timeout=5)
    assert time.monotonic() - stopped_at < 5
    assert returncode == 0, output.stderr
    retries = [line for line in output.stderr.splitlines() if "Telegram is unreachable" in line]
    assert len(retries) >= 2
    assert all(closed in line for line in retries), retries
    logs = output.stdout + output.stderr
    assert "Traceback" not in logs
    assert TOKEN not in logs and TOKEN.split(":", 1)[1] not in logs


async def test_a_token_telegram_rejects_exits_2_with_one_line_naming_botfather(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    # The fake Telegram knows only its own token: it answers 401 to this one, as Telegram does.
    process, output = await start_bot(
        tmp_path, BOT_TOKEN=TOKEN, TELEGRAM_API_URL=tg.base_url, LOG_LEVEL="INFO"
    )
    returncode = await finish(process, output, timeout=30)
    assert returncode == 2, output.stderr
    assert [call.status for call in tg.calls("getMe")] == [401]
    logs = output.stdout + output.stderr
    assert "Traceback" not in logs
    errors = [line for line in output.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, output.stderr
    assert "BOT_TOKEN" in errors[0] and "@BotFather" in errors[0]
    assert TOKEN not in logs and TOKEN.split(":", 1)[1] not in logs
    # Nothing went on after the refusal: no webhook change, no command menus.
    assert {call.method for call in tg.requests} == {"getMe"}


async def test_a_port_in_use_is_one_line_and_releases_what_was_started(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    port = free_port()
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", port)
    try:
        process, output = await start_bot(
            tmp_path, BOT_TOKEN=tg.token, TELEGRAM_API_URL=tg.base_url, WEB_PORT=str(port)
        )
        returncode = await finish(process, output, timeout=30)
    finally:
        blocker.close()
        await blocker.wait_closed()
    assert returncode == 1, output.stderr
    logs = output.stdout + output.stderr
    assert "Traceback" not in logs
    assert f"127.0.0.1:{port}" in logs and "WEB_PORT" in logs
    # Released: the built-in simulator and the sessions closed without "unclosed" warnings.
    assert "Unclosed" not in logs and "unclosed" not in logs


async def test_a_database_path_that_cannot_be_opened_is_one_line(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    (tmp_path / "not-a-folder").write_text("a file where a folder should be")
    process, output = await start_bot(
        tmp_path,
        BOT_TOKEN=tg.token,
        TELEGRAM_API_URL=tg.base_url,
        DATABASE_PATH=str(tmp_path / "not-a-folder" / "bot.sqlite3"),
    )
    returncode = await finish(process, output, timeout=30)
    assert returncode == 1, output.stderr
    logs = output.stdout + output.stderr
    assert "Traceback" not in logs
    errors = [line for line in output.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "Start-up failed" in errors[0], output.stderr
    assert tg.token.split(":", 1)[1] not in logs
