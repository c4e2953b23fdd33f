"""The owner's console: accounts, speed and remix, stats, users and access (admins only)."""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, Literal, cast

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject, Filter
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    BotCommand,
    CallbackQuery,
    InlineKeyboardMarkup,
    Message,
    TelegramObject,
)
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.accounts import account_text, read_account, short_hash
from bot.config import Settings
from bot.i18n import _
from bot.limits import Policy
from bot.payments import Payments
from bot.texts import type_label
from bot.userapi import Task, UserAPIClient, UserAPIError
from bot.userapi.models import TaskStatus
from handlers.groups import describe_user
from storage.credits import RefundOutcome
from storage.usage import Count

log = logging.getLogger(__name__)

SPEEDS = ("relax", "fast", "turbo")
# Telegram's answer to refunding a charge twice (a resend whose first answer was lost).
ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"
LIMIT_CHOICES = ("5", "20", "50", "0", "default")

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


class IsAdmin(Filter):
    """Passes only the bot's admins (ADMIN_IDS)."""

    async def __call__(self, event: TelegramObject, policy: Policy) -> bool:
        """Check the sender."""
        user = getattr(event, "from_user", None)
        return user is not None and policy.is_admin(user.id)


def refusal() -> str:
    """The answer a non-admin gets for an admin command."""
    return _("This command is for the bot's admins.")


async def known_accounts(settings: Settings, policy: Policy) -> list[str]:
    """Accounts from USERAPI_ACCOUNTS, then every other account tasks ran on."""
    accounts = list(dict.fromkeys(settings.userapi_accounts))
    for account_hash in await policy.usage.account_hashes():
        if account_hash not in accounts:
            accounts.append(account_hash)
    return accounts


async def pick_account(
    token: str | None, settings: Settings, policy: Policy
) -> tuple[str | None, list[str]]:
    """The account a command names (full hash or its start), or the only one there is."""
    accounts = await known_accounts(settings, policy)
    if token:
        matches = [a for a in accounts if a.startswith(token)] or [token]
        return (matches[0] if len(matches) == 1 else None), accounts
    return (accounts[0] if len(accounts) == 1 else None), accounts


async def resolve_user(token: str, policy: Policy) -> int | None:
    """A user id from `123` or `@username` (a user the bot has seen)."""
    token = token.strip()
    if token.lstrip("-").isdigit():
        return int(token)
    return await policy.access.find_user(token)


def counts_line(counts: list[Count], label: Any = None) -> str:
    """`a 3, b 2` from counts (through a label function when given)."""
    if not counts:
        return "—"
    return ", ".join(
        f"{html.escape(str(label(c.key)) if label else c.key)} {c.count}" for c in counts
    )


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
    errors = await usage.top_errors(week)
    lines.extend(f"{c.count} × {html.escape(c.key or '?')}" for c in errors)
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


async def _change_account(account_hash: str, change: Awaitable[Task]) -> Task | str:
    """Run a change of an account's settings: the finished task, or its failure in words."""
    try:
        task = await change
    except UserAPIError as error:
        reason = error.message
    else:
        if task.status is not TaskStatus.ERROR:
            return task
        reason = task.status_reason or "?"
    return _("❌ {account}: {error}").format(
        account=html.escape(short_hash(account_hash)), error=html.escape(reason)
    )


async def set_speed(client: UserAPIClient, account_hash: str, speed: str) -> str:
    """Switch an account's speed; the API's answer in words."""
    choice = cast(Literal["relax", "fast", "turbo"], speed)
    task = await _change_account(
        account_hash, client.speed(account_hash=account_hash, choice=choice)
    )
    if isinstance(task, str):
        return task
    return _("✅ {account}: speed is now <b>{speed}</b>.").format(
        account=html.escape(short_hash(account_hash)), speed=speed
    )


async def toggle_remix(client: UserAPIClient, account_hash: str) -> str:
    """Toggle an account's remix mode; the new state in words."""
    task = await _change_account(account_hash, client.prefer(account_hash=account_hash))
    if isinstance(task, str):
        return task
    state = _("on") if str(task.result) == "on" else _("off")
    return _("✅ {account}: remix is now <b>{state}</b>.").format(
        account=html.escape(short_hash(account_hash)), state=state
    )


def _admin_router() -> Router:
    router = Router(name="admin-console")
    router.message.filter(IsAdmin())
    router.callback_query.filter(IsAdmin())

    @router.message(Command("accounts"))
    async def accounts(
        message: Message, settings: Settings, policy: Policy, client: UserAPIClient
    ) -> None:
        hashes = await known_accounts(settings, policy)
        if not hashes:
            await message.reply(
                _("No accounts known yet: set USERAPI_ACCOUNTS, or run a job first.")
            )
            return
        try:
            states = await asyncio.gather(*(read_account(client, h) for h in hashes))
        except UserAPIError as error:
            await message.reply(
                _("The API rejected the key (HTTP {status}).").format(status=error.status)
            )
            return
        body = "\n\n".join(account_text(state) for state in states)
        await message.reply(_("🖥 <b>Accounts</b>") + "\n\n" + body)

    @router.message(Command("speed"))
    async def speed(
        message: Message,
        command: CommandObject,
        settings: Settings,
        policy: Policy,
        client: UserAPIClient,
    ) -> None:
        args = (command.args or "").split()
        choice = args[0].lower() if args else None
        account, accounts = await pick_account(
            args[1] if len(args) > 1 else None, settings, policy
        )
        if choice not in SPEEDS or account is None:
            if not accounts:
                await message.reply(_("No accounts known yet."))
                return
            await message.reply(
                _("Choose a speed (<code>/speed relax|fast|turbo [account]</code>):"),
                reply_markup=speed_keyboard(accounts if account is None else [account]),
            )
            return
        await message.reply(await set_speed(client, account, choice))

    @router.message(Command("remix"))
    async def remix(
        message: Message,
        command: CommandObject,
        settings: Settings,
        policy: Policy,
        client: UserAPIClient,
    ) -> None:
        account, accounts = await pick_account(
            (command.args or "").strip() or None, settings, policy
        )
        if account is None:
            if not accounts:
                await message.reply(_("No accounts known yet."))
                return
            await message.reply(
                _("Which account? (<code>/remix [account]</code>)"),
                reply_markup=remix_keyboard(accounts),
            )
            return
        await message.reply(await toggle_remix(client, account))

    @router.message(Command("stats"))
    async def stats(message: Message, policy: Policy) -> None:
        await message.reply(await stats_text(policy))

    @router.message(Command("user"))
    async def user(message: Message, command: CommandObject, policy: Policy) -> None:
        user_id = await resolve_user(command.args or "", policy) if command.args else None
        if user_id is None:
            await message.reply(
                _(
                    "Usage: <code>/user 123456</code> or <code>/user @username</code> "
                    "(someone the bot has seen)."
                )
            )
            return
        text, keyboard = await user_card(user_id, policy)
        await message.reply(text, reply_markup=keyboard)

    @router.message(Command("ban", "unban"))
    async def ban(message: Message, command: CommandObject, policy: Policy) -> None:
        user_id = await resolve_user(command.args or "", policy) if command.args else None
        if user_id is None:
            await message.reply(
                _("Usage: <code>/{command} 123456</code> or @username.").format(
                    command=command.command
                )
            )
            return
        banned = command.command == "ban"
        if banned and policy.is_admin(user_id):
            await message.reply(_("Admins can't be banned."))
            return
        await policy.update_user(user_id, banned=banned)
        await message.reply(
            (_("User {user} is banned.") if banned else _("User {user} is unbanned.")).format(
                user=user_id
            )
        )

    @router.message(Command("allow", "deny"))
    async def allow(message: Message, command: CommandObject, policy: Policy) -> None:
        token = (command.args or "").strip()
        allowed = command.command == "allow"
        if token.lstrip("-").isdigit() and int(token) < 0:
            await policy.update_chat(int(token), allowed=allowed)
            target = int(token)
        else:
            resolved = await resolve_user(token, policy) if token else None
            if resolved is None:
                await message.reply(
                    _(
                        "Usage: <code>/{command} 123456</code>, @username, or a chat id "
                        "like -100123."
                    ).format(command=command.command)
                )
                return
            await policy.update_user(resolved, allowed=allowed)
            target = resolved
        text = _("{target} is allowed.") if allowed else _("{target} is no longer allowed.")
        note = ""
        if await policy.mode() == "open":
            note = "\n" + _("The bot is open to everyone now; /access allowlist makes this count.")
        await message.reply(text.format(target=target) + note)

    @router.message(Command("access"))
    async def access(message: Message, command: CommandObject, policy: Policy) -> None:
        mode = (command.args or "").strip().lower()
        if mode not in ("open", "allowlist"):
            await message.reply(
                _(
                    "Access is <b>{mode}</b>. Change it with <code>/access open</code> or "
                    "<code>/access allowlist</code>."
                ).format(mode=await policy.mode())
            )
            return
        await policy.set_mode(mode)
        await message.reply(_("Access is <b>{mode}</b> now.").format(mode=mode))

    @router.message(Command("limit"))
    async def limit(message: Message, command: CommandObject, policy: Policy) -> None:
        args = (command.args or "").split()
        user_id = await resolve_user(args[0], policy) if len(args) == 2 else None
        value = args[1].lower() if len(args) == 2 else ""
        if user_id is None or not (value.isdigit() or value == "default"):
            await message.reply(
                _(
                    "Usage: <code>/limit 123456 20</code> (0 = no limit, <code>default</code> = "
                    "the bot's default)."
                )
            )
            return
        await policy.update_user(user_id, daily_limit=None if value == "default" else int(value))
        text, keyboard = await user_card(user_id, policy)
        await message.reply(text, reply_markup=keyboard)

    @router.message(Command("grant"))
    async def grant(
        message: Message, command: CommandObject, policy: Policy, payments: Payments
    ) -> None:
        if not payments.enabled:
            await message.reply(_("Payments are off: set PAYMENTS=stars to use credits."))
            return
        args = (command.args or "").split(maxsplit=2)
        user_id = await resolve_user(args[0], policy) if len(args) >= 2 else None
        amount = args[1] if len(args) >= 2 else ""
        if user_id is None or not amount.lstrip("+-").isdigit() or int(amount) == 0:
            await message.reply(
                _(
                    "Usage: <code>/grant 123456 10 [reason]</code> (or @username; a negative "
                    "number takes credits away)."
                )
            )
            return
        actor = message.from_user.id if message.from_user else 0
        reason = args[2] if len(args) == 3 else ""
        if not await payments.credits.grant(
            user_id=user_id, amount=int(amount), reason=reason, actor_id=actor
        ):
            have = (await payments.credits.balance(user_id)).credits
            await message.reply(
                _("User {user} has only {credits} credits to take.").format(
                    user=user_id, credits=have
                )
            )
            return
        balance = await payments.credits.balance(user_id)
        await message.reply(
            _("✅ User {user}: {amount:+d} credits. Balance now: {credits}.").format(
                user=user_id, amount=int(amount), credits=balance.credits
            )
        )

    @router.message(Command("refund"))
    async def refund(
        message: Message, command: CommandObject, payments: Payments, bot: Bot
    ) -> None:
        charge_id = (command.args or "").strip()
        if not charge_id:
            await message.reply(
                _(
                    "Usage: <code>/refund charge-id</code> (the buyer's /balance and the "
                    "payment message show it)."
                )
            )
            return
        purchase = await payments.credits.find_purchase(charge_id)
        actor = message.from_user.id if message.from_user else 0
        outcome = await payments.credits.refund(charge_id, actor_id=actor)
        if purchase is None or outcome is RefundOutcome.UNKNOWN:
            await message.reply(_("No purchase has that charge id."))
            return
        if outcome is RefundOutcome.ALREADY:
            await message.reply(_("That purchase was refunded already."))
            return
        if outcome is RefundOutcome.SPENT:
            have = (await payments.credits.balance(purchase.user_id)).credits
            await message.reply(
                _(
                    "Can't refund: the buyer has spent some of those {credits} credits "
                    "(they have {have} left)."
                ).format(credits=purchase.credits, have=have)
            )
            return
        try:
            await bot.refund_star_payment(
                user_id=purchase.user_id, telegram_payment_charge_id=charge_id
            )
        except TelegramAPIError as error:
            if ALREADY_REFUNDED not in error.message:
                # The Stars stayed with us, so the credits stay with the buyer.
                await payments.credits.cancel_refund(charge_id)
                await message.reply(
                    _("Telegram refused the refund: {error}. Nothing changed.").format(
                        error=html.escape(error.message)
                    )
                )
                return
            # A resend after a lost answer: the first request did return the Stars.
            log.warning("Refund of %s was done already at Telegram", charge_id)
        await message.reply(
            _("↩️ Refunded {stars} ⭐ to user {user}; {credits} credits taken back.").format(
                stars=purchase.stars, user=purchase.user_id, credits=purchase.credits
            )
        )

    @router.callback_query(AdminCallback.filter())
    async def on_button(
        query: CallbackQuery,
        callback_data: AdminCallback,
        policy: Policy,
        client: UserAPIClient,
    ) -> None:
        message = query.message if isinstance(query.message, Message) else None
        if callback_data.action == "speed":
            await query.answer()
            answer = await set_speed(client, callback_data.target, callback_data.value)
            if message is not None:
                await message.answer(answer)
            return
        if callback_data.action == "remix":
            await query.answer()
            answer = await toggle_remix(client, callback_data.target)
            if message is not None:
                await message.answer(answer)
            return
        user_id = int(callback_data.target)
        if callback_data.action == "ban":
            if callback_data.value == "1" and policy.is_admin(user_id):
                await query.answer(_("Admins can't be banned."), show_alert=True)
                return
            await policy.update_user(user_id, banned=callback_data.value == "1")
        elif callback_data.action == "allow":
            await policy.update_user(user_id, allowed=callback_data.value == "1")
        elif callback_data.action == "limit":
            value = callback_data.value
            await policy.update_user(
                user_id, daily_limit=None if value == "default" else int(value)
            )
        await query.answer(_("Saved."))
        if message is not None:
            text, keyboard = await user_card(user_id, policy)
            await message.edit_text(text, reply_markup=keyboard)

    return router


def build_router() -> Router:
    """The console for admins, and a refusal (without any data) for everyone else."""
    router = Router(name="admin")
    router.include_router(_admin_router())
    refusals = Router(name="admin-refusals")

    @refusals.message(Command(*ADMIN_COMMAND_NAMES))
    async def not_admin(message: Message) -> None:
        await message.reply(refusal())

    @refusals.callback_query(AdminCallback.filter())
    async def not_admin_button(query: CallbackQuery) -> None:
        await query.answer(refusal(), show_alert=True)

    router.include_router(refusals)
    return router
