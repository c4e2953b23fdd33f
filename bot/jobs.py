"""Jobs: starting Midjourney tasks and turning every task update into what the user sees.

Webhooks, the status poller and recovery after a restart all end in `Jobs.handle_update`, the
one place where an update is stored (monotonically) and, when final, delivered exactly once.
This module knows no aiogram types: the chat side is behind the `JobView` protocol.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypedDict, cast

from bot.actions import Action
from bot.userapi import Task, UserAPIClient, UserAPIError
from storage.tasks import TaskRecord, TaskRepo, TaskUpdate, status_rank

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
    name: str | None = None


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


class QueueView(Protocol):
    """Shows a job waiting for a free slot (a status message with its place in the queue)."""

    async def queued(self, task: TaskRecord, position: int) -> None:
        """Say the job waits, and where in the queue (1 = next); called again when it moves."""

    async def dequeued(self, task: TaskRecord) -> None:
        """The job left the queue (it starts now): take the waiting message away."""


class JobObserver(Protocol):
    """Watches outcomes for the owner (bot/alerts.py): API errors and failed tasks."""

    async def api_error(self, error: UserAPIError, account_hash: str | None) -> None:
        """An API call failed."""

    async def task_failed(self, task: TaskRecord) -> None:
        """A task ended in `error`."""


class Slots:
    """A global cap on jobs at the API, with a first-come queue for the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.busy: set[int] = set()
        self.waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    def try_take(self, task_id: int) -> bool:
        """Take a slot at once if one is free and nobody waits before us."""
        if len(self.busy) < self.limit and not self.waiting:
            self.busy.add(task_id)
            return True
        return False

    def enqueue(self, task_id: int) -> asyncio.Future[None]:
        """Join the queue; the future resolves when the slot is ours."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((task_id, future))
        return future

    def position(self, task_id: int) -> int:
        """Place in the queue, 1 = next (0 when not waiting)."""
        for place, (waiting_id, _) in enumerate(self.waiting, start=1):
            if waiting_id == task_id:
                return place
        return 0

    def release(self, task_id: int) -> list[int]:
        """Free a task's slot (idempotent); return the ids that got a slot from it."""
        if task_id not in self.busy:
            return []
        self.busy.discard(task_id)
        granted = []
        while self.waiting and len(self.busy) < self.limit:
            waiting_id, future = self.waiting.popleft()
            if future.done():  # its waiter was cancelled (shutdown)
                continue
            self.busy.add(waiting_id)
            future.set_result(None)
            granted.append(waiting_id)
        return granted


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


def _advance(task: Task) -> tuple[int, int]:
    """How far along an update says its task is (a status-less one says nothing)."""
    if task.status is None:
        return (-1, 0)
    return (status_rank(task.status.value), task.progress or 0)


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
        gate: JobGate | None = None,
        max_concurrent: int | None = None,
        queue_view: QueueView | None = None,
        observer: JobObserver | None = None,
    ) -> None:
        self._repo = repo
        self.gate = gate
        self.slots = Slots(max_concurrent) if max_concurrent else None
        self.queue_view = queue_view
        self.observer = observer
        self._client = client
        self.view = view
        self._webhook_url = webhook_url
        self._background: set[asyncio.Task[None]] = set()
        self._remix: dict[str, tuple[float, bool]] = {}
        self._early: OrderedDict[str, tuple[float, Task]] = OrderedDict()
        # Webhook updates waiting per task hash (at most one: the most advanced) while that
        # task's previous update is being handled.
        self._queued: dict[str, Task] = {}
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
        (or a finished task object). Every kind of job starts here, so here the gate refuses
        (the task ends `error` with the reason, costing nothing) and the global cap queues.
        """
        refusal = await self.gate.refusal(requester, type) if self.gate else None
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
            requester=requester.name,
        )
        if refusal is None and self.gate is not None:
            refusal = await self.gate.reserve(requester, record)
        if refusal is not None:
            log.info("Task %d (%s) refused for user %d", record.id, type, requester.user_id)
            await self.give_up(record, refusal)
            return await self._repo.require(record.id)
        if self.slots is None or self.slots.try_take(record.id):
            return await self._submit_holding(record, call)
        # Every slot is taken: wait our turn in the background so the caller is not held up.
        waiting = self.slots.enqueue(record.id)
        if self.queue_view is not None:
            await self.queue_view.queued(record, self.slots.position(record.id))
        self.spawn(self._submit_when_free(record, waiting, call))
        return record

    async def _submit_when_free(
        self,
        record: TaskRecord,
        waiting: asyncio.Future[None],
        call: Callable[[Hook], Awaitable[str | Task]],
    ) -> None:
        await waiting
        if self.queue_view is not None:
            await self.queue_view.dequeued(record)
        await self._submit_holding(record, call)

    async def _submit_holding(
        self, record: TaskRecord, call: Callable[[Hook], Awaitable[str | Task]]
    ) -> TaskRecord:
        try:
            return await self._submit(record, call)
        except Exception:
            # A crash mid-submission must not keep the slot forever (recover() fails the task).
            await self._release(record.id)
            raise

    async def _release(self, task_id: int) -> None:
        """Give a finished task's slot to the next in the queue, and tell the rest they moved."""
        if self.slots is None or not self.slots.release(task_id):
            return
        if self.queue_view is None:
            return
        for waiting_id, _ in list(self.slots.waiting):
            waiting = await self._repo.get(waiting_id)
            if waiting is not None:
                await self.queue_view.queued(waiting, self.slots.position(waiting_id))

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
            if self.observer is not None:
                await self.observer.api_error(error, record.account_hash)
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

    def offer(self, task: Task) -> None:
        """Handle a webhook's update in the background, at most one at a time per task."""
        # A burst of progress webhooks for one task need not each reach the database and the
        # chat: while one is handled, only the most advanced of those arriving meanwhile waits.
        queued = self._queued.get(task.hash)
        if queued is None or _advance(task) >= _advance(queued):
            self._queued[task.hash] = task
        if queued is None:
            self.spawn(self._handle_queued(task.hash))

    async def _handle_queued(self, task_hash: str) -> None:
        while (task := self._queued.get(task_hash)) is not None:
            try:
                await self.handle_update(task)
            except Exception:
                # Logged and passed over, so the updates queued behind it are not stranded.
                log.exception("Update of task %s failed", task_hash)
            finally:
                # Removed only now, so that updates arriving meanwhile queue behind this one.
                if self._queued.get(task_hash) is task:
                    del self._queued[task_hash]

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
            if record.status == "error" and self.observer is not None:
                await self.observer.task_failed(record)
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
        # Every final state passes here: the slot frees, and the job is settled (once).
        await self._release(record.id)
        if self.gate is not None:
            await self.gate.settle(record)
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
        if self.slots is not None:
            # Jobs still running at the API hold their slots across the restart.
            self.slots.busy.update(record.id for record in await self._repo.in_flight())
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
