"""The admin console's words and buttons (no router): command menu, /stats, user cards."""

from __future__ import annotations

import html
import time
from datetime import UTC, datetime
from typing import Any

from aiogram.filters.callback_data import CallbackData
from aiogram.types import BotCommand, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.delivery.texts import type_label
from bot.jobs.values import Failure
from bot.owner.accounts import short_hash
from bot.owner.limits import Policy
from bot.owner.payments import Payments, no_credits_cost
from bot.telegram.i18n import _
from handlers.common import describe_user
from storage.usage import Count

SPEEDS = ("relax", "fast", "turbo")
LIMIT_CHOICES = ("5", "20", "50", "0", "default")
# /stats shows the commonest failure reasons; it reads more, as several codes share a label.
ERRORS_SHOWN = 5
ERROR_KEYS_READ = 50

ADMIN_COMMAND_NAMES = (
    "accounts",
    "speed",
    "remix",
    "stats",
    "user",
    "limit",
    "ban",
    "unban",
    "allow",
    "deny",
    "access",
    "grant",
    "refund",
)


def admin_commands(paid: bool = False) -> list[BotCommand]:
    """The extra command menu admins see in their private chats, in the current language."""
    if paid:
        return [
            *admin_commands(),
            BotCommand(command="grant", description=_("Give or take a user's credits")),
            BotCommand(command="refund", description=_("Refund a purchase's Stars")),
        ]
    return [
        BotCommand(command="accounts", description=_("Midjourney accounts: status, fast time")),
        BotCommand(command="speed", description=_("Switch speed: relax, fast or turbo")),
        BotCommand(command="remix", description=_("Toggle remix mode")),
        BotCommand(command="stats", description=_("Jobs, top users and errors")),
        BotCommand(command="user", description=_("A user's usage, limits and ban state")),
        BotCommand(command="limit", description=_("Set a user's daily limit")),
        BotCommand(command="ban", description=_("Ban a user")),
        BotCommand(command="unban", description=_("Unban a user")),
        BotCommand(command="allow", description=_("Allow a user or chat (allowlist mode)")),
        BotCommand(command="deny", description=_("Take a user or chat off the allowlist")),
        BotCommand(command="access", description=_("Open to everyone, or allowlist only")),
    ]


class AdminCallback(CallbackData, prefix="ad1"):
    """An admin console button: what to do, with which value, to whom."""

    action: str
    value: str
    target: str = ""


def refusal() -> str:
    """The answer a non-admin gets for an admin command."""
    return _("This command is for the bot's admins.")


def counts_line(counts: list[Count], label: Any = None) -> str:
    """`a 3, b 2` from counts (through a label function when given)."""
    if not counts:
        return "—"
    return ", ".join(
        f"{html.escape(str(label(c.key)) if label else c.key)} {c.count}" for c in counts
    )


def error_label(reason: str) -> str:
    """A failure reason as /stats names it: the bot's own codes in words, the API's as sent."""
    if no_credits_cost(reason) is not None:
        return _("out of credits")
    words = {
        "": _("no reason given"),
        Failure.UNREACHABLE: _("API unreachable"),
        Failure.KEY_REJECTED: _("key rejected"),
        Failure.BUSY: _("API busy (429)"),
        Failure.SERVER_ERROR: _("API server error"),
        Failure.RESTARTED: _("restarted while sending"),
        Failure.STUCK: _("stuck (no news from Midjourney)"),
        Failure.NOT_FOR_VERSION: _("not for the image's version"),
    }
    return words.get(reason, reason)


def error_counts(counts: list[Count], shown: int = ERRORS_SHOWN) -> list[Count]:
    """Failure reasons by label, commonest first (`bot:no_credits:1` and `:3` are one line)."""
    merged: dict[str, int] = {}
    for count in counts:
        label = error_label(count.key)
        merged[label] = merged.get(label, 0) + count.count
    ranked = sorted(merged.items(), key=lambda item: -item[1])
    return [Count(label, number) for label, number in ranked[:shown]]


async def stats_text(policy: Policy) -> str:
    """The /stats message."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    week = time.time() - 7 * 86400
    usage = policy.usage
    lines = [_("📊 <b>Statistics</b>")]
    for title, since in ((_("Today"), midnight), (_("Last 7 days"), week)):
        statuses = await usage.by_status(since)
        total = sum(c.count for c in statuses)
        lines.append("")
        lines.append(f"<b>{title}</b>: " + _("{count} jobs").format(count=total))
        lines.append(_("By status: {counts}").format(counts=counts_line(statuses)))
        lines.append(
            _("By type: {counts}").format(
                counts=counts_line(await usage.by_type(since), type_label)
            )
        )
    lines.append("")
    lines.append(_("<b>Top users</b> (7 days):"))
    top = await usage.top_users(week)
    lines.extend(
        f"{n}. {describe_user(u.first_name, u.username, u.user_id)} — {u.count}"
        for n, u in enumerate(top, 1)
    )
    if not top:
        lines.append("—")
    lines.append("")
    lines.append(_("<b>Top errors</b> (7 days):"))
    errors = error_counts(await usage.top_errors(week, limit=ERROR_KEYS_READ))
    lines.extend(f"{c.count} × {html.escape(c.key)}" for c in errors)
    if not errors:
        lines.append("—")
    if policy.payments is not None and policy.payments.enabled:
        lines.append("")
        lines.extend(await money_lines(policy.payments, week))
    return "\n".join(lines)


async def money_lines(payments: Payments, since: float) -> list[str]:
    """Stars earned and credits spent per day, for /stats."""
    lines = [_("<b>Stars and credits</b> (7 days):")]
    days = await payments.credits.days(since)
    for day in days:
        line = _("{day}: +{stars} ⭐, credits spent: {spent}").format(
            day=day.day, stars=day.stars, spent=day.credits_spent
        )
        if day.refunded_stars:
            line += " " + _("(refunded: {stars} ⭐)").format(stars=day.refunded_stars)
        lines.append(line)
    if not days:
        lines.append("—")
    return lines


async def user_card(user_id: int, policy: Policy) -> tuple[str, InlineKeyboardMarkup]:
    """The /user message and its buttons."""
    first_name, username = await policy.access.user_name(user_id)
    rule = await policy.access.user(user_id)
    usage = await policy.usage_of(user_id)
    mode = await policy.mode()
    lines = [
        "👤 " + describe_user(first_name, username, user_id),
        _("Jobs today: {used}, daily limit: {limit}{default}").format(
            used=usage.used,
            limit=usage.limit or _("none"),
            default=_(" (default)") if rule.daily_limit is None else "",
        ),
        _("Running now: {running}, at most {limit} at once").format(
            running=usage.running, limit=usage.concurrent_limit or _("any number")
        ),
        _("Banned: {state}").format(state=_("yes") if rule.banned else _("no")),
    ]
    if mode == "allowlist":
        allowed = await policy.is_allowed(user_id, user_id)
        lines.append(_("Allowed: {state}").format(state=_("yes") if allowed else _("no")))
    if policy.payments is not None and policy.payments.enabled:
        balance = await policy.payments.credits.balance(user_id)
        lines.append(
            _("Credits: {credits}, held by running jobs: {reserved}").format(
                credits=balance.credits, reserved=balance.reserved
            )
        )
    if policy.is_admin(user_id):
        lines.append(_("An admin: no limits apply."))
    target = str(user_id)
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("✅ Unban") if rule.banned else _("🚫 Ban"),
        callback_data=AdminCallback(
            action="ban", value="0" if rule.banned else "1", target=target
        ),
    )
    builder.button(
        text=_("Revoke access") if rule.allowed else _("Allow"),
        callback_data=AdminCallback(
            action="allow", value="0" if rule.allowed else "1", target=target
        ),
    )
    for choice in LIMIT_CHOICES:
        label = {"0": _("no limit"), "default": _("default")}.get(choice, choice)
        builder.button(
            text=_("Limit: {value}").format(value=label),
            callback_data=AdminCallback(action="limit", value=choice, target=target),
        )
    builder.adjust(2, 3, 2)
    return "\n".join(lines), builder.as_markup()


def speed_keyboard(accounts: list[str]) -> InlineKeyboardMarkup:
    """Buttons for every speed of every account."""
    builder = InlineKeyboardBuilder()
    for account_hash in accounts:
        for speed in SPEEDS:
            label = speed if len(accounts) == 1 else f"{short_hash(account_hash)}: {speed}"
            builder.button(
                text=label,
                callback_data=AdminCallback(action="speed", value=speed, target=account_hash),
            )
    builder.adjust(3)
    return builder.as_markup()


def remix_keyboard(accounts: list[str]) -> InlineKeyboardMarkup:
    """A remix toggle button per account."""
    builder = InlineKeyboardBuilder()
    for account_hash in accounts:
        builder.button(
            text=_("Toggle remix: {account}").format(account=short_hash(account_hash)),
            callback_data=AdminCallback(action="remix", value="t", target=account_hash),
        )
    builder.adjust(1)
    return builder.as_markup()
