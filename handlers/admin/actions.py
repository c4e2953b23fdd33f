"""What the admin console does to accounts and users (no router): speed, remix, lookups."""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable
from typing import Literal, cast

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest

from bot.config import Settings
from bot.owner.accounts import short_hash
from bot.owner.limits import Policy
from bot.owner.payments import Payments
from bot.runtime.metrics import CREDITS
from bot.telegram.i18n import _
from bot.userapi import Task, UserAPIClient, UserAPIError
from bot.userapi.models import TaskStatus
from storage.credits import RefundOutcome

log = logging.getLogger(__name__)
# Telegram's answer to refunding a charge twice (a resend whose first answer was lost).
ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"


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


async def refund_purchase(payments: Payments, bot: Bot, charge_id: str, actor: int) -> str:
    """Return a purchase's Stars and take its credits back; what happened, in words."""
    purchase = await payments.credits.find_purchase(charge_id)
    outcome = await payments.credits.refund(charge_id, actor_id=actor)
    if purchase is None or outcome is RefundOutcome.UNKNOWN:
        return _("No purchase has that charge id.")
    if outcome is RefundOutcome.ALREADY:
        return _("That purchase was refunded already.")
    if outcome is RefundOutcome.SPENT:
        have = (await payments.credits.balance(purchase.user_id)).credits
        return _(
            "Can't refund: the buyer has spent some of those {credits} credits "
            "(they have {have} left)."
        ).format(credits=purchase.credits, have=have)
    # DONE, or PENDING: asked before without an answer, so ask again (Telegram refunds once).
    try:
        await bot.refund_star_payment(
            user_id=purchase.user_id, telegram_payment_charge_id=charge_id
        )
    except TelegramBadRequest as error:
        if ALREADY_REFUNDED not in error.message:
            # Telegram said no: the Stars stayed with us, so the credits stay with the buyer.
            await payments.credits.cancel_refund(charge_id)
            return _("Telegram refused the refund: {error}. Nothing changed.").format(
                error=html.escape(error.message)
            )
        # A resend after a lost answer: the first request did return the Stars.
        log.warning("Refund of %s was done already at Telegram", charge_id)
    except TelegramAPIError as error:
        # No answer (network, Telegram's own failure): the Stars may be back with the buyer
        # or not. The credits stay taken back and the refund stays pending until Telegram
        # says (a retry, or its refunded_payment message).
        log.warning("Refund of %s unanswered: %s", charge_id, error)
        return _(
            "Telegram did not answer ({error}), so the refund may or may not have gone "
            "through. The {credits} credits stay taken back; send the same /refund again "
            "to finish it."
        ).format(error=html.escape(error.message), credits=purchase.credits)
    if await payments.credits.confirm_refund(charge_id):
        CREDITS.labels("refunded").inc(purchase.credits)
    return _("↩️ Refunded {stars} ⭐ to user {user}; {credits} credits taken back.").format(
        stars=purchase.stars, user=purchase.user_id, credits=purchase.credits
    )
