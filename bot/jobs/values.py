"""The plain values and interfaces around jobs: who asked, what the chat got, why one failed,
and the protocols jobs talk to (the gate, the view, the observer)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from bot.jobs.actions import refused_for_version
from bot.runtime.metrics import DELIVERY_SECONDS, JOB_SECONDS, JOBS
from bot.userapi import Task, TaskStatus, UserAPIError
from storage.tasks import TaskRecord, TaskUpdate

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asked for a job and where the answer goes."""

    chat_id: int
    user_id: int
    thread_id: int | None = None
    message_id: int | None = None
    locale: str = "en"
    name: str | None = None

    @classmethod
    def of_task(cls, record: TaskRecord) -> Requester:
        """Who asked for a stored job."""
        return cls(
            chat_id=record.chat_id,
            user_id=record.user_id,
            thread_id=record.thread_id,
            message_id=record.request_message_id,
            locale=record.locale,
            name=record.requester,
        )


@dataclass(frozen=True, slots=True)
class Delivered:
    """What the chat got for a finished task: the message and the Telegram file to reuse."""

    message_id: int | None
    file_id: str | None


class UndeliverableError(Exception):
    """The chat will never take this result (bot blocked, chat gone): stop trying."""


class JobGate(Protocol):
    """Access, limits and charging around jobs (bot/limits.py in production)."""

    async def refusal(self, requester: Requester, type: str) -> str | None:
        """Why this requester may not start this job now, in their words; None: go ahead."""

    async def reserve(self, requester: Requester, record: TaskRecord) -> str | None:
        """Hold what a just-stored task costs (once); why it can't start, or None: go ahead."""

    async def settle(self, record: TaskRecord) -> None:
        """A task reached a final state: charge it when `done`, release its hold otherwise."""


class JobObserver(Protocol):
    """Watches outcomes for the owner (bot/alerts.py): API errors and failed tasks."""

    async def api_error(self, error: UserAPIError, account_hash: str | None) -> None:
        """An API call failed."""

    async def task_failed(self, task: TaskRecord) -> None:
        """A task ended in `error`."""


class JobView(Protocol):
    """The chat side of jobs; Telegram in production, a recorder in tests."""

    async def job_started(self, task: TaskRecord) -> None:
        """Show that the job was accepted (a status message)."""

    async def job_progress(self, task: TaskRecord) -> None:
        """Show a new intermediate state (may be coalesced and throttled)."""

    async def job_finished(self, task: TaskRecord) -> Delivered:
        """Show the result or the failure and store it as delivered; raise to retry it later."""

    async def show_again(self, task: TaskRecord) -> None:
        """Show a finished task's result once more (a repeated press of a one-shot button)."""


def result_to_json(result: Any) -> Any:
    """A task result as plain JSON for storage."""
    if hasattr(result, "model_dump"):
        return result.model_dump(mode="json", exclude_none=True)
    return result


def update_from_task(task: Task) -> TaskUpdate | None:
    """The storable part of a task object; None when it carries no status."""
    if task.status is None:
        return None
    return TaskUpdate(
        hash=task.hash,
        status=task.status.value,
        progress=task.progress,
        result=result_to_json(task.result),
        next_actions=(
            None
            if task.next_actions is None
            else [
                action.model_dump(mode="json", exclude_none=True) for action in task.next_actions
            ]
        ),
        status_reason=task.status_reason,
        prefilter=task.prefilter_result,
        account_hash=task.account_hash,
    )


class Failure:
    """Reasons the bot itself gives a task (stored as status_reason; the view words them)."""

    PREFIX = "bot:"
    UNREACHABLE = "bot:unreachable"
    KEY_REJECTED = "bot:key_rejected"
    BUSY = "bot:busy"
    SERVER_ERROR = "bot:server_error"
    RESTARTED = "bot:restarted"
    STUCK = "bot:stuck"
    NOT_FOR_VERSION = "bot:not_for_version"


def failure_reason(error: UserAPIError) -> str:
    """The reason to store for a refused or failed API call: ours, or the API's own words."""
    if error.status is None:
        return Failure.UNREACHABLE
    if error.is_auth_error:
        return Failure.KEY_REJECTED
    if error.status == 429:
        return Failure.BUSY
    if error.status >= 500:
        return Failure.SERVER_ERROR
    if refused_for_version(error.message):
        return Failure.NOT_FOR_VERSION
    return error.message


def job_outcome(record: TaskRecord) -> str:
    """How a finished job ended, as the metrics name it: done, refused or failed.

    Refused: it never reached Midjourney because the bot's limits or the API said no (the
    API's own words, or a button the model version lacks). The bot's other reasons (API
    unreachable, restarted mid-submission, stuck) are failures, as is Midjourney's error.
    The bot has no way to cancel a job, so it never reports `cancelled`.
    """
    if record.status == TaskStatus.DONE:
        return "done"
    reason = record.status_reason or ""
    if record.hash is None and (
        reason == Failure.NOT_FOR_VERSION or not reason.startswith(Failure.PREFIX)
    ):
        return "refused"
    return "failed"


def count_finished(record: TaskRecord) -> None:
    """Log and count a job whose outcome reached its chat, with the time it took at each step."""
    outcome = job_outcome(record)
    log.info("Task %d (%s) %s; its chat has the outcome", record.id, record.type, outcome)
    JOBS.labels(record.type, outcome).inc()
    if record.status != TaskStatus.DONE:
        return
    if record.sent_at is not None:
        JOB_SECONDS.labels(record.type).observe(max(0.0, record.updated_at - record.sent_at))
    # updated_at is when the bot stored `done`: from there to now is the delivery's time.
    DELIVERY_SECONDS.observe(max(0.0, time.time() - record.updated_at))
