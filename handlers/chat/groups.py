"""Groups: per-group switches (/bot_on, /group_limit, /group_buttons), and /me."""

from __future__ import annotations

from aiogram import Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.owner.limits import Policy, reset_text, today
from bot.owner.payments import Payments, balance_text
from bot.telegram.i18n import _
from handlers.common import is_chat_admin


def me_text(
    used: int,
    limit: int,
    running: int,
    concurrent: int,
    *,
    group: tuple[int, int] | None,
    paid: bool = False,
) -> str:
    """The /me answer."""
    if paid:
        # With payments the daily limit is the free allowance; past it, jobs cost credits.
        first = _("Free jobs today: {used} of {limit}.").format(used=used, limit=limit)
    elif limit:
        first = _("Jobs today: {used} of {limit}.").format(used=used, limit=limit)
    else:
        first = _("Jobs today: {used} (no daily limit).").format(used=used)
    lines = [
        first,
        (
            _("Running now: {running} of {limit}.").format(running=running, limit=concurrent)
            if concurrent
            else _("Running now: {running}.").format(running=running)
        ),
    ]
    if group is not None:
        lines.append(
            _("This group today: {used} of {limit}.").format(used=group[0], limit=group[1])
        )
    if limit or group is not None or paid:
        lines.append(_("The count resets at {reset}.").format(reset=reset_text()))
    return "\n".join(lines)


async def me(message: Message, policy: Policy, payments: Payments) -> None:
    """`/me`: today's use, limits and (with payments) the credit balance."""
    if message.from_user is None:
        return
    user_id = message.from_user.id
    usage = await policy.usage_of(user_id)
    group: tuple[int, int] | None = None
    if message.chat.id < 0:
        group_limit = (await policy.access.chat(message.chat.id)).daily_limit
        if group_limit:
            group = (await policy.usage.used_in_chat(message.chat.id, today()), group_limit)
    paid = payments.enabled and not policy.is_admin(user_id)
    text = me_text(
        usage.used, usage.limit, usage.running, usage.concurrent_limit, group=group, paid=paid
    )
    if payments.enabled:
        text += "\n\n" + balance_text(
            await payments.credits.balance(user_id),
            await payments.credits.purchases(user_id),
            admin=policy.is_admin(user_id),
        )
    await message.reply(text)


async def group_admin(message: Message, policy: Policy, *, owner_only: bool = False) -> bool:
    """Whether the sender may change this group's settings; says why not otherwise."""
    if message.chat.type == ChatType.PRIVATE:
        await message.reply(_("This command works in groups."))
        return False
    user_id = message.from_user.id if message.from_user else 0
    if policy.is_admin(user_id):
        return True
    if (
        not owner_only
        and message.bot
        and await is_chat_admin(message.bot, message.chat.id, user_id)
    ):
        return True
    await message.reply(_("Only the bot's admins can do that."))
    return False


async def switch(message: Message, command: CommandObject, policy: Policy) -> None:
    """`/bot_on`, `/bot_off` in a group."""
    if not await group_admin(message, policy):
        return
    enabled = command.command == "bot_on"
    await policy.update_chat(message.chat.id, enabled=enabled)
    await message.reply(
        _("The bot is on in this group.") if enabled else _("The bot is off in this group.")
    )


async def group_limit(message: Message, command: CommandObject, policy: Policy) -> None:
    """`/group_limit N|off`: the group's own daily limit (the bot's admins only)."""
    if not await group_admin(message, policy, owner_only=True):
        return
    arg = (command.args or "").strip().lower()
    if arg in ("off", "0", "none"):
        await policy.update_chat(message.chat.id, daily_limit=None)
        await message.reply(_("This group has no daily limit of its own now."))
        return
    if not arg.isdigit():
        await message.reply(
            _("Usage: <code>/group_limit 20</code> or <code>/group_limit off</code>")
        )
        return
    await policy.update_chat(message.chat.id, daily_limit=int(arg))
    await message.reply(_("This group may now run {limit} jobs a day.").format(limit=int(arg)))


async def group_buttons(message: Message, command: CommandObject, policy: Policy) -> None:
    """`/group_buttons everyone|owner`: who may press the buttons under results."""
    if not await group_admin(message, policy):
        return
    arg = (command.args or "").strip().lower()
    if arg not in ("everyone", "owner"):
        await message.reply(
            _("Usage: <code>/group_buttons everyone</code> or <code>/group_buttons owner</code>")
        )
        return
    await policy.update_chat(message.chat.id, anyone_presses=arg == "everyone")
    await message.reply(
        _("Everyone here can press the buttons under results now.")
        if arg == "everyone"
        else _("Only whoever started a job (and admins) can press its buttons now.")
    )


def build_router() -> Router:
    """The router for /me and the per-group switches."""
    router = Router(name="groups")
    router.message.register(me, Command("me"))
    router.message.register(switch, Command("bot_off", "bot_on"))
    router.message.register(group_limit, Command("group_limit"))
    router.message.register(group_buttons, Command("group_buttons"))
    return router
