"""Log output: human-readable text by default, or one JSON object per line (LOG_FORMAT=json),
with the context of the work being done (update, chat, user, task) as fields."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterator
from contextvars import ContextVar
from functools import wraps
from typing import Any, Literal, ParamSpec, TypeVar

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Fields every JSON line has (with `time`, ISO 8601 in UTC), named as log collectors expect.
JSON_FIELDS = {"levelname": "level", "name": "logger"}

# What is being worked on in this asyncio task: each task has its own copy, so concurrent
# updates and jobs never mix their fields.
_CONTEXT: ContextVar[dict[str, object]] = ContextVar("log_context", default={})  # noqa: B039

P = ParamSpec("P")
R = TypeVar("R")


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Add fields (those not None) to every line logged inside the block."""
    given = {key: value for key, value in fields.items() if value is not None}
    token = _CONTEXT.set({**_CONTEXT.get(), **given})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def job_fields(job: object) -> dict[str, object]:
    """The fields that name a job, from a stored task or from an API task object."""
    return {
        "task_hash": getattr(job, "hash", None),
        "task_id": getattr(job, "id", None),
        "account": getattr(job, "account_hash", None),
        "chat_id": getattr(job, "chat_id", None),
        "user_id": getattr(job, "user_id", None),
    }


def about_job(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Log a coroutine method's lines with the fields of the job it is given first."""

    @wraps(method)
    async def logged(*args: P.args, **kwargs: P.kwargs) -> R:
        with log_context(**job_fields(args[1])):
            return await method(*args, **kwargs)

    return logged


class ContextFields(logging.Filter):
    """Puts the current context's fields on each record (a handler's filter; never drops)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Copy the fields onto the record, leaving what the call gave in `extra` alone."""
        for key, value in _CONTEXT.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def configure(level: str, form: LogFormat) -> None:
    """Send the log to stderr at `level`, as text or as JSON lines, with context fields."""
    handler = logging.StreamHandler()
    if form == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(levelname)s %(name)s %(message)s",
                rename_fields=JSON_FIELDS,
                timestamp="time",
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ContextFields())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # httpx logs every URL at INFO; Telegram URLs hold the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # aiosqlite's DEBUG repeats every statement with its parameters (prompts, user ids), from
    # its own thread, outside any context: noise at best.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
