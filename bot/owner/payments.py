"""Paid generations: what each job costs, the credit packs sold for Telegram Stars, and the
words and buttons that go with them (PAYMENTS=stars)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiogram import Bot
from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, LabeledPrice
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.jobs.values import Failure
from bot.telegram.i18n import _
from bot.userapi.models import GRID_TYPES, UPSCALED_TYPES, TaskType
from storage.credits import Balance, CreditsRepo, Purchase

# Telegram Stars: the only currency for digital goods sold inside Telegram; no provider.
CURRENCY = "XTR"
PAYLOAD_PREFIX = "pack"
# A job refused for lack of credits ends with this reason, followed by what it costs.
NO_CREDITS = Failure.PREFIX + "no_credits:"
BUY_DEEP_LINK = "buy"


@dataclass(frozen=True, slots=True)
class Pack:
    """Credits sold together for a number of Stars."""

    credits: int
    stars: int

    @property
    def payload(self) -> str:
        """The invoice payload that names this pack (and its price) to pre-checkout."""
        return f"{PAYLOAD_PREFIX}:{self.credits}:{self.stars}"


def parse_payload(payload: str) -> Pack | None:
    """The pack an invoice payload names, offered now or not; None for anything else."""
    parts = payload.split(":")
    if len(parts) != 3 or parts[0] != PAYLOAD_PREFIX:
        return None
    if not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return Pack(int(parts[1]), int(parts[2]))


def no_credits_reason(cost: int) -> str:
    """The stored reason of a job refused because its requester can't pay its cost."""
    return f"{NO_CREDITS}{cost}"


def no_credits_cost(reason: str | None) -> int | None:
    """What a job refused for lack of credits would have cost; None for other reasons."""
    if not reason or not reason.startswith(NO_CREDITS):
        return None
    tail = reason.removeprefix(NO_CREDITS)
    return int(tail) if tail.isdigit() else None


class BuyCallback(CallbackData, prefix="by1"):
    """A buy button: show the packs (0 credits), or the invoice for one pack."""

    credits: int = 0
    stars: int = 0


class Payments:
    """Prices of jobs and packs; the credits ledger behind them."""

    def __init__(
        self,
        *,
        credits: CreditsRepo,
        enabled: bool,
        packs: Sequence[tuple[int, int]] = (),
        costs: Mapping[str, int] | None = None,
    ) -> None:
        self.credits = credits
        self.enabled = enabled
        self.packs = [Pack(c, s) for c, s in packs]
        self.costs = dict(costs or {})

    def cost(self, task_type: str) -> int:
        """Credits a job of this type costs (0 = free)."""
        if task_type in self.costs:
            return max(0, self.costs[task_type])
        # Unlisted types cost what their family costs: a new grid is an imagine's price.
        if task_type in GRID_TYPES:
            return max(0, self.costs.get(TaskType.IMAGINE, 0))
        if task_type in UPSCALED_TYPES:
            return max(0, self.costs.get(TaskType.UPSCALE, 0))
        return 0

    def offered(self, credits: int, stars: int) -> Pack | None:
        """The pack with these credits at this price, if it is on offer."""
        wanted = Pack(credits, stars)
        return wanted if wanted in self.packs else None

    def checkout(self, *, currency: str, total_amount: int, payload: str) -> Pack | None:
        """The pack a pre-checkout is for when it is on offer at exactly this price."""
        pack = parse_payload(payload)
        if currency != CURRENCY or pack is None or pack.stars != total_amount:
            return None
        return self.offered(pack.credits, pack.stars)


def pack_label(pack: Pack) -> str:
    """A pack's button and price label."""
    return _("{credits} credits — {stars} ⭐").format(credits=pack.credits, stars=pack.stars)


def packs_keyboard(packs: Sequence[Pack]) -> InlineKeyboardMarkup:
    """One button per pack; a press sends its invoice."""
    builder = InlineKeyboardBuilder()
    for pack in packs:
        builder.button(
            text=pack_label(pack),
            callback_data=BuyCallback(credits=pack.credits, stars=pack.stars),
        )
    builder.adjust(1)
    return builder.as_markup()


def buy_keyboard() -> InlineKeyboardMarkup:
    """The button shown where a user is told they are out of credits."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=_("⭐ Buy credits"), callback_data=BuyCallback().pack())]
        ]
    )


def deep_link_keyboard(username: str) -> InlineKeyboardMarkup:
    """A button opening the private chat with the bot at its packs (for groups)."""
    url = f"https://t.me/{username}?start={BUY_DEEP_LINK}"
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=_("⭐ Buy credits in private"), url=url)]]
    )


async def send_invoice(bot: Bot, chat_id: int, pack: Pack) -> None:
    """Send a pack's invoice: in Stars, one price, and no provider token (Stars need none)."""
    title = _("{credits} credits").format(credits=pack.credits)
    await bot.send_invoice(
        chat_id=chat_id,
        title=title,
        description=_("Credits for Midjourney jobs in this bot: {credits}.").format(
            credits=pack.credits
        ),
        payload=pack.payload,
        currency=CURRENCY,
        prices=[LabeledPrice(label=title, amount=pack.stars)],
    )


def packs_text(balance: Balance) -> str:
    """What goes above the pack buttons."""
    return _(
        "⭐ <b>Buy credits with Telegram Stars</b>\n"
        "Your credits: {credits}. Jobs beyond your free ones cost credits; a failed job "
        "costs nothing."
    ).format(credits=balance.credits)


def no_packs_text() -> str:
    """Said when payments are on but nothing is for sale."""
    return _("Nothing is for sale right now.")


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")


def balance_text(balance: Balance, purchases: Sequence[Purchase], *, admin: bool) -> str:
    """A user's credits, what running jobs hold, and their last purchases."""
    lines = [
        _("💳 Credits: <b>{credits}</b>").format(credits=balance.credits),
        _("Held by running jobs: {reserved}").format(reserved=balance.reserved),
    ]
    if admin:
        lines.append(_("You're an admin: your jobs need no credits."))
    if purchases:
        lines.append("")
        lines.append(_("<b>Last purchases</b>"))
        for purchase in purchases:
            line = _("{when}: +{credits} for {stars} ⭐").format(
                when=_when(purchase.created_at), credits=purchase.credits, stars=purchase.stars
            )
            line += f" · <code>{html.escape(purchase.charge_id)}</code>"
            if purchase.refunded:
                line += " " + _("(refunded)")
            lines.append(line)
    else:
        lines.append(_("No purchases yet. /buy shows the packs."))
    return "\n".join(lines)
