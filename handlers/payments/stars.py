"""Buying credits with Telegram Stars: /buy, the packs, the invoice, pre-checkout, the payment,
and /balance (PAYMENTS=stars; without it none of these answer)."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandStart, Filter
from aiogram.types import CallbackQuery, Message, PreCheckoutQuery, TelegramObject

from bot.owner.limits import Policy
from bot.owner.payments import (
    BUY_DEEP_LINK,
    CURRENCY,
    BuyCallback,
    Payments,
    balance_text,
    deep_link_keyboard,
    no_packs_text,
    packs_keyboard,
    packs_text,
    parse_payload,
    send_invoice,
)
from bot.runtime.metrics import CREDITS
from bot.telegram.i18n import _

log = logging.getLogger(__name__)


class PaymentsOn(Filter):
    """Passes only while the bot sells credits."""

    async def __call__(self, event: TelegramObject, payments: Payments) -> bool:
        """Check the setting."""
        return payments.enabled


async def _username(bot: Bot | None) -> str:
    me = await bot.me() if bot else None
    return me.username if me and me.username else "bot"


async def show_packs(message: Message, user_id: int, payments: Payments) -> None:
    """Offer the packs in a private chat; in a group, a link to the private chat instead."""
    if message.chat.type != ChatType.PRIVATE:
        # Invoices belong in the buyer's private chat: in a group anyone could pay one.
        await message.reply(
            _("Credits are bought in a private chat with me:"),
            reply_markup=deep_link_keyboard(await _username(message.bot)),
        )
        return
    if not payments.packs:
        await message.answer(no_packs_text())
        return
    balance = await payments.credits.balance(user_id)
    await message.answer(packs_text(balance), reply_markup=packs_keyboard(payments.packs))


async def buy(message: Message, payments: Payments) -> None:
    """/buy (and /start buy from a deep link): the packs."""
    if message.from_user is not None:
        await show_packs(message, message.from_user.id, payments)


async def on_buy_button(
    query: CallbackQuery, callback_data: BuyCallback, payments: Payments, bot: Bot
) -> None:
    """A buy button: the packs, or a pack's invoice in the presser's private chat."""
    if not payments.enabled:
        await query.answer(_("Payments are switched off in this bot."), show_alert=True)
        return
    message = query.message if isinstance(query.message, Message) else None
    if callback_data.credits == 0:
        if message is None or message.chat.type != ChatType.PRIVATE:
            # Telegram opens t.me links to the bot given here: the private chat, at the packs.
            await query.answer(url=f"https://t.me/{await _username(bot)}?start={BUY_DEEP_LINK}")
            return
        await query.answer()
        await show_packs(message, query.from_user.id, payments)
        return
    pack = payments.offered(callback_data.credits, callback_data.stars)
    if pack is None:
        await query.answer(_("This pack is no longer offered. Send /buy again."), show_alert=True)
        return
    try:
        await send_invoice(bot, query.from_user.id, pack)
    except TelegramAPIError as error:
        log.warning("Invoice to user %d not sent: %s", query.from_user.id, error.message)
        await query.answer(_("I can't send you the invoice. Start a private chat with me first."))
        return
    await query.answer()


async def pre_checkout(query: PreCheckoutQuery, payments: Payments, policy: Policy) -> None:
    """Say yes only to a pack on offer at exactly its price (Telegram waits 10 s at most)."""
    if not payments.enabled:
        error: str | None = _("Payments are switched off in this bot.")
    elif (
        payments.checkout(
            currency=query.currency,
            total_amount=query.total_amount,
            payload=query.invoice_payload,
        )
        is None
    ):
        error = _("This pack or price is not on offer any more. Send /buy to see the packs.")
    elif await policy.is_banned(query.from_user.id):
        error = _("You can't use this bot.")
    else:
        error = None
    if error is not None:
        log.info("Pre-checkout %s refused: %s", query.invoice_payload, error)
        await query.answer(ok=False, error_message=error)
        return
    await query.answer(ok=True)


async def paid(message: Message, payments: Payments) -> None:
    """A payment went through: credit its pack once per Telegram charge, say the balance."""
    payment = message.successful_payment
    if payment is None or message.from_user is None:
        return
    user_id = message.from_user.id
    pack = parse_payload(payment.invoice_payload)
    if pack is None or payment.currency != CURRENCY:
        # Only our own invoices can be paid to us; this would be a bug worth an owner's look.
        log.error("Payment %s for an unknown payload", payment.telegram_payment_charge_id)
        await message.answer(
            _(
                "Your payment arrived, but I can't tell what it was for. Please send the owner "
                "this code: <code>{charge}</code>"
            ).format(charge=payment.telegram_payment_charge_id)
        )
        return
    added = await payments.credits.purchase(
        user_id=user_id,
        charge_id=payment.telegram_payment_charge_id,
        credits=pack.credits,
        stars=payment.total_amount,
        payload=payment.invoice_payload,
    )
    balance = await payments.credits.balance(user_id)
    if added:
        CREDITS.labels("bought").inc(pack.credits)
        log.info("User %d bought %d credits for %d stars", user_id, pack.credits, pack.stars)
        text = _("✅ Thank you! +{credits} credits. Your balance: <b>{balance}</b>.")
    else:
        text = _("This payment was counted already. Your balance: <b>{balance}</b>.")
    await message.answer(text.format(credits=pack.credits, balance=balance.credits))


async def refunded(message: Message, payments: Payments) -> None:
    """Telegram says a payment's Stars went back: the refund is settled (or recorded)."""
    refund = message.refunded_payment
    if refund is None:
        return
    charge_id = refund.telegram_payment_charge_id
    if await payments.credits.confirm_refund(charge_id):
        purchase = await payments.credits.find_purchase(charge_id)
        CREDITS.labels("refunded").inc(purchase.credits if purchase else 0)
        log.info("Refund of %s confirmed by Telegram", charge_id)


async def balance(message: Message, payments: Payments, policy: Policy) -> None:
    """/balance: credits, held credits, last purchases."""
    if message.from_user is None:
        return
    user_id = message.from_user.id
    await message.reply(
        balance_text(
            await payments.credits.balance(user_id),
            await payments.credits.purchases(user_id),
            admin=policy.is_admin(user_id),
        )
    )


def build_router() -> Router:
    """The router for buying credits; it sees updates first so /start buy lands here."""
    router = Router(name="payments")
    router.message.register(paid, F.successful_payment)
    router.message.register(refunded, F.refunded_payment)
    router.pre_checkout_query.register(pre_checkout)
    router.message.register(buy, Command("buy"), PaymentsOn())
    router.message.register(
        buy, CommandStart(deep_link=True, magic=F.args == BUY_DEEP_LINK), PaymentsOn()
    )
    router.message.register(balance, Command("balance"), PaymentsOn())
    router.callback_query.register(on_buy_button, BuyCallback.filter())
    return router
