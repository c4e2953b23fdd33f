"""`python -m bot`: read the settings, start the bot, stop cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sqlite3
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from pydantic import ValidationError

from bot.config import Settings

log = logging.getLogger("bot")


class Crashed(Exception):
    """The running bot failed (logged already, with its traceback); the process exits 1."""


def load_settings(settings: type[Settings] = Settings, **given: Any) -> Settings:
    """Settings from the environment (and `given`), or a one-line explanation and exit code 2."""
    try:
        return settings(**given)  # the rest from the environment
    except ValidationError as error:
        fields = {str(part) for problem in error.errors() for part in problem["loc"]}
        if "bot_token" in fields:
            print(
                "BOT_TOKEN is not set: create a bot with @BotFather in Telegram and put its "
                "token in BOT_TOKEN (environment or .env), or try the bot in a browser first: "
                "`make run` without a token starts the playground.",
                file=sys.stderr,
            )
        else:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in error.errors()
            )
            print(f"Invalid settings: {problems}", file=sys.stderr)
        raise SystemExit(2) from None


async def run(settings: Settings, started: Callable[[], None] | None = None) -> None:
    """Start the bot and run until a stop signal; `started` is called once it has started."""
    # Imported here: aiogram takes seconds to import, and a bad configuration should be told
    # at once, before any of that.
    from aiogram.exceptions import TelegramAPIError

    from bot.app import start_app
    from bot.runtime.redact import RedactSecrets
    from bot.telegram.session import StartupError

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    # Before the start: a start waiting for Telegram must stop on SIGTERM too.
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    stop = asyncio.create_task(stopping.wait())
    starting = asyncio.create_task(start_app(settings))
    await asyncio.wait({starting, stop}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        log.info("Stopped before the start finished")
        # Cancelling unwinds the start, which releases what it had opened.
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        return
    failure = starting.exception()
    if failure is not None:
        stop.cancel()
        await asyncio.gather(stop, return_exceptions=True)
        if isinstance(failure, TelegramAPIError | OSError | sqlite3.Error):
            # Expected on a real host (Telegram failing after getMe, a database path that
            # can't be written): one line, secrets masked, not a traceback.
            secrets = [settings.bot_token.get_secret_value()]
            if settings.userapi_key is not None:
                secrets.append(settings.userapi_key.get_secret_value())
            reason = RedactSecrets(secrets).redact(f"{type(failure).__name__}: {failure}")
            raise StartupError(f"Start-up failed: {reason}") from None
    app = starting.result()
    # What exists now (aiogram's ~200,000 type objects, mostly) lives as long as the process:
    # out of the collector's sight, a full collection takes microseconds instead of ~280 ms
    # that every request in flight would wait for.
    gc.freeze()
    if started is not None:
        started()
    main = asyncio.create_task(app.wait())
    failure = None
    try:
        await asyncio.wait({main, stop}, return_when=asyncio.FIRST_COMPLETED)
        if main.done():
            failure = main.exception()
        if failure is not None:
            # Told before the stop, with its traceback: the stop may take a while or fail too.
            log.critical("The bot failed and stops", exc_info=failure)
    finally:
        log.info("Stopping")
        await app.stop()
        for task in (main, stop):
            task.cancel()
        await asyncio.gather(main, stop, return_exceptions=True)
    if failure is not None:
        # A failure must not exit 0: a supervisor restarts only a process that failed.
        raise Crashed from failure


def main() -> None:
    """Entry point."""
    if sys.argv[1:2] == ["migrate"]:
        from bot.migrate import main as migrate

        migrate(sys.argv[2:])
        return
    settings = load_settings()
    configure_logging(settings)
    serve(run(settings))


def configure_logging(settings: Settings) -> None:
    """Log lines with time, level and source, at LOG_LEVEL, as text or JSON (LOG_FORMAT)."""
    from bot.runtime.logs import configure

    configure(settings.log_level, settings.log_format)


def serve(running: Coroutine[Any, Any, None]) -> None:
    """Run the bot to its end; a failed start (one line) or a crash (traceback) exits non-zero."""
    # Imported here for the same reason as in run().
    from bot.telegram.session import StartupError

    try:
        # Not uvloop: faster webhook ingest, but downloads through httpx then buffer far more
        # (see docs/benchmarks.md).
        asyncio.run(running)
    except StartupError as error:
        log.error("%s", error)
        raise SystemExit(error.exit_code) from None
    except Crashed:
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
