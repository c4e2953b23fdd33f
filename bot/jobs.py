"""Jobs: starting Midjourney tasks and turning every task update into what the user sees.

Webhooks, the status poller and recovery after a restart all end in `Jobs.handle_update`, the
one place where an update is stored (monotonically) and, when final, delivered exactly once.
This module knows no aiogram types: the chat side is behind the `JobView` protocol.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypedDict, cast

from bot.actions import Action
from bot.userapi import Task, UserAPIClient, UserAPIError
from storage.tasks import TaskRecord, TaskRepo, TaskUpdate

log = logging.getLogger(__name__)

# How long an account's remix mode is trusted before asking /discord/info again.
REMIX_CACHE_SECONDS = 60.0
# Webhooks for hashes we don't know yet are kept this long: the API can call back before
# its answer to our POST (with the hash) has been stored.
EARLY_UPDATE_SECONDS = 30.0
EARLY_UPDATE_LIMIT = 1000


class Hook(TypedDict, total=False):
    """Where the API should post a job's updates (empty when we poll instead)."""

    webhook_url: str
    webhook_type: Literal["progress", "result"]


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asked for a job and where the answer goes."""

    chat_id: int
    user_id: int
    thread_id: int | None = None
    message_id: int | None = None
    locale: str = "en"


@dataclass(frozen=True, slots=True)
class Delivered:
    """What the chat got for a finished task: the message and the Telegram file to reuse."""

    message_id: int | None
    file_id: str | None


class UndeliverableError(Exception):
    """The chat will never take this result (bot blocked, chat gone): stop trying."""


class JobView(Protocol):
    """The chat side of jobs; Telegram in production, a recorder in tests."""

    async def job_started(self, task: TaskRecord) -> None:
        """Show that the job was accepted (a status message)."""

    async def job_progress(self, task: TaskRecord) -> None:
        """Show a new intermediate state (may be coalesced and throttled)."""

    async def job_finished(self, task: TaskRecord) -> Delivered:
        """Show the result or the failure; raise to have it retried later."""

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
    return error.message


class Jobs:
    """Starts tasks, applies their updates, and delivers each outcome once."""

    def __init__(
        self,
        *,
        repo: TaskRepo,
        client: UserAPIClient,
        view: JobView,
        webhook_url: str | None,
    ) -> None:
        self._repo = repo
        self._client = client
        self.view = view
        self._webhook_url = webhook_url
        self._background: set[asyncio.Task[None]] = set()
        self._remix: dict[str, tuple[float, bool]] = {}
        self._early: OrderedDict[str, tuple[float, Task]] = OrderedDict()
        self._submitting = 0

    # -- starting jobs -------------------------------------------------------------------

    async def start(
        self,
        requester: Requester,
        *,
        type: str,
        prompt: str | None,
        call: Callable[[Hook], Awaitable[str | Task]],
        parent: TaskRecord | None = None,
        action: str | None = None,
        choice: str | None = None,
        account_hash: str | None = None,
    ) -> TaskRecord:
        """Store a new task, show its status message, and submit it with `call` (once).

        `call` gets the webhook arguments to pass to the client and returns the API's hash
        (or a finished task object). Every kind of job starts here.
        """
        record = await self._repo.create(
            type=type,
            prompt=prompt,
            parent_id=parent.id if parent else None,
            action=action,
            choice=choice,
            account_hash=account_hash or (parent.account_hash if parent else None),
            chat_id=requester.chat_id,
            user_id=requester.user_id,
            thread_id=requester.thread_id,
            request_message_id=requester.message_id,
            locale=requester.locale,
        )
        return await self._submit(record, call)

    async def imagine(
        self, requester: Requester, prompt: str, *, account_hash: str | None = None
    ) -> TaskRecord:
        """Start /imagine with an already normalised prompt."""
        return await self.start(
            requester,
            type="imagine",
            prompt=prompt,
            account_hash=account_hash,
            call=lambda hook: self._client.imagine(
                prompt=prompt, account_hash=account_hash, **hook
            ),
        )

    async def needs_prompt(self, parent: TaskRecord, action: Action) -> bool:
        """Whether the user must type a prompt before this action can run."""
        if action.always_needs_prompt:
            return True
        return action.takes_remix_prompt and await self.remix_enabled(parent.account_hash)

    async def run_action(
        self,
        requester: Requester,
        parent: TaskRecord,
        action: Action,
        prompt: str | None = None,
    ) -> TaskRecord:
        """Start the follow-up `action` of a finished task (a button press)."""
        if action.kind == "seed":
            earlier = await self._repo.child(parent.id, action.key)
            # The API answers /seed once per hash: a repeated press shows the kept answer.
            if earlier is not None and earlier.status != "error":
                if earlier.status == "done":
                    await self.view.show_again(earlier)
                return earlier
        if parent.hash is None:  # pragma: no cover - buttons exist only on accepted tasks
            raise LookupError(f"task {parent.id} has no hash")
        parent_hash = parent.hash
        return await self.start(
            requester,
            type=action.task_type,
            prompt=prompt or parent.prompt,
            parent=parent,
            action=action.key,
            choice=None if action.choice is None else str(action.choice),
            call=lambda hook: self._call_action(parent_hash, action, prompt, hook),
        )

    async def _call_action(
        self,
        parent_hash: str,
        action: Action,
        prompt: str | None,
        hook: Hook,
    ) -> str | Task:
        client = self._client
        choice = action.choice
        match action.kind:
            case "upscale":
                return await client.upscale(hash=parent_hash, choice=int(str(choice)), **hook)
            case "variation":
                return await client.variation(
                    hash=parent_hash, choice=int(str(choice)), prompt=prompt, **hook
                )
            case "reroll":
                return await client.reroll(hash=parent_hash, prompt=prompt, **hook)
            case "vary_subtle":
                return await client.vary_subtle(hash=parent_hash, prompt=prompt, **hook)
            case "vary_strong":
                return await client.vary_strong(hash=parent_hash, prompt=prompt, **hook)
            case "zoom":
                return await client.zoom(hash=parent_hash, choice=int(str(choice)), **hook)
            case "custom_zoom":
                return await client.zoom(hash=parent_hash, prompt=prompt, **hook)
            case "pan":
                side = cast(Literal["left", "right", "up", "down"], choice)
                return await client.pan(hash=parent_hash, choice=side, prompt=prompt, **hook)
            case "upsample":
                return await client.upsample(hash=parent_hash, choice=str(choice), **hook)
            case "animate":
                motion = cast(Literal["high", "low"], choice)
                return await client.animate(hash=parent_hash, choice=motion, **hook)
            case "seed":
                return await client.seed(hash=parent_hash, webhook_url=hook.get("webhook_url"))
        raise ValueError(f"unknown action {action.key}")

    def _hook(self) -> Hook:
        if not self._webhook_url:
            return {}
        return {"webhook_url": self._webhook_url, "webhook_type": "progress"}

    async def _submit(
        self, record: TaskRecord, call: Callable[[Hook], Awaitable[str | Task]]
    ) -> TaskRecord:
        """Show the status message, call the API once, and store its answer."""
        await self.view.job_started(record)
        self._submitting += 1
        try:
            answer: str | Task = await call(self._hook())
        except UserAPIError as error:
            log.warning("API refused task %d (%s): %s", record.id, record.type, error.message)
            failed = await self._repo.fail(record.id, failure_reason(error))
            if failed is not None:
                await self._deliver(failed)
            return await self._repo.require(record.id)
        finally:
            self._submitting -= 1
        task_hash = answer if isinstance(answer, str) else answer.hash
        await self._repo.set_hash(record.id, task_hash)
        if isinstance(answer, Task):
            await self.handle_update(answer)
        early = self._early.pop(task_hash, None)
        if early is not None:
            await self.handle_update(early[1])
        return await self._repo.require(record.id)

    # -- updates -------------------------------------------------------------------------

    async def handle_update(self, task: Task) -> bool:
        """Store a task update and show it; True when it changed anything."""
        update = update_from_task(task)
        if update is None:
            return False
        record = await self._repo.apply(update)
        if record is None:
            if self._submitting and await self._repo.get_by_hash(task.hash) is None:
                self._park(task)
            return False
        if record.is_final:
            await self._deliver(record)
        else:
            await self.view.job_progress(record)
        return True

    def _park(self, task: Task) -> None:
        now = time.monotonic()
        self._early[task.hash] = (now, task)
        while self._early and (
            len(self._early) > EARLY_UPDATE_LIMIT
            or next(iter(self._early.values()))[0] < now - EARLY_UPDATE_SECONDS
        ):
            self._early.popitem(last=False)

    async def _deliver(self, record: TaskRecord) -> None:
        if not await self._repo.claim_delivery(record.id):
            return  # someone else delivers it, or already did
        try:
            delivered = await self.view.job_finished(record)
        except UndeliverableError as error:
            log.warning("Task %d can't be delivered: %s", record.id, error)
            await self._repo.mark_delivered(record.id, message_id=None, file_id=None)
        except Exception:
            # Any failure here (Telegram down, the image host down) must not lose the result:
            # hand it back so the next sweep retries, and let the caller go on.
            log.exception("Delivering task %d failed; will retry", record.id)
            await self._repo.unclaim(record.id)
        else:
            await self._repo.mark_delivered(
                record.id, message_id=delivered.message_id, file_id=delivered.file_id
            )

    async def give_up(self, record: TaskRecord, reason: str = Failure.STUCK) -> None:
        """Fail a task the API stopped reporting on, and tell its requester (once)."""
        failed = await self._repo.fail(record.id, reason)
        if failed is not None:
            await self._deliver(failed)

    async def deliver_pending(self) -> int:
        """Deliver every finished task whose outcome has not reached its chat."""
        records = await self._repo.undelivered()
        for record in records:
            await self._deliver(record)
        return len(records)

    async def recover(self) -> None:
        """After a start: retry interrupted deliveries and fail submissions cut off mid-way."""
        await self._repo.release_claims()
        for orphan in await self._repo.orphans():
            # We can't know whether the API got the request; asking again could pay twice.
            await self.give_up(orphan, Failure.RESTARTED)
        await self.deliver_pending()

    # -- remix mode ----------------------------------------------------------------------

    async def remix_enabled(self, account_hash: str | None) -> bool:
        """Whether the account runs in remix mode (cached briefly; off when unknown)."""
        if not account_hash:
            return False
        cached = self._remix.get(account_hash)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        try:
            account = await self._client.discord_info(account_hash=account_hash)
        except UserAPIError as error:
            log.warning("Can't read remix mode of an account: %s", error.message)
            return False
        enabled = bool(account.is_remix)
        self._remix[account_hash] = (time.monotonic() + REMIX_CACHE_SECONDS, enabled)
        return enabled

    # -- background work -----------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run work in the background, tracked so shutdown can wait for it."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Background job failed", exc_info=task.exception())

    async def drain(self, grace: float = 3.0) -> None:
        """Wait for background work to finish, then cancel what is left."""
        if self._background:
            _, pending = await asyncio.wait(set(self._background), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
