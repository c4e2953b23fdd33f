"""Telegram Stars: invoices, pre-checkout, successful payments and refunds."""

from __future__ import annotations

import asyncio
import copy
import secrets
import time

from bot.playground.emulator.sending import Sending
from bot.playground.emulator.wire import (
    JSONDict,
    Req,
    bad,
)


class Payments(Sending):
    """The bot's payment methods and the buyer's side of a payment."""

    async def _send_invoice(self, req: Req) -> JSONDict:
        chat = self._chat(req)
        title = req.get_str("title") or ""
        description = req.get_str("description") or ""
        payload = req.get_str("payload") or ""
        currency = req.get_str("currency") or ""
        if not 1 <= len(title) <= 32:
            raise bad("INVOICE_TITLE_INVALID" if title else "title is empty")
        if not 1 <= len(description) <= 255:
            raise bad("INVOICE_DESCRIPTION_INVALID")
        if not 1 <= len(payload.encode()) <= 128:
            raise bad("INVOICE_PAYLOAD_INVALID")
        if not currency:
            raise bad("CURRENCY_INVALID")
        prices = req.get("prices")
        if not isinstance(prices, list) or not prices:
            raise bad("can't parse prices JSON object")
        for price in prices:
            amount = price.get("amount") if isinstance(price, dict) else None
            if not isinstance(amount, int) or isinstance(amount, bool) or not price.get("label"):
                raise bad("can't parse prices JSON object")
        total = sum(int(price["amount"]) for price in prices)
        if currency == "XTR":
            # Stars: one price, a whole number of Stars, and no payment provider.
            if len(prices) != 1 or total < 1:
                raise bad("STARS_INVOICE_INVALID")
            if req.get_str("provider_token"):
                raise bad("PAYMENT_PROVIDER_INVALID")
        elif not req.get_str("provider_token"):
            raise bad("PAYMENT_PROVIDER_INVALID")
        markup = self._check_markup(req.get("reply_markup"), chat)
        content: JSONDict = {
            "invoice": {
                "title": title,
                "description": description,
                "start_parameter": req.get_str("start_parameter") or "",
                "currency": currency,
                "total_amount": total,
            }
        }
        message = self._emit(req, chat, content, markup, self._reply_to(req, chat))
        self._invoices[(chat["id"], message["message_id"])] = payload
        return message

    async def _answer_pre_checkout_query(self, req: Req) -> bool:
        query_id = req.get_str("pre_checkout_query_id") or ""
        if query_id not in self._checkouts or self._checkouts[query_id] is not None:
            raise bad("QUERY_ID_INVALID")
        if "ok" not in req.params:
            raise bad("ok is empty")
        if not req.get_bool("ok") and not req.get_str("error_message"):
            raise bad("ERROR_MESSAGE_EMPTY")
        self._checkouts[query_id] = dict(req.params)
        return True

    async def _refund_star_payment(self, req: Req) -> bool:
        user_id = req.need_int("user_id", "USER_ID_INVALID")
        charge_id = req.get_str("telegram_payment_charge_id") or ""
        payment = self._star_payments.get(charge_id)
        if payment is None or payment["user_id"] != user_id:
            raise bad("CHARGE_NOT_FOUND")
        if payment["refunded"]:
            raise bad("CHARGE_ALREADY_REFUNDED")
        self.refund_by_telegram(charge_id)
        return True

    def refund_by_telegram(self, charge_id: str) -> None:
        """Return a payment's Stars (as Telegram may on its own) and tell the buyer's chat."""
        payment = self._star_payments[charge_id]
        payment["refunded"] = True
        user, payload = self._payers[charge_id]
        chat = self.private_chat(user)
        message: JSONDict = {
            "message_id": self._next_message_id(chat["id"]),
            "from": user,
            "chat": chat,
            "date": int(time.time()),
            "refunded_payment": {
                "currency": "XTR",
                "total_amount": payment["total_amount"],
                "invoice_payload": payload,
                "telegram_payment_charge_id": charge_id,
            },
        }
        self._store(message)
        self.queue_update({"message": copy.deepcopy(message)})

    def pre_checkout(
        self, user: JSONDict, *, payload: str, total_amount: int, currency: str = "XTR"
    ) -> str:
        """Queue a pre_checkout_query, as when a user presses Pay on an invoice; its id."""
        self._users.setdefault(user["id"], dict(user))
        query_id = str(secrets.randbits(63))
        self._checkouts[query_id] = None
        self.queue_update(
            {
                "pre_checkout_query": {
                    "id": query_id,
                    "from": dict(user),
                    "currency": currency,
                    "total_amount": total_amount,
                    "invoice_payload": payload,
                }
            }
        )
        return query_id

    async def pay(self, invoice: JSONDict, user: JSONDict, timeout: float = 10.0) -> JSONDict:
        """Press Pay on an invoice message: the pre-checkout, then the payment if the bot agrees.

        Returns the bot's pre-checkout answer (`ok`, and `error_message` when it declined).
        """
        key = (invoice["chat"]["id"], invoice["message_id"])
        payload, current = self._invoices.get(key), self.message(*key)
        if payload is None or current is None:
            raise ValueError(f"no invoice {key[1]} in chat {key[0]}")
        price = {
            "total_amount": current["invoice"]["total_amount"],
            "currency": current["invoice"]["currency"],
        }
        answer = await self.wait_checkout_answer(
            self.pre_checkout(user, payload=payload, **price), timeout
        )
        if answer.get("ok"):
            self.successful_payment(user, payload=payload, **price)
        return answer

    def checkout_answer(self, query_id: str) -> JSONDict | None:
        """The bot's answerPreCheckoutQuery params for a query, None while unanswered."""
        return copy.deepcopy(self._checkouts.get(query_id))

    async def wait_checkout_answer(self, query_id: str, timeout: float = 10.0) -> JSONDict:
        """Wait for the bot to answer a pre-checkout query (Telegram gives it 10 s)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (answer := self._checkouts.get(query_id)) is None:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"pre-checkout {query_id} unanswered after {timeout}s")
            await self._wait_change(remaining)
        return copy.deepcopy(answer)

    def successful_payment(
        self,
        user: JSONDict,
        *,
        payload: str,
        total_amount: int,
        currency: str = "XTR",
        charge_id: str | None = None,
    ) -> str:
        """Queue the service message of a finished payment in the user's private chat.

        Passing the `charge_id` of an earlier payment delivers that payment again, as
        Telegram may; returns the charge id.
        """
        charge_id = charge_id or f"stxTEST{secrets.token_hex(12)}"
        self._star_payments.setdefault(
            charge_id,
            {"user_id": user["id"], "total_amount": total_amount, "refunded": False},
        )
        self._payers[charge_id] = (dict(user), payload)
        chat = self.private_chat(user)
        message: JSONDict = {
            "message_id": self._next_message_id(chat["id"]),
            "from": dict(user),
            "chat": chat,
            "date": int(time.time()),
            "successful_payment": {
                "currency": currency,
                "total_amount": total_amount,
                "invoice_payload": payload,
                "telegram_payment_charge_id": charge_id,
                "provider_payment_charge_id": "",
            },
        }
        self._store(message)
        self.queue_update({"message": copy.deepcopy(message)})
        return charge_id

    def star_payment(self, charge_id: str) -> JSONDict | None:
        """A payment as Telegram keeps it: user_id, total_amount, refunded."""
        return copy.deepcopy(self._star_payments.get(charge_id))
