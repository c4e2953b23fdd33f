"""The owner's console routes: accounts, speed and remix, stats, users, access (admins only)."""

from __future__ import annotations

import asyncio

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject, Filter
from aiogram.types import (
    CallbackQuery,
    Message,
    TelegramObject,
)

from bot.config import Settings
from bot.owner.accounts import account_text, read_account
from bot.owner.limits import Policy
from bot.owner.payments import Payments
from bot.telegram.i18n import _
from bot.userapi import UserAPIClient, UserAPIError
from handlers.admin.actions import (
    known_accounts,
    pick_account,
    refund_purchase,
    resolve_user,
    set_speed,
    toggle_remix,
)
from handlers.admin.texts import (
    ADMIN_COMMAND_NAMES,
    SPEEDS,
    AdminCallback,
    refusal,
    remix_keyboard,
    speed_keyboard,
    stats_text,
    user_card,
)


class IsAdmin(Filter):
    """Passes only the bot's admins (ADMIN_IDS)."""

    async def __call__(self, event: TelegramObject, policy: Policy) -> bool:
        """Check the sender."""
        user = getattr(event, "from_user", None)
        return user is not None and policy.is_admin(user.id)


async def accounts(
    message: Message, settings: Settings, policy: Policy, client: UserAPIClient
) -> None:
    """`/accounts`: each account's state and fast time."""
    hashes = await known_accounts(settings, policy)
    if not hashes:
        await message.reply(_("No accounts known yet: set USERAPI_ACCOUNTS, or run a job first."))
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


async def speed(
    message: Message,
    command: CommandObject,
    settings: Settings,
    policy: Policy,
    client: UserAPIClient,
) -> None:
    """`/speed relax|fast|turbo [account]`, or buttons to choose."""
    args = (command.args or "").split()
    choice = args[0].lower() if args else None
    account, accounts = await pick_account(args[1] if len(args) > 1 else None, settings, policy)
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


async def remix(
    message: Message,
    command: CommandObject,
    settings: Settings,
    policy: Policy,
    client: UserAPIClient,
) -> None:
    """`/remix [account]`: toggle remix mode, or buttons to choose the account."""
    account, accounts = await pick_account((command.args or "").strip() or None, settings, policy)
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


async def stats(message: Message, policy: Policy) -> None:
    """`/stats`: jobs, top users and errors (and Stars with payments)."""
    await message.reply(await stats_text(policy))


async def user(message: Message, command: CommandObject, policy: Policy) -> None:
    """`/user 123|@name`: the user card with its buttons."""
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


async def ban(message: Message, command: CommandObject, policy: Policy) -> None:
    """`/ban`, `/unban` a user."""
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


async def allow(message: Message, command: CommandObject, policy: Policy) -> None:
    """`/allow`, `/deny` a user or a chat (counts in allowlist mode)."""
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
                    "Usage: <code>/{command} 123456</code>, @username, or a chat id like -100123."
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


async def access(message: Message, command: CommandObject, policy: Policy) -> None:
    """`/access open|allowlist`, or the current mode."""
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


async def limit(message: Message, command: CommandObject, policy: Policy) -> None:
    """`/limit 123 20|0|default`: a user's daily limit."""
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


async def grant(
    message: Message, command: CommandObject, policy: Policy, payments: Payments
) -> None:
    """`/grant 123 10 [reason]`: give (or take) credits."""
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
            _("User {user} has only {credits} credits to take.").format(user=user_id, credits=have)
        )
        return
    balance = await payments.credits.balance(user_id)
    await message.reply(
        _("✅ User {user}: {amount:+d} credits. Balance now: {credits}.").format(
            user=user_id, amount=int(amount), credits=balance.credits
        )
    )


async def refund(message: Message, command: CommandObject, payments: Payments, bot: Bot) -> None:
    """`/refund charge-id`: return a purchase's Stars and take its credits back."""
    charge_id = (command.args or "").strip()
    if not charge_id:
        await message.reply(
            _(
                "Usage: <code>/refund charge-id</code> (the buyer's /balance and the "
                "payment message show it)."
            )
        )
        return
    actor = message.from_user.id if message.from_user else 0
    await message.reply(await refund_purchase(payments, bot, charge_id, actor))


async def on_button(
    query: CallbackQuery,
    callback_data: AdminCallback,
    policy: Policy,
    client: UserAPIClient,
) -> None:
    """A console button: speed, remix, or a change to a user card."""
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
        await policy.update_user(user_id, daily_limit=None if value == "default" else int(value))
    await query.answer(_("Saved."))
    if message is not None:
        text, keyboard = await user_card(user_id, policy)
        await message.edit_text(text, reply_markup=keyboard)


def build_router() -> Router:
    """The console for admins, and a refusal (without any data) for everyone else."""
    console = Router(name="admin-console")
    console.message.filter(IsAdmin())
    console.callback_query.filter(IsAdmin())
    console.message.register(accounts, Command("accounts"))
    console.message.register(speed, Command("speed"))
    console.message.register(remix, Command("remix"))
    console.message.register(stats, Command("stats"))
    console.message.register(user, Command("user"))
    console.message.register(ban, Command("ban", "unban"))
    console.message.register(allow, Command("allow", "deny"))
    console.message.register(access, Command("access"))
    console.message.register(limit, Command("limit"))
    console.message.register(grant, Command("grant"))
    console.message.register(refund, Command("refund"))
    console.callback_query.register(on_button, AdminCallback.filter())
    refusals = Router(name="admin-refusals")
    refusals.message.register(not_admin, Command(*ADMIN_COMMAND_NAMES))
    refusals.callback_query.register(not_admin_button, AdminCallback.filter())
    router = Router(name="admin")
    router.include_routers(console, refusals)
    return router


async def not_admin(message: Message) -> None:
    """An admin command from someone else."""
    await message.reply(refusal())


async def not_admin_button(query: CallbackQuery) -> None:
    """An admin console button pressed by someone else."""
    await query.answer(refusal(), show_alert=True)
