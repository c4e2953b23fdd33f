"""Jobs: starting Midjourney tasks and turning every task update into what the user sees.

Webhooks, the status poller and recovery after a restart all end in `Jobs.handle_update`, the
one place where an update is stored (monotonically) and, when final, delivered exactly once.
This module knows no aiogram types: the chat side is behind the `JobView` protocol.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from bot.jobs.actions import Action, follow_up
from bot.jobs.inbox import PROGRESS_GAP, WebhookInbox
from bot.jobs.queue import JobQueue, NoticeRefresher, QueueView, Slots
from bot.jobs.remix import RemixCache
from bot.jobs.request import (
    FollowUpRequest,
    JobRequest,
    dump_request,
    hook_for,
    stored_request,
    submit,
)
from bot.jobs.values import (
    Failure,
    JobGate,
    JobObserver,
    JobView,
    Requester,
    UndeliverableError,
    count_finished,
    failure_reason,
    update_from_task,
)
from bot.jobs.watch import WebhookWatch
from bot.runtime.background import Background
from bot.runtime.logs import about_job
from bot.userapi import Task, UserAPIClient, UserAPIError
from bot.userapi.models import TaskStatus
from storage.tasks import TaskRecord, TaskRepo

log = logging.getLogger(__name__)


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
        accounts: Sequence[str] = (),
        queue_view: QueueView | None = None,
        observer: JobObserver | None = None,
        webhooks: WebhookWatch | None = None,
        progress_gap: float = PROGRESS_GAP,
    ) -> None:
        self._repo = repo
        self.gate = gate
        self.queue = JobQueue(Slots(max_concurrent, accounts)) if max_concurrent else None
        self.notices = (
            NoticeRefresher(self.queue, queue_view, repo)
            if self.queue is not None and queue_view is not None
            else None
        )
        self.queue_view = queue_view
        self.observer = observer
        self._client = client
        self.view = view
        self._webhook_url = webhook_url
        self._background = Background()
        self.remix = RemixCache(client)
        self.inbox = WebhookInbox(self.handle_update, self.spawn, progress_gap)
        # First queue notices being posted: a job leaving the queue waits for its notice, which
        # becomes its status message.
        self._posting_notice: dict[int, asyncio.Task[None]] = {}
        self._submitting = 0
        self.stored: dict[str, TaskRecord] = {}  # finals stored as their webhook came, to show
        self.webhooks = webhooks  # whether userapi's webhooks reach us (None: tasks are polled)

    async def start(
        self,
        requester: Requester,
        request: JobRequest,
        *,
        type: str,
        prompt: str | None,
        parent: TaskRecord | None = None,
        action: str | None = None,
        choice: str | None = None,
    ) -> TaskRecord:
        """Store a new job with its request, then submit it now or queue it for a free slot.

        Every kind of job starts here, so here the gate refuses (the task ends `error` with the
        reason, costing nothing) and the cap queues.
        """
        refusal = await self.gate.refusal(requester, type) if self.gate else None
        # A follow-up runs on its parent's account; a job with an account named stays on it.
        account = request.account_hash or (parent.account_hash if parent else None)
        record = await self._repo.create(
            type=type,
            prompt=prompt,
            parent_id=parent.id if parent else None,
            action=action,
            choice=choice,
            account_hash=account,
            chat_id=requester.chat_id,
            user_id=requester.user_id,
            thread_id=requester.thread_id,
            request_message_id=requester.message_id,
            locale=requester.locale,
            requester=requester.name,
            request=dump_request(request),
            # Stored refused at once: a restart must never find a refused job waiting to go.
            refused=refusal,
        )
        if refusal is not None:
            log.info("Task %d (%s) refused for user %d", record.id, type, requester.user_id)
            await self._deliver(record)
            return await self._repo.require(record.id)
        if self.gate is not None:
            # A crash before this hold is taken leaves the job queued; recover() takes it then.
            refusal = await self.gate.reserve(requester, record)
            if refusal is not None:
                await self.give_up(record, refusal)
                return await self._repo.require(record.id)
        if self.queue is None:
            return await self._submit_now(record, account)
        self.queue.add(record.id, account)
        granted = dict(self._grant(skip=record.id))
        if record.id in granted:
            record = await self._submit_now(record, granted[record.id])
            if record.status != "queued":
                return record
        # Every slot is taken: say so and return; a freed slot submits it in the background.
        if self.queue_view is not None and record.id in self.queue:
            position = self.queue.position(record.id)
            posting = asyncio.create_task(self.queue_view.queued(record, position))
            self._posting_notice[record.id] = posting
            try:
                await asyncio.shield(posting)
            finally:
                self._posting_notice.pop(record.id, None)
            if self.notices is not None:
                self.notices.shown(record.id, position)
        return await self._repo.require(record.id)

    def _grant(
        self, skip: int | None = None, after: asyncio.Event | None = None
    ) -> list[tuple[int, str | None]]:
        """Hand free slots to waiting jobs and submit them at once, in the background."""
        if self.queue is None:
            return []
        granted = self.queue.grant()
        for task_id, account in granted:
            if task_id != skip:
                self.spawn(self._submit_queued(task_id, account, after))
        if granted and self.notices is not None:
            self.notices.poke()
        return granted

    async def _submit_now(self, record: TaskRecord, account: str | None) -> TaskRecord:
        """Submit a job that got a slot as it was asked for: status message, then the POST."""
        if not await self._start_sending(record.id, account):
            return await self._repo.require(record.id)
        record = await self._repo.require(record.id)
        await self.view.job_started(record)
        return await self._send(record)

    async def _submit_queued(
        self, task_id: int, account: str | None, after: asyncio.Event | None
    ) -> None:
        """Submit a job that waited: the POST first, then its notice becomes its status."""
        if not await self._start_sending(task_id, account):
            return
        await self._send(await self._repo.require(task_id))
        # The chat hears of it once the result that freed the slot is out.
        if after is not None:
            await after.wait()
        posting = self._posting_notice.get(task_id)
        if posting is not None:
            await asyncio.wait([posting])
        record = await self._repo.require(task_id)
        if not record.is_final:
            await self.view.job_started(record)

    @about_job
    async def _send(self, record: TaskRecord) -> TaskRecord:
        """Call the API once with the stored request and store its answer."""
        try:
            request = stored_request(record.request, record.account_hash)
            self._submitting += 1
            try:
                answer = await submit(self._client, request, hook_for(self._webhook_url))
            finally:
                self._submitting -= 1
        except UserAPIError as error:
            log.warning("API refused task %d (%s): %s", record.id, record.type, error.message)
            reason = failure_reason(error)
            # A button the version doesn't have is the user's choice, not the account's trouble.
            if self.observer is not None and reason != Failure.NOT_FOR_VERSION:
                await self.observer.api_error(error, record.account_hash)
            failed = await self._repo.fail(record.id, reason)
            if failed is not None:
                await self._deliver(failed)
            return await self._repo.require(record.id)
        except Exception:
            # A crash mid-submission must not keep the slot forever (recover() fails the task).
            await self._release(record.id)
            raise
        task_hash = answer if isinstance(answer, str) else answer.hash
        await self._repo.set_hash(record.id, task_hash)
        log.info(
            "Task %d (%s) sent as %s",
            record.id,
            record.type,
            task_hash,
            extra={"task_hash": task_hash},
        )
        if self.webhooks is not None:
            self.webhooks.sent(task_hash)
        if isinstance(answer, Task):
            await self.handle_update(answer)
        early = self.inbox.unpark(task_hash)
        if early is not None:
            await self.handle_update(early)
        return await self._repo.require(record.id)

    async def _start_sending(self, task_id: int, account: str | None) -> bool:
        """Claim a granted job for its POST; else it ended, or (replicas) waits for a slot."""
        cap = self.queue.cap(account) if self.queue is not None else None
        if await self._repo.start_sending(task_id, account, cap):
            return True
        if self.queue is None or not self.queue.requeue(await self._repo.require(task_id)):
            await self._release(task_id)  # it ended while waiting
        return False

    async def _release(self, task_id: int, after: asyncio.Event | None = None) -> None:
        """Free an ended job's slot (or queue place) and submit the next jobs at once."""
        if self.queue is None:
            return
        if self.queue.remove(task_id) and self.notices is not None:
            self.notices.poke()
        if self.queue.slots.release(task_id):
            self._grant(after=after)

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
            if earlier is not None and earlier.status != TaskStatus.ERROR:
                if earlier.status == TaskStatus.DONE:
                    await self.view.show_again(earlier)
                return earlier
        if parent.hash is None:  # pragma: no cover - buttons exist only on accepted tasks
            raise LookupError(f"task {parent.id} has no hash")
        endpoint = follow_up(action.kind)
        if endpoint is None:  # pragma: no cover - the handlers run these in chat
            raise ValueError(f"{action.kind} is not an API follow-up")
        choice = None if action.choice is None else str(action.choice)
        return await self.start(
            requester,
            FollowUpRequest(
                endpoint=endpoint, parent_hash=parent.hash, choice=choice, prompt=prompt
            ),
            type=action.task_type,
            prompt=prompt or parent.prompt,
            parent=parent,
            action=action.key,
            choice=choice,
        )

    def offer(self, task: Task) -> bool:
        """Handle a webhook's update in the background, one at a time per task; False: a repeat."""
        if self.webhooks is not None:
            self.webhooks.heard(task.hash)
        return self.inbox.offer(task)

    @about_job
    async def handle_update(self, task: Task) -> bool:
        """Store a task update and show it; True when it changed anything."""
        update = update_from_task(task)
        if update is None:
            return False
        record = self.stored.pop(task.hash, None) or await self._repo.apply(update)
        if record is None:
            if self._submitting and await self._repo.get_by_hash(task.hash) is None:
                self.inbox.park(task)
            return False
        if record.is_final:
            if record.status == TaskStatus.ERROR and self.observer is not None:
                await self.observer.task_failed(record)
            await self._deliver(record)
        else:
            await self.view.job_progress(record)
        return True

    @about_job
    async def _deliver(self, record: TaskRecord) -> None:
        # Every final state passes here: the slot frees and the next job is submitted at once
        # (what it shows in its chat waits until this result is out); the job is settled once.
        sent = asyncio.Event()
        try:
            await self._release(record.id, after=sent)
            if self.gate is not None:
                await self.gate.settle(record)
            await self._deliver_claimed(record)
        finally:
            sent.set()

    async def _deliver_claimed(self, record: TaskRecord) -> None:
        if not await self._repo.claim_delivery(record.id):
            return  # someone else delivers it, or already did
        try:
            # The view stores the delivery the moment Telegram has the outcome.
            await self.view.job_finished(record)
        except UndeliverableError as error:
            log.warning("Task %d can't be delivered: %s", record.id, error)
            await self._repo.mark_delivered(record.id, message_id=None, file_id=None)
        except Exception:
            # Any failure here (Telegram down, the image host down) must not lose the result:
            # hand it back so the next sweep retries (unless it was stored as delivered: the
            # sweep takes only undelivered tasks), and let the caller go on.
            log.exception("Delivering task %d failed; will retry", record.id)
            await self._repo.unclaim(record.id)
            return
        count_finished(record)

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

    async def sync_slots(self) -> None:
        """Replicas: slots as the database counts them; then grant what became free."""
        if self.queue is not None:
            await self.queue.sync(self._repo)
            self._grant()

    async def recover(self, *, alone: bool = True) -> None:
        """On taking up the work: redeliver, fail submissions cut off mid-way, take the queue."""
        # Alone, the last run's claims go back at once; else only expired ones are taken over.
        if alone:
            await self._repo.release_claims()
        for orphan in await self._repo.orphans(alone=alone):
            # We can't know whether the API got the request; asking again could pay twice.
            await self.give_up(orphan, Failure.RESTARTED)
        waiting = []
        for record in await self._repo.queued():
            # Taking a job's hold again is a no-op, unless the process died before it was taken.
            refusal = (
                await self.gate.reserve(Requester.of_task(record), record) if self.gate else None
            )
            if refusal is None:
                waiting.append(record)
            else:
                await self.give_up(record, refusal)
        if self.queue is not None:
            # Jobs still running at the API hold their slots across the restart.
            self.queue.reload(await self._repo.in_flight(), waiting)
            self._grant()
            if self.notices is not None:
                self.notices.poke()
        else:
            for record in waiting:
                self.spawn(self._submit_queued(record.id, record.account_hash, None))
        await self.deliver_pending()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run work in the background, tracked so shutdown can wait for it."""
        self._background.spawn(coro)

    async def drain(self, grace: float = 3.0) -> None:
        """Wait for background work to finish, then cancel what is left."""
        if self.notices is not None:
            await self.notices.close()
        await self._background.drain(grace)
