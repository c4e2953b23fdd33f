"""Credits: a ledger of every change to a user's balance; the balance is the ledger's sum.

Kinds of entry and what each does to the spendable balance (`amount`):
- `purchase` +credits, once per Telegram payment (`charge_id`), with the Stars paid;
- `grant` ±credits, an admin's change with a reason;
- `refund` -credits, once per purchase, when its Stars are returned (`reason` is `pending`
  while Telegram's answer is unknown, `confirmed` once it is known they went back);
- `reserve` -cost, once per task, when it starts (a hold);
- `charge` 0, the hold is spent (the task ended `done`);
- `release` +cost, the hold comes back (any other final state).
A task is settled (charged or released) at most once: a unique index sees to it.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from storage.database import Database

# A user's spendable balance, for the user id bound to `:user_id`.
_BALANCE = "(SELECT COALESCE(SUM(amount), 0) FROM credit_ledger WHERE user_id = :user_id)"


@dataclass(frozen=True, slots=True)
class Balance:
    """What a user can spend now, and what running jobs hold."""

    credits: int
    reserved: int


@dataclass(frozen=True, slots=True)
class Purchase:
    """A pack bought with Stars."""

    charge_id: str
    user_id: int
    credits: int
    stars: int
    created_at: float
    refunded: bool


@dataclass(frozen=True, slots=True)
class JobCost:
    """What a job held or cost: `reserved` while it runs, then `charge` or `release`."""

    credits: int
    state: str


@dataclass(frozen=True, slots=True)
class DayFigures:
    """One day's money: Stars in, Stars refunded, credits spent on finished jobs."""

    day: str
    stars: int
    refunded_stars: int
    credits_spent: int


@dataclass(frozen=True, slots=True)
class Settled:
    """A settled hold: whether the task had one, and what this settling charged (once)."""

    held: bool
    charged: int

    def __bool__(self) -> bool:
        """True when the task had a hold."""
        return self.held


class RefundOutcome(enum.Enum):
    """What asking to refund a purchase came to."""

    DONE = "done"
    # Asked before and Telegram's answer never came: ask Telegram again.
    PENDING = "pending"
    UNKNOWN = "unknown"
    ALREADY = "already"
    SPENT = "spent"


def _day(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d")


class CreditsRepo:
    """Reads and writes the credits ledger."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def balance(self, user_id: int) -> Balance:
        """A user's spendable credits and the credits their running jobs hold."""
        row = await self._db.fetch_one(
            """SELECT COALESCE(SUM(amount), 0) AS credits,
                      COALESCE(-SUM(CASE WHEN kind = 'reserve' AND NOT EXISTS (
                          SELECT 1 FROM credit_ledger s
                          WHERE s.task_id = l.task_id AND s.kind IN ('charge', 'release')
                      ) THEN amount END), 0) AS reserved
               FROM credit_ledger l WHERE user_id = :user_id""",
            {"user_id": user_id},
        )
        if row is None:  # pragma: no cover - an aggregate always has a row
            return Balance(0, 0)
        return Balance(int(row["credits"]), int(row["reserved"]))

    async def reserve(self, *, user_id: int, task_id: int, cost: int) -> bool:
        """Hold a task's cost if the user can pay it (or it holds it already); False if not."""
        params = {"user_id": user_id, "amount": -cost, "cost": cost, "task_id": task_id}
        async with self._db.transaction() as statements:
            # One user's balance changes take turns: two jobs can't both pass the check on
            # the same balance.
            await statements.lock("credits", user_id)
            changed = await statements.execute(
                f"""INSERT INTO credit_ledger (user_id, kind, amount, task_id, created_at)
                    SELECT :user_id, 'reserve', :amount, :task_id, :now
                    WHERE {_BALANCE} >= :cost
                    ON CONFLICT DO NOTHING""",
                {**params, "now": time.time()},
            )
            if changed == 1:
                return True
            # Asked again for the same task (a retry, a recovery): its one hold stands, if it
            # is this user's and still running. Anything else (a hold left by another task
            # under the same id) must never let a job run free.
            held = await statements.fetch_one(
                """SELECT 1 FROM credit_ledger h
                   WHERE h.task_id = :task_id AND h.kind = 'reserve' AND h.user_id = :user_id
                     AND NOT EXISTS (SELECT 1 FROM credit_ledger s WHERE s.task_id = h.task_id
                                     AND s.kind IN ('charge', 'release'))""",
                params,
            )
            return held is not None

    async def settle(self, task_id: int, *, done: bool) -> Settled:
        """Charge (done) or release a task's hold, once; true when the task had a hold."""
        kind = "charge" if done else "release"
        params = {"kind": kind, "now": time.time(), "task_id": task_id}
        changed = await self._db.execute(
            """INSERT INTO credit_ledger (user_id, kind, amount, task_id, created_at)
               SELECT user_id, :kind, CASE WHEN :kind = 'release' THEN -amount ELSE 0 END,
                      task_id, :now
               FROM credit_ledger WHERE task_id = :task_id AND kind = 'reserve'
               ON CONFLICT DO NOTHING""",
            params,
        )
        row = await self._db.fetch_one(
            "SELECT amount FROM credit_ledger WHERE task_id = :task_id AND kind = 'reserve'",
            params,
        )
        if row is None:
            return Settled(held=False, charged=0)
        return Settled(held=True, charged=-int(row["amount"]) if changed and done else 0)

    async def grant(self, *, user_id: int, amount: int, reason: str, actor_id: int) -> bool:
        """Add (or take away) credits; False when taking more than the user can spend."""
        params = {
            "user_id": user_id,
            "amount": amount,
            "reason": reason,
            "actor_id": actor_id,
            "now": time.time(),
        }
        async with self._db.transaction() as statements:
            await statements.lock("credits", user_id)
            changed = await statements.execute(
                f"""INSERT INTO credit_ledger (user_id, kind, amount, reason, actor_id, created_at)
                    SELECT :user_id, 'grant', :amount, :reason, :actor_id, :now
                    WHERE :amount >= 0 OR {_BALANCE} + :amount >= 0""",
                params,
            )
        return changed == 1

    async def purchase(
        self, *, user_id: int, charge_id: str, credits: int, stars: int, payload: str
    ) -> bool:
        """Credit a paid pack, once per Telegram charge id; False when it was credited already."""
        changed = await self._db.execute(
            """INSERT INTO credit_ledger
               (user_id, kind, amount, charge_id, stars, reason, created_at)
               VALUES (:user_id, 'purchase', :credits, :charge_id, :stars, :payload, :now)
               ON CONFLICT DO NOTHING""",
            {
                "user_id": user_id,
                "credits": credits,
                "charge_id": charge_id,
                "stars": stars,
                "payload": payload,
                "now": time.time(),
            },
        )
        return changed == 1

    async def find_purchase(self, charge_id: str) -> Purchase | None:
        """A purchase by its Telegram charge id."""
        rows = await self._purchases("p.charge_id = :key", charge_id, 1)
        return rows[0] if rows else None

    async def purchases(self, user_id: int, limit: int = 5) -> list[Purchase]:
        """A user's latest purchases, newest first."""
        return await self._purchases("p.user_id = :key", user_id, limit)

    async def _purchases(self, where: str, key: object, limit: int) -> list[Purchase]:
        rows = await self._db.fetch_all(
            f"""SELECT p.charge_id, p.user_id, p.amount, p.stars, p.created_at,
                       EXISTS (SELECT 1 FROM credit_ledger r
                               WHERE r.kind = 'refund' AND r.charge_id = p.charge_id) AS refunded
                FROM credit_ledger p WHERE p.kind = 'purchase' AND {where}
                ORDER BY p.id DESC LIMIT :limit""",
            {"key": key, "limit": limit},
        )
        return [
            Purchase(
                charge_id=str(row["charge_id"]),
                user_id=int(row["user_id"]),
                credits=int(row["amount"]),
                stars=int(row["stars"]),
                created_at=float(row["created_at"]),
                refunded=bool(row["refunded"]),
            )
            for row in rows
        ]

    async def refund(self, charge_id: str, *, actor_id: int) -> RefundOutcome:
        """Take a purchase's credits back, once, only while the buyer still has them all."""
        purchase = await self.find_purchase(charge_id)
        if purchase is None:
            return RefundOutcome.UNKNOWN
        async with self._db.transaction() as statements:
            await statements.lock("credits", purchase.user_id)
            changed = await statements.execute(
                """INSERT INTO credit_ledger
                   (user_id, kind, amount, charge_id, stars, actor_id, created_at, reason)
                   SELECT p.user_id, 'refund', -p.amount, p.charge_id, p.stars, :actor_id, :now,
                          'pending'
                   FROM credit_ledger p
                   WHERE p.kind = 'purchase' AND p.charge_id = :charge_id AND (
                       SELECT COALESCE(SUM(amount), 0) FROM credit_ledger
                       WHERE user_id = p.user_id
                   ) >= p.amount
                   ON CONFLICT DO NOTHING""",
                {"actor_id": actor_id, "now": time.time(), "charge_id": charge_id},
            )
        if changed == 1:
            return RefundOutcome.DONE
        if not purchase.refunded:
            return RefundOutcome.SPENT
        pending = await self._db.fetch_one(
            """SELECT 1 FROM credit_ledger
               WHERE kind = 'refund' AND charge_id = :charge_id AND reason = 'pending'""",
            {"charge_id": charge_id},
        )
        return RefundOutcome.PENDING if pending else RefundOutcome.ALREADY

    async def confirm_refund(self, charge_id: str) -> bool:
        """Telegram returned a purchase's Stars: settle its refund; True if that changed a row.

        A refund the bot never asked for (Telegram's own) takes the credits back all the
        same, even into a negative balance: the Stars are gone.
        """
        params = {"charge_id": charge_id, "now": time.time()}
        async with self._db.transaction() as statements:
            changed = await statements.execute(
                """UPDATE credit_ledger SET reason = 'confirmed'
                   WHERE kind = 'refund' AND charge_id = :charge_id AND reason = 'pending'""",
                params,
            )
            changed += await statements.execute(
                """INSERT INTO credit_ledger
                   (user_id, kind, amount, charge_id, stars, created_at, reason)
                   SELECT user_id, 'refund', -amount, charge_id, stars, :now, 'confirmed'
                   FROM credit_ledger WHERE kind = 'purchase' AND charge_id = :charge_id
                   ON CONFLICT DO NOTHING""",
                params,
            )
        return changed > 0

    async def cancel_refund(self, charge_id: str) -> None:
        """Undo a refund entry whose Stars Telegram did not return (it never took effect)."""
        await self._db.execute(
            "DELETE FROM credit_ledger WHERE kind = 'refund' AND charge_id = :charge_id",
            {"charge_id": charge_id},
        )

    async def job_costs(self, task_ids: Sequence[int]) -> dict[int, JobCost]:
        """What each of these tasks held or cost (tasks that were free are absent)."""
        rows = await self._db.fetch_all(
            """SELECT h.task_id, -h.amount AS credits,
                       (SELECT s.kind FROM credit_ledger s WHERE s.task_id = h.task_id
                        AND s.kind IN ('charge', 'release')) AS settled
                FROM credit_ledger h
                WHERE h.kind = 'reserve' AND h.task_id IN :ids""",
            {"ids": list(task_ids)},
        )
        return {
            int(row["task_id"]): JobCost(int(row["credits"]), str(row["settled"] or "reserved"))
            for row in rows
        }

    async def free_running(
        self,
        *,
        types: Sequence[str],
        up_to_task: int,
        user_id: int | None = None,
        chat_id: int | None = None,
    ) -> int:
        """Unfinished jobs of these types holding no credits, started no later than a task."""
        where = ["t.status_rank < 4", "t.type IN :types", "t.id <= :up_to"]
        params: dict[str, object] = {"types": list(types), "up_to": up_to_task}
        if user_id is not None:
            where.append("t.user_id = :user_id")
            params["user_id"] = user_id
        if chat_id is not None:
            where.append("t.chat_id = :chat_id")
            params["chat_id"] = chat_id
        row = await self._db.fetch_one(
            f"""SELECT COUNT(*) AS n FROM tasks t WHERE {" AND ".join(where)} AND NOT EXISTS (
                    SELECT 1 FROM credit_ledger h
                    WHERE h.task_id = t.id AND h.kind = 'reserve')""",
            params,
        )
        return int(row["n"]) if row else 0

    async def days(self, since: float) -> list[DayFigures]:
        """Stars in and out and credits spent per day (UTC) since a time, newest first."""
        # Days are cut in Python: SQLite and PostgreSQL spell "the UTC date of a UNIX time"
        # differently, and a month of one bot's payments is a few thousand rows at most.
        money = await self._db.fetch_all(
            """SELECT kind, stars, created_at FROM credit_ledger
               WHERE kind IN ('purchase', 'refund') AND created_at >= :since""",
            {"since": since},
        )
        spent = await self._db.fetch_all(
            """SELECT c.created_at, -h.amount AS credits
               FROM credit_ledger c
               JOIN credit_ledger h ON h.task_id = c.task_id AND h.kind = 'reserve'
               WHERE c.kind = 'charge' AND c.created_at >= :since""",
            {"since": since},
        )
        figures: dict[str, list[int]] = {}
        for row in money:
            day = figures.setdefault(_day(row["created_at"]), [0, 0, 0])
            day[0 if row["kind"] == "purchase" else 1] += int(row["stars"] or 0)
        for row in spent:
            figures.setdefault(_day(row["created_at"]), [0, 0, 0])[2] += int(row["credits"])
        return [
            DayFigures(day, stars, refunded, credits)
            for day, (stars, refunded, credits) in sorted(figures.items(), reverse=True)
        ]
