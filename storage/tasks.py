"""Tasks: every job the bot started, its latest state, and whether its outcome was delivered."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, fields
from typing import Any

from storage.database import Row, holding
from storage.replicas.claims import CLAIM_SECONDS, TaskClaims
from storage.replicas.turns import StatusTurns

# Updates only move forward along this order: a late `progress` never undoes `done`.
# `queued` and `created` are ours: a queued job waits for a free slot and was never sent; a
# created one is being sent (the POST may have reached the API) and has no hash yet.
STATUS_RANK: dict[str, int] = {
    "queued": 0,
    "created": 0,
    "sent": 1,
    "waiting": 2,
    "progress": 3,
    "done": 4,
    "error": 4,
}
FINAL_RANK = 4


def status_rank(status: str) -> int:
    """The position of a status in the lifecycle (unknown statuses count as `sent`)."""
    return STATUS_RANK.get(status, 1)


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One row of the tasks table, with JSON columns decoded."""

    id: int
    hash: str | None
    parent_id: int | None
    type: str
    action: str | None
    choice: str | None
    prompt: str | None
    status: str
    progress: int
    status_reason: str | None
    prefilter: list[str]
    result: Any
    next_actions: list[dict[str, Any]] | None
    account_hash: str | None
    chat_id: int
    thread_id: int | None
    user_id: int
    request_message_id: int | None
    status_message_id: int | None
    status_is_photo: bool
    result_message_id: int | None
    result_file_id: str | None
    delivery: str
    locale: str
    requester: str | None
    created_at: float
    updated_at: float
    # The job's request as stored JSON (bot/job_request.py reads it); None for old rows.
    request: str | None = None
    # When the API accepted the job (its hash came back); None before that and for old rows.
    sent_at: float | None = None
    # When the user removed it from their gallery and /history; None while shown.
    hidden_at: float | None = None
    # The preview the status message shows when it is a photo, and the number of the last
    # turn taken to change the status message (storage/replicas/turns.py).
    status_preview: str | None = None
    status_turn: int = 0

    @property
    def is_final(self) -> bool:
        """Whether the task has finished, well or badly."""
        return status_rank(self.status) >= FINAL_RANK

    @classmethod
    def from_row(cls, row: Row) -> TaskRecord:
        """Build a record from a database row."""
        values = {name: row[name] for name in _RECORD_FIELDS}
        values["prefilter"] = json.loads(row["prefilter"]) if row["prefilter"] else []
        values["result"] = json.loads(row["result"]) if row["result"] else None
        values["next_actions"] = json.loads(row["next_actions"]) if row["next_actions"] else None
        values["status_is_photo"] = bool(row["status_is_photo"])
        return cls(**values)


_RECORD_FIELDS = [field.name for field in fields(TaskRecord)]


@dataclass(frozen=True, slots=True)
class Cap:
    """Midjourney's limit on jobs at once, for one pool of slots (an account, or all: None)."""

    limit: int
    pool: str | None


@dataclass(frozen=True, slots=True)
class TaskUpdate:
    """A new state of a task as the API reported it, in plain values."""

    hash: str
    status: str
    progress: int | None = None
    result: Any = None
    next_actions: list[dict[str, Any]] | None = None
    status_reason: str | None = None
    prefilter: list[str] | None = None
    account_hash: str | None = None


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


class TaskRepo(TaskClaims, StatusTurns):
    """Reads and writes tasks; every state change is a single conditional UPDATE."""

    async def create(
        self,
        *,
        type: str,
        chat_id: int,
        user_id: int,
        prompt: str | None,
        thread_id: int | None = None,
        request_message_id: int | None = None,
        parent_id: int | None = None,
        action: str | None = None,
        choice: str | None = None,
        account_hash: str | None = None,
        locale: str = "en",
        requester: str | None = None,
        request: str | None = None,
        refused: str | None = None,
    ) -> TaskRecord:
        """Store a new job, `queued` until it gets a slot and is sent (or failed, if refused)."""
        now = time.time()
        values = {
            "type": type,
            "chat_id": chat_id,
            "user_id": user_id,
            "prompt": prompt,
            "thread_id": thread_id,
            "request_message_id": request_message_id,
            "parent_id": parent_id,
            "action": action,
            "choice": choice,
            "account_hash": account_hash,
            "locale": locale,
            "requester": requester,
            "request": request,
            "status": "queued" if refused is None else "error",
            "status_rank": 0 if refused is None else FINAL_RANK,
            "status_reason": refused,
            "delivery": "none" if refused is None else "pending",
            "created_at": now,
            "updated_at": now,
            # A queued job is its replica's to submit; if that one dies, another adopts it.
            "claimed_by": self.owner if refused is None else None,
            "claim_expires": now + CLAIM_SECONDS if refused is None else None,
        }
        task_id = await self._db.insert(
            f"""INSERT INTO tasks ({", ".join(values)})
                VALUES ({", ".join(f":{name}" for name in values)}) RETURNING id""",
            values,
        )
        return await self.require(task_id)

    async def get(self, task_id: int) -> TaskRecord | None:
        """The task with this id, if any."""
        row = await self._db.fetch_one("SELECT * FROM tasks WHERE id = :id", {"id": task_id})
        return TaskRecord.from_row(row) if row else None

    async def require(self, task_id: int) -> TaskRecord:
        """The task with this id; it must exist."""
        record = await self.get(task_id)
        if record is None:
            raise LookupError(f"task {task_id} does not exist")
        return record

    async def get_by_hash(self, task_hash: str) -> TaskRecord | None:
        """The task the API knows by this hash, if any."""
        row = await self._db.fetch_one(
            "SELECT * FROM tasks WHERE hash = :hash", {"hash": task_hash}
        )
        return TaskRecord.from_row(row) if row else None

    async def start_sending(
        self, task_id: int, account_hash: str | None, cap: Cap | None = None
    ) -> bool:
        """Move a queued job to `created` just before its POST; False if it is not queued,
        or if `cap` is given and its pool already runs that many jobs (of any replica).

        From here on a restart can't know whether the API got the job (see `orphans`).
        """
        in_pool = "" if cap is None or cap.pool is None else "AND account_hash = :pool"
        room = (
            ""
            if cap is None
            else f"""AND (SELECT COUNT(*) FROM tasks
                          WHERE status_rank < 4 AND status <> 'queued' {in_pool}) < :limit"""
        )
        params = {**self._claim(), "account": account_hash, "id": task_id}
        if cap is not None:
            params |= {"limit": cap.limit, "pool": cap.pool}
        async with self._db.transaction() as statements:
            if cap is not None:
                # Replicas counting one pool's slots take turns: two can't both take the last.
                await statements.lock("slots", cap.pool or "")
            changed = await statements.execute(
                f"""UPDATE tasks SET status = 'created', updated_at = :now,
                       account_hash = COALESCE(:account, account_hash),
                       claimed_by = :me, claim_expires = :until
                    WHERE id = :id AND status = 'queued' {room}""",
                params,
            )
        return changed == 1

    async def queued(self) -> list[TaskRecord]:
        """Jobs waiting for a slot, oldest first."""
        rows = await self._db.fetch_all("SELECT * FROM tasks WHERE status = 'queued' ORDER BY id")
        return [TaskRecord.from_row(row) for row in rows]

    async def set_hash(self, task_id: int, task_hash: str) -> None:
        """Record the API's hash for a task it accepted; the task is now `sent`."""
        await self._db.execute(
            """UPDATE tasks SET hash = :hash, updated_at = :now, sent_at = :now,
                   claimed_by = NULL, claim_expires = NULL,
                   status = CASE WHEN status_rank < 1 THEN 'sent' ELSE status END,
                   status_rank = CASE WHEN status_rank < 1 THEN 1 ELSE status_rank END
               WHERE id = :id""",
            {"hash": task_hash, "now": time.time(), "id": task_id},
        )

    async def apply(self, update: TaskUpdate) -> TaskRecord | None:
        """Store an update if it moves the task forward; return the new record, else None.

        One conditional UPDATE decides, so two copies of the same webhook racing each other
        cannot both win: the loser changes no row. A final state also marks the outcome as
        waiting for delivery.
        """
        rank = status_rank(update.status)
        now = time.time()
        row = await self._db.change_returning(
            """UPDATE tasks SET
                   status = :status, status_rank = :rank,
                   progress = CASE WHEN :progress > progress THEN :progress ELSE progress END,
                   result = COALESCE(:result, result),
                   next_actions = COALESCE(:next_actions, next_actions),
                   status_reason = COALESCE(:reason, status_reason),
                   prefilter = COALESCE(:prefilter, prefilter),
                   account_hash = COALESCE(:account, account_hash),
                   delivery = CASE WHEN :rank >= 4 THEN 'pending' ELSE delivery END,
                   updated_at = :now
               WHERE hash = :hash AND status_rank < 4
                 AND (status_rank < :rank
                      OR (:rank = 3 AND status_rank = 3 AND progress < :progress))
               RETURNING *""",
            {
                "status": update.status,
                "rank": rank,
                "progress": update.progress or 0,
                "result": _json(update.result),
                "next_actions": _json(update.next_actions),
                "reason": update.status_reason,
                "prefilter": _json(update.prefilter or None),
                "account": update.account_hash,
                "now": now,
                "hash": update.hash,
            },
        )
        return TaskRecord.from_row(row) if row else None

    async def fail(self, task_id: int, reason: str) -> TaskRecord | None:
        """Mark a task failed before the API took it (it refused, or could not be reached)."""
        changed = await self._db.execute(
            """UPDATE tasks SET status = 'error', status_rank = 4, status_reason = :reason,
                   delivery = 'pending', updated_at = :now, claimed_by = NULL,
                   claim_expires = NULL
               WHERE id = :id AND status_rank < 4""",
            {"reason": reason, "now": time.time(), "id": task_id},
        )
        return await self.get(task_id) if changed else None

    async def touch(self, task_id: int) -> None:
        """Note that the task was just checked, so the watchdog waits before asking again."""
        await self._db.execute(
            "UPDATE tasks SET updated_at = :now WHERE id = :id",
            {"now": time.time(), "id": task_id},
        )

    async def in_flight(self) -> list[TaskRecord]:
        """Tasks the API accepted that have not finished."""
        rows = await self._db.fetch_all(
            "SELECT * FROM tasks WHERE status_rank < 4 AND hash IS NOT NULL ORDER BY id"
        )
        return [TaskRecord.from_row(row) for row in rows]

    async def orphans(self, *, alone: bool) -> list[TaskRecord]:
        """Tasks stored but never answered with a hash, whose submitter died mid-way."""
        # A live submitter renews its claim: with replicas only expired claims (and rows from
        # before claims) are orphans; `alone` after a restart, every one is.
        expired = "" if alone else "AND (claim_expires IS NULL OR claim_expires < :now)"
        rows = await self._db.fetch_all(
            f"""SELECT * FROM tasks WHERE status = 'created' AND hash IS NULL {expired}
                ORDER BY id""",
            {"now": time.time()},
        )
        return [TaskRecord.from_row(row) for row in rows]

    async def undelivered(self) -> list[TaskRecord]:
        """Finished tasks whose outcome has not reached the chat, and nobody alive delivers."""
        # A delivery under a live claim is under way: only one whose claim expired (its
        # process died) is anyone's to take, as `claim_delivery` decides.
        rows = await self._db.fetch_all(
            """SELECT * FROM tasks WHERE delivery = 'pending' OR (delivery = 'sending'
                   AND (claim_expires IS NULL OR claim_expires < :now))
               ORDER BY id""",
            {"now": time.time()},
        )
        return [TaskRecord.from_row(row) for row in rows]

    async def mark_delivered(
        self, task_id: int, *, message_id: int | None, file_id: str | None
    ) -> None:
        """Record that the outcome reached the chat, and the Telegram ids to reuse it."""
        await self._db.execute(
            """UPDATE tasks SET delivery = 'delivered', delivered_at = :now,
                   result_message_id = :message_id, result_file_id = :file_id,
                   claimed_by = NULL, claim_expires = NULL
               WHERE id = :id""",
            {"now": time.time(), "message_id": message_id, "file_id": file_id, "id": task_id},
        )

    async def recent_for_user(self, user_id: int, limit: int = 10) -> list[TaskRecord]:
        """A user's newest tasks, newest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM tasks WHERE user_id = :user_id ORDER BY id DESC LIMIT :limit",
            {"user_id": user_id, "limit": limit},
        )
        return [TaskRecord.from_row(row) for row in rows]

    async def gallery(
        self, user_id: int, *, words: list[str], offset: int, limit: int, upscaled: bool = False
    ) -> list[TaskRecord]:
        """A user's shown results with a file id, prompt holding every word, newest first."""
        match = "".join(f" AND LOWER(prompt) LIKE :w{n} ESCAPE '!'" for n in range(len(words)))
        order = "CASE WHEN type IN ('upscale', 'upsample') THEN 0 ELSE 1 END, " * upscaled
        rows = await self._db.fetch_all(
            f"""SELECT * FROM tasks WHERE user_id = :user_id AND result_file_id IS NOT NULL
                  AND hidden_at IS NULL{match}
                ORDER BY {order}id DESC LIMIT :limit OFFSET :offset""",
            {f"w{n}": holding(word.lower()) for n, word in enumerate(words)}
            | {"user_id": user_id, "limit": limit, "offset": offset},
        )
        return [TaskRecord.from_row(row) for row in rows]

    async def hide(self, task_id: int, user_id: int) -> bool:
        """Remove a user's own task from their gallery and /history; False if not theirs."""
        changed = await self._db.execute(
            "UPDATE tasks SET hidden_at = :now WHERE id = :id AND user_id = :user_id",
            {"now": time.time(), "id": task_id, "user_id": user_id},
        )
        return changed == 1

    async def child(self, parent_id: int, action: str) -> TaskRecord | None:
        """The newest task started from a parent by a given action, if any."""
        row = await self._db.fetch_one(
            """SELECT * FROM tasks WHERE parent_id = :parent_id AND action = :action
               ORDER BY id DESC LIMIT 1""",
            {"parent_id": parent_id, "action": action},
        )
        return TaskRecord.from_row(row) if row else None

    async def recent_in_chat(
        self, user_id: int, chat_id: int, limit: int = 10
    ) -> list[TaskRecord]:
        """A user's newest tasks started in one chat, newest first."""
        rows = await self._db.fetch_all(
            """SELECT * FROM tasks WHERE user_id = :user_id AND chat_id = :chat_id
                 AND hidden_at IS NULL ORDER BY id DESC LIMIT :limit""",
            {"user_id": user_id, "chat_id": chat_id, "limit": limit},
        )
        return [TaskRecord.from_row(row) for row in rows]
