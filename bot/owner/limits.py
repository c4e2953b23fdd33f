"""Access and spending rules: who may start a job now, and charging finished jobs to the day."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from aiogram.utils.i18n import I18n

from bot.jobs.values import Requester
from bot.owner.payments import Payments, no_credits_reason
from bot.runtime.metrics import CREDITS
from bot.telegram.i18n import _
from bot.userapi.models import TaskStatus
from storage.access import AccessRepo, ChatRule, UserRule
from storage.tasks import TaskRecord
from storage.usage import UsageRepo

log = logging.getLogger(__name__)

MODE_KEY = "access_mode"
MODES = ("open", "allowlist")


@dataclass(frozen=True, slots=True)
class Defaults:
    """The environment's defaults for the rules admins can change at run time."""

    admin_ids: frozenset[int] = frozenset()
    mode: str = "open"
    allowed_user_ids: frozenset[int] = frozenset()
    allowed_chat_ids: frozenset[int] = frozenset()
    daily_limit: int = 0
    user_concurrent_jobs: int = 10
    counted_types: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Usage:
    """A user's day so far, for /me and /user."""

    used: int
    limit: int  # 0 = no limit
    running: int
    concurrent_limit: int  # 0 = no limit
    resets_at: datetime


def today(now: datetime | None = None) -> str:
    """The usage day (UTC) a moment falls on."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%d")


def next_reset(now: datetime | None = None) -> datetime:
    """When daily counts start again: the next midnight UTC."""
    moment = now or datetime.now(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC) + timedelta(days=1)


def reset_text(now: datetime | None = None) -> str:
    """The reset moment in words: the clock time and how long until it."""
    moment = now or datetime.now(UTC)
    left = next_reset(moment) - moment
    hours, rest = divmod(int(left.total_seconds()), 3600)
    return _("00:00 UTC (in {hours} h {minutes} min)").format(hours=hours, minutes=rest // 60)


class Policy:
    """Decides whether a job may start, and charges finished ones; the jobs gate."""

    def __init__(
        self,
        *,
        access: AccessRepo,
        usage: UsageRepo,
        defaults: Defaults,
        i18n: I18n | None = None,
        payments: Payments | None = None,
    ) -> None:
        self.access = access
        self.usage = usage
        self.defaults = defaults
        self._i18n = i18n
        self.payments = payments

    # -- reading the rules ---------------------------------------------------------------

    def is_admin(self, user_id: int) -> bool:
        """Whether the user is one of the bot's admins (ADMIN_IDS)."""
        return user_id in self.defaults.admin_ids

    @property
    def paid(self) -> bool:
        """Whether jobs beyond the free allowance cost credits (PAYMENTS=stars)."""
        return self.payments is not None and self.payments.enabled

    def counts(self, task_type: str) -> bool:
        """Whether jobs of this type count against daily limits."""
        return task_type in self.defaults.counted_types

    async def mode(self) -> str:
        """`open` or `allowlist`, as admins last set it (the environment's otherwise)."""
        stored = await self.access.setting(MODE_KEY)
        return stored if stored in MODES else self.defaults.mode

    async def set_mode(self, mode: str) -> None:
        """Switch between open and allowlist mode."""
        if mode not in MODES:
            raise ValueError(mode)
        await self.access.set_setting(MODE_KEY, mode)

    async def is_allowed(self, user_id: int, chat_id: int) -> bool:
        """Whether the user may use the bot here under the current mode (bans aside)."""
        if self.is_admin(user_id) or await self.mode() == "open":
            return True
        if user_id in self.defaults.allowed_user_ids or chat_id in self.defaults.allowed_chat_ids:
            return True
        if (await self.access.user(user_id)).allowed:
            return True
        return chat_id < 0 and (await self.access.chat(chat_id)).allowed

    async def is_banned(self, user_id: int) -> bool:
        """Whether admins banned the user."""
        return not self.is_admin(user_id) and (await self.access.user(user_id)).banned

    async def chat_enabled(self, chat_id: int) -> bool:
        """Whether the bot is on in this chat (always, in private chats)."""
        return chat_id > 0 or (await self.access.chat(chat_id)).enabled

    def daily_limit(self, rule: UserRule) -> int:
        """The user's daily limit (0 = none)."""
        return self.defaults.daily_limit if rule.daily_limit is None else rule.daily_limit

    def concurrent_limit(self, rule: UserRule) -> int:
        """How many jobs the user may run at once (0 = no limit)."""
        if rule.concurrent_limit is not None:
            return rule.concurrent_limit
        return self.defaults.user_concurrent_jobs

    async def usage_of(self, user_id: int) -> Usage:
        """The user's usage today, their limits, and their running jobs."""
        rule = await self.access.user(user_id)
        return Usage(
            used=await self.usage.used_by_user(user_id, today()),
            limit=0 if self.is_admin(user_id) else self.daily_limit(rule),
            running=await self.usage.running(user_id=user_id),
            concurrent_limit=0 if self.is_admin(user_id) else self.concurrent_limit(rule),
            resets_at=next_reset(),
        )

    # -- changing the rules --------------------------------------------------------------

    async def update_user(self, user_id: int, **changes: object) -> UserRule:
        """Change some fields of a user's rule and return the new rule."""
        rule = replace(await self.access.user(user_id), **changes)  # type: ignore[arg-type]
        await self.access.save_user(rule)
        return rule

    async def update_chat(self, chat_id: int, **changes: object) -> ChatRule:
        """Change some fields of a group's rule and return the new rule."""
        rule = replace(await self.access.chat(chat_id), **changes)  # type: ignore[arg-type]
        await self.access.save_chat(rule)
        return rule

    # -- the jobs gate -------------------------------------------------------------------

    @contextlib.contextmanager
    def _speaking(self, locale: str) -> Iterator[None]:
        if self._i18n is None:
            yield
            return
        with self._i18n.context(), self._i18n.use_locale(locale):
            yield

    async def refusal(self, requester: Requester, type: str) -> str | None:
        """Why this requester may not start this job now, in their language; None: go ahead."""
        with self._speaking(requester.locale):
            return await self._refusal(requester, type)

    async def _refusal(self, requester: Requester, type: str) -> str | None:
        user_id, chat_id = requester.user_id, requester.chat_id
        if self.is_admin(user_id):
            return None
        if await self.is_banned(user_id):
            return _("You can't use this bot.")
        if not await self.chat_enabled(chat_id):
            return _("The bot is switched off in this group.")
        if not await self.is_allowed(user_id, chat_id):
            return _("This bot is private. Ask its owner for access.")
        rule = await self.access.user(user_id)
        concurrent = self.concurrent_limit(rule)
        if concurrent and await self.usage.running(user_id=user_id) >= concurrent:
            return _(
                "You already have {count} jobs running. Wait for one to finish, then try again."
            ).format(count=concurrent)
        # With payments the daily limits are free allowances, decided once the task exists.
        if not self.counts(type) or self.paid:
            return None
        counted = sorted(self.defaults.counted_types)
        limit = self.daily_limit(rule)
        # Jobs still running count too, or a burst of presses would overshoot the limit.
        if limit and (
            await self.usage.used_by_user(user_id, today())
            + await self.usage.running(user_id=user_id, types=counted)
            >= limit
        ):
            return _(
                "You've used your {limit} jobs for today. The limit resets at {reset}."
            ).format(limit=limit, reset=reset_text())
        if chat_id < 0:
            group_limit = (await self.access.chat(chat_id)).daily_limit
            if group_limit and (
                await self.usage.used_in_chat(chat_id, today())
                + await self.usage.running(chat_id=chat_id, types=counted)
                >= group_limit
            ):
                return _(
                    "This group has used its {limit} jobs for today. The limit resets at {reset}."
                ).format(limit=group_limit, reset=reset_text())
        return None

    async def reserve(self, requester: Requester, record: TaskRecord) -> str | None:
        """Hold a new job's cost unless it is free; the refusal when it can't be paid."""
        if self.payments is None or not self.paid or self.is_admin(record.user_id):
            return None
        cost = self.payments.cost(record.type)
        if cost <= 0:
            return None
        if self.counts(record.type) and await self._free(record, self.payments):
            return None
        if await self.payments.credits.reserve(
            user_id=record.user_id, task_id=record.id, cost=cost
        ):
            log.info("Task %d holds %d credits of user %d", record.id, cost, record.user_id)
            return None
        return no_credits_reason(cost)

    async def _free(self, record: TaskRecord, payments: Payments) -> bool:
        """Whether a new job fits its requester's (and group's) free allowance today."""
        credits = payments.credits
        # Jobs free by their price (cost 0) take no part of the allowance.
        counted = sorted(t for t in self.defaults.counted_types if payments.cost(t) > 0)
        limit = self.daily_limit(await self.access.user(record.user_id))
        # Free jobs still running count too, the earlier ones first: of a burst of presses
        # exactly as many as are left go free, whatever order their checks run in.
        if not limit or (
            await self.usage.used_by_user(record.user_id, today())
            + await credits.free_running(
                types=counted, up_to_task=record.id, user_id=record.user_id
            )
            > limit
        ):
            return False
        if record.chat_id < 0:
            group_limit = (await self.access.chat(record.chat_id)).daily_limit
            if group_limit and (
                await self.usage.used_in_chat(record.chat_id, today())
                + await credits.free_running(
                    types=counted, up_to_task=record.id, chat_id=record.chat_id
                )
                > group_limit
            ):
                return False
        return True

    async def settle(self, record: TaskRecord) -> None:
        """A job reached a final state: charge what it holds on `done`, release it otherwise."""
        # Settled even with payments switched off since: holds from before must end too.
        if self.payments is not None:
            settled = await self.payments.credits.settle(
                record.id, done=record.status == TaskStatus.DONE
            )
            CREDITS.labels("spent").inc(settled.charged)
            if settled.held:
                return  # paid with credits: the free allowance is untouched
        if record.status != TaskStatus.DONE:
            return
        if self.payments is not None and self.paid and self.payments.cost(record.type) <= 0:
            return  # free by its price: not a free job of the day either
        await self.charge(record)

    async def charge(self, record: TaskRecord) -> None:
        """Charge a job that finished `done` (once) to the day, if its type counts."""
        if not self.counts(record.type):
            return
        await self.usage.charge(
            task_id=record.id,
            user_id=record.user_id,
            chat_id=record.chat_id,
            type=record.type,
            day=today(),
        )
