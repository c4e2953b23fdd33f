"""The state of the Midjourney accounts behind the key: Discord status and subscription."""

from __future__ import annotations

import asyncio
import html
from dataclasses import dataclass

from bot.telegram.i18n import _
from bot.userapi import DiscordAccount, InfoResult, UserAPIClient, UserAPIError
from bot.userapi.models import TaskStatus

INFO_POLL_INTERVAL = 0.5
INFO_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class AccountState:
    """What the API says about one account (each half may have failed on its own)."""

    hash: str
    discord: DiscordAccount | None = None
    discord_error: str | None = None
    info: InfoResult | None = None
    info_error: str | None = None

    @property
    def fast_percent(self) -> float | None:
        """Fast time left as a percentage of the plan's, when known."""
        fast = self.info.fast_time_remaining if self.info else None
        if fast is None or fast.total_sec <= 0:
            return None
        return 100.0 * fast.remaining_sec / fast.total_sec


async def fetch_info(client: UserAPIClient, account_hash: str) -> InfoResult:
    """Ask /info (an asynchronous task) and poll its status until it answers."""
    task_hash = await client.info(account_hash=account_hash)
    async with asyncio.timeout(INFO_TIMEOUT):
        while True:
            task = await client.status(hash=task_hash)
            if task.status is TaskStatus.ERROR:
                raise UserAPIError(None, task.status_reason or "info failed")
            if task.status is TaskStatus.DONE:
                if not isinstance(task.result, InfoResult):
                    raise UserAPIError(None, "info answered without subscription data")
                return task.result
            await asyncio.sleep(INFO_POLL_INTERVAL)


async def read_account(
    client: UserAPIClient, account_hash: str, *, with_info: bool = True
) -> AccountState:
    """Read an account's Discord status and subscription; raises only if the key is rejected."""
    discord: DiscordAccount | None = None
    discord_error: str | None = None
    info: InfoResult | None = None
    info_error: str | None = None
    try:
        discord = await client.discord_info(account_hash=account_hash)
    except UserAPIError as error:
        if error.is_auth_error:
            raise  # not this account's trouble: the whole key is refused
        discord_error = error.message
    if with_info:
        try:
            info = await fetch_info(client, account_hash)
        except UserAPIError as error:
            info_error = error.message
        except TimeoutError:
            info_error = "no answer"
    return AccountState(account_hash, discord, discord_error, info, info_error)


def short_hash(account_hash: str) -> str:
    """The first part of a hash, enough to tell accounts apart."""
    return account_hash.split("-", 1)[0]


def hours_minutes(seconds: int) -> str:
    """Seconds as h:mm."""
    minutes = max(0, seconds) // 60
    return f"{minutes // 60}:{minutes % 60:02d}"


def account_text(state: AccountState) -> str:
    """One account as a block of the /accounts message (HTML)."""
    lines = [
        f"<b>{html.escape(short_hash(state.hash))}</b> <code>{html.escape(state.hash)}</code>"
    ]
    if state.discord is not None:
        status = state.discord.status or "?"
        icon = "✅" if status == "active" else "⚠️"
        line = _("{icon} Discord: {status}").format(icon=icon, status=html.escape(status))
        if state.discord.status_reason:
            line += f" — {html.escape(state.discord.status_reason)}"
        if state.discord.external_username:
            line += f" ({html.escape(state.discord.external_username)})"
        lines.append(line)
        lines.append(
            _("Remix: {state}").format(state=_("on") if state.discord.is_remix else _("off"))
        )
    else:
        lines.append(
            _("❓ Discord: can't read ({error})").format(
                error=html.escape(state.discord_error or "")
            )
        )
    info = state.info
    if info is not None:
        plan = info.subscription.name if info.subscription and info.subscription.name else "?"
        until = info.subscription.active_to if info.subscription else None
        lines.append(
            _("Plan: {plan}, active until {until}").format(
                plan=html.escape(plan), until=html.escape((until or "?")[:10])
            )
        )
        fast = info.fast_time_remaining
        percent = state.fast_percent
        if fast is not None and percent is not None:
            lines.append(
                _("Fast time left: {left} of {total} ({percent:.0f}%)").format(
                    left=hours_minutes(fast.remaining_sec),
                    total=hours_minutes(fast.total_sec),
                    percent=percent,
                )
            )
        lines.append(
            _("Jobs: {queued} queued, {running} running").format(
                queued=info.queued_jobs_fast + info.queued_jobs_relax, running=info.running_jobs
            )
        )
    elif state.info_error is not None:
        lines.append(
            _("Subscription: can't read ({error})").format(error=html.escape(state.info_error))
        )
    return "\n".join(lines)
