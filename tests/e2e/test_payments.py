"""Paid generations over real HTTP: credits bought with Telegram Stars, held when a job starts,
charged on `done`, released on any failure, and the owner's grant, refund and stats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.jobs.request import ImagineRequest, dump_request
from bot.playground.emulator import FakeTelegram
from bot.telegram.session import RetryMiddleware
from bot.userapi.simulator import Simulator
from storage.credits import CreditsRepo
from storage.database import Database
from storage.tasks import TaskRepo
from tests.e2e.harness import (
    BotHarness,
    MakeBot,
    button_data,
    button_labels,
    keyboard_in,
    said,
    started_bots,
    until,
    wait_in_flight,
)

ADMIN = 9001
IMAGINE = "/midjourney/v2/imagine"
PACKS = "10:50,50:200"
# Faster than the shared default: these tests care about outcomes, not progress.
SIM_PACE = 0.02

JSONDict = dict[str, Any]


@pytest.fixture
async def make_bot(tg: FakeTelegram, sim: Simulator, tmp_path: Path) -> AsyncIterator[MakeBot]:
    """Starts a bot selling credits (PAYMENTS=stars, no free jobs unless told)."""
    tg.private_chat(tg.user(ADMIN, "Owner", username="owner"))
    async with started_bots(
        tg,
        sim,
        tmp_path,
        payments="stars",
        stars_packs=PACKS,
        job_costs="imagine:1,upscale:1,animate:2",
        admin_ids=[ADMIN],
    ) as make:
        yield make


async def say(tg: FakeTelegram, chat: JSONDict, user: JSONDict, text: str) -> str:
    """Send a message and return the text of the bot's next message to that chat."""
    before = len([c for c in tg.calls("sendMessage") if said(chat["id"], "")(c)])
    tg.send_message(chat, user, text)
    call = await tg.wait_for("sendMessage", said(chat["id"], ""), count=before + 1)
    return str(call.params["text"])


async def balance(tg: FakeTelegram, chat: JSONDict, user: JSONDict) -> str:
    """The user's /balance answer."""
    return await say(tg, chat, user, "/balance")


async def pay(tg: FakeTelegram, user: JSONDict, payload: str, stars: int) -> str | None:
    """Press Pay on an invoice as Telegram would: pre-checkout, then (if ok) the payment."""
    query = tg.pre_checkout(user, payload=payload, total_amount=stars)
    answer = await tg.wait_checkout_answer(query)
    if not answer["ok"]:
        return None
    return tg.successful_payment(user, payload=payload, total_amount=stars)


async def buy_pack(bot: BotHarness, chat: JSONDict, user: JSONDict, label: str) -> str:
    """From /buy to a credited pack: press the pack, pay its invoice; the charge id."""
    tg = bot.tg
    offered = said(chat["id"], "Buy credits with Telegram")
    offers = len([c for c in tg.calls("sendMessage") if offered(c)])
    invoices = len(tg.calls("sendInvoice"))
    tg.send_message(chat, user, "/buy")
    offer = await tg.wait_for("sendMessage", offered, count=offers + 1)
    tg.press(offer.result, button_data(offer.result, label), user)
    invoice = await tg.wait_for("sendInvoice", lambda c: c.ok, count=invoices + 1)
    charge = await pay(
        tg,
        user,
        str(invoice.params["payload"]),
        int(invoice.params["prices"][0]["amount"]),
    )
    assert charge is not None
    return charge


async def test_user_without_credits_buys_a_pack_once(make_bot: Any) -> None:
    bot: BotHarness = await make_bot()
    tg, sim = bot.tg, bot.sim
    ann = tg.user(1001, "Ann")
    chat = tg.private_chat(ann)

    # No free jobs and no credits: the job is refused before it costs anything, with a button.
    tg.send_message(chat, ann, "/imagine a lighthouse")
    refusal = await tg.wait_for("sendMessage", said(chat["id"], "out of credits"))
    assert "this job costs 1" in refusal.params["text"]
    assert sim.requests_to(IMAGINE) == []
    tg.press(refusal.result, button_data(refusal.result, "⭐ Buy credits"), ann)
    offer = await tg.wait_for("sendMessage", said(chat["id"], "Buy credits with Telegram"))
    assert button_labels(offer.result) == [["10 credits — 50 ⭐"], ["50 credits — 200 ⭐"]]

    # The pack's invoice: in Stars, its price, no provider token, a payload naming the pack.
    tg.press(offer.result, button_data(offer.result, "10 credits — 50 ⭐"), ann)
    invoice = await tg.wait_for("sendInvoice", lambda c: c.ok)
    assert invoice.params["currency"] == "XTR"
    assert invoice.params["chat_id"] == ann["id"]
    assert [p["amount"] for p in invoice.params["prices"]] == [50]
    assert not invoice.params.get("provider_token")
    assert invoice.result["invoice"]["total_amount"] == 50
    payload = str(invoice.params["payload"])

    query = tg.pre_checkout(ann, payload=payload, total_amount=50)
    assert (await tg.wait_checkout_answer(query))["ok"] is True
    charge = tg.successful_payment(ann, payload=payload, total_amount=50)
    thanks = await tg.wait_for("sendMessage", said(chat["id"], "Thank you"))
    assert "+10 credits" in thanks.params["text"]
    assert "Your balance: <b>10</b>" in thanks.params["text"]

    # Telegram delivering the same payment again credits nothing more.
    tg.successful_payment(ann, payload=payload, total_amount=50, charge_id=charge)
    again = await tg.wait_for("sendMessage", said(chat["id"], "counted already"))
    assert "Your balance: <b>10</b>" in again.params["text"]
    shown = await balance(tg, chat, ann)
    assert "Credits: <b>10</b>" in shown
    assert "+10 for 50 ⭐" in shown and charge in shown

    # Now the job runs, and costs its price once it is done.
    tg.send_message(chat, ann, "/imagine a lighthouse")
    await bot.photo_reply(chat["id"], keyboard_in(chat["id"]))
    shown = await balance(tg, chat, ann)
    assert "Credits: <b>9</b>" in shown and "Held by running jobs: 0" in shown
    history = await say(tg, chat, ann, "/history")
    assert "💳 spent 1" in history and "💳 nothing" in history


async def test_buy_in_a_group_links_to_the_private_chat(make_bot: Any) -> None:
    bot: BotHarness = await make_bot()
    tg = bot.tg
    ann = tg.user(1001, "Ann")
    group = tg.group_chat(-100500, "Artists")
    tg.send_message(group, ann, "/buy@mj_test_bot")
    answer = await tg.wait_for("sendMessage", said(group["id"], "private chat"))
    button = answer.result["reply_markup"]["inline_keyboard"][0][0]
    assert button["url"] == "https://t.me/mj_test_bot?start=buy"
    assert tg.calls("sendInvoice") == []

    # The link opens the private chat with /start buy: the packs.
    chat = tg.private_chat(ann)
    tg.send_message(chat, ann, "/start buy")
    offer = await tg.wait_for("sendMessage", said(chat["id"], "Buy credits with Telegram"))
    assert len(button_labels(offer.result)) == 2

    # Out of credits in the group: the buy button there answers with the same link.
    tg.send_message(group, ann, "/imagine@mj_test_bot a group job")
    refusal = await tg.wait_for("sendMessage", said(group["id"], "out of credits"))
    query = tg.press(refusal.result, button_data(refusal.result, "⭐ Buy credits"), ann)
    await tg.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == query)
    answered = tg.callback_answer(query)
    assert answered is not None and answered["url"] == "https://t.me/mj_test_bot?start=buy"


async def test_pre_checkout_refuses_what_was_not_offered(make_bot: Any) -> None:
    bot: BotHarness = await make_bot()
    tg = bot.tg
    ann = tg.user(1001, "Ann")
    tg.private_chat(ann)
    offers = [
        ("pack:10:50", 40, "XTR"),  # the pack, cheaper
        ("pack:10:40", 40, "XTR"),  # a pack never offered
        ("pack:11:50", 50, "XTR"),  # more credits for the price
        ("pack:10:50", 50, "USD"),  # not Stars
        ("something else", 50, "XTR"),
    ]
    for payload, stars, currency in offers:
        query = tg.pre_checkout(ann, payload=payload, total_amount=stars, currency=currency)
        answer = await tg.wait_checkout_answer(query)
        assert answer["ok"] is False, payload
        assert "not on offer" in answer["error_message"]
    good = tg.pre_checkout(ann, payload="pack:50:200", total_amount=200)
    assert (await tg.wait_checkout_answer(good))["ok"] is True


async def test_failed_jobs_cost_nothing_and_release_their_hold(make_bot: Any) -> None:
    bot: BotHarness = await make_bot()
    tg, sim = bot.tg, bot.sim
    owner, ann = tg.user(ADMIN, "Owner"), tg.user(1001, "Ann")
    admin_chat, chat = tg.private_chat(owner), tg.private_chat(ann)
    assert "Balance now: 3" in await say(tg, admin_chat, owner, "/grant 1001 3 a start")

    # A task error at Midjourney, the content prefilter, and the API answering 500.
    tg.send_message(chat, ann, "/imagine a broken dream sim:error")
    await tg.wait_for("editMessageText", said(chat["id"], "failed"), timeout=15)
    tg.send_message(chat, ann, "/imagine a filtered dream sim:prefilter")
    await tg.wait_for("editMessageText", said(chat["id"], "content filter"), timeout=15)
    sim.fail_next(IMAGINE, status=500)
    tg.send_message(chat, ann, "/imagine a dream of a server")
    await tg.wait_for("editMessageText", said(chat["id"], "internal error"), timeout=15)
    assert len(sim.requests_to(IMAGINE)) == 3

    shown = await balance(tg, chat, ann)
    assert "Credits: <b>3</b>" in shown and "Held by running jobs: 0" in shown
    assert bot.app is not None
    costs = await CreditsRepo(bot.app.db).job_costs([1, 2, 3])
    assert {task: cost.state for task, cost in costs.items()} == {
        1: "release",
        2: "release",
        3: "release",
    }
    history = await say(tg, chat, ann, "/history")
    assert history.count("nothing (1 returned)") == 3

    # Admins need no credits at all.
    tg.send_message(admin_chat, owner, "/imagine the owner's own")
    await bot.photo_reply(admin_chat["id"], keyboard_in(admin_chat["id"]))
    assert "Credits: <b>0</b>" in await balance(tg, admin_chat, owner)


async def test_concurrent_jobs_cant_spend_more_than_the_balance(make_bot: Any) -> None:
    bot: BotHarness = await make_bot(daily_limit=1)
    tg, sim = bot.tg, bot.sim
    owner, ann = tg.user(ADMIN, "Owner"), tg.user(1001, "Ann")
    admin_chat, chat = tg.private_chat(owner), tg.private_chat(ann)
    await say(tg, admin_chat, owner, "/grant 1001 2")

    # One free job today, two credits: of five jobs at once three run, two are refused.
    sim.config.hold = True
    for n in range(5):
        tg.send_message(chat, ann, f"/imagine burst {n}")
    await tg.wait_for("sendMessage", said(chat["id"], "out of credits"), count=2)
    await wait_in_flight(bot, 3)
    assert len(sim.requests_to(IMAGINE)) == 3
    shown = await balance(tg, chat, ann)
    assert "Credits: <b>0</b>" in shown and "Held by running jobs: 2" in shown

    sim.release()
    await bot.photo_reply(chat["id"], keyboard_in(chat["id"]), count=3)
    assert bot.app is not None
    credits = CreditsRepo(bot.app.db)

    async def nothing_held() -> bool:
        return (await credits.balance(1001)).reserved == 0

    await until(nothing_held, "settled")
    shown = await balance(tg, chat, ann)
    assert "Credits: <b>0</b>" in shown and "Held by running jobs: 0" in shown
    me = await say(tg, chat, ann, "/me")
    assert "Free jobs today: 1 of 1." in me


async def test_grant_refund_and_stats(make_bot: Any) -> None:
    bot: BotHarness = await make_bot(job_costs="imagine:3")
    tg = bot.tg
    owner, ann = tg.user(ADMIN, "Owner"), tg.user(1001, "Ann", username="ann")
    admin_chat, chat = tg.private_chat(owner), tg.private_chat(ann)
    # @ann is known once she wrote to the bot.
    assert "Credits: <b>0</b>" in await balance(tg, chat, ann)
    assert "+2 credits. Balance now: 2" in await say(
        tg, admin_chat, owner, "/grant @ann 2 welcome"
    )
    assert "Credits: 2, held by running jobs: 0" in await say(tg, admin_chat, owner, "/user 1001")
    assert "has only 2 credits" in await say(tg, admin_chat, owner, "/grant 1001 -5")
    assert "Usage" in await say(tg, admin_chat, owner, "/grant 1001 lots")
    # Not for everyone.
    assert "for the bot's admins" in await say(tg, chat, ann, "/grant 1001 100")

    first = await buy_pack(bot, chat, ann, "10 credits — 50 ⭐")
    await tg.wait_for("sendMessage", said(chat["id"], "Your balance: <b>12</b>"))

    # A refund Telegram refuses changes nothing.
    tg.fail_next(
        "refundStarPayment",
        error_code=400,
        description="Bad Request: REFUND_FAILED",
        retry_after=None,
    )
    refused = await say(tg, admin_chat, owner, f"/refund {first}")
    assert "Telegram refused the refund" in refused
    assert "Credits: <b>12</b>" in await balance(tg, chat, ann)

    # No answer from Telegram (every retry cut off): the Stars may have gone back, so the
    # credits stay taken back and the refund stays pending; the next /refund finishes it.
    tg.drop_connection_next("refundStarPayment", times=RetryMiddleware().attempts + 1)
    unanswered = await say(tg, admin_chat, owner, f"/refund {first}")
    assert "Telegram did not answer" in unanswered and "send the same /refund again" in unanswered
    assert "Nothing changed" not in unanswered
    assert "Credits: <b>2</b>" in await balance(tg, chat, ann)
    assert tg.star_payment(first) == {"user_id": 1001, "total_amount": 50, "refunded": False}

    refunded = await say(tg, admin_chat, owner, f"/refund {first}")
    assert "Refunded 50 ⭐ to user 1001; 10 credits taken back" in refunded
    call = tg.calls("refundStarPayment")[-1]
    assert call.ok and call.params["user_id"] == 1001
    assert call.params["telegram_payment_charge_id"] == first
    assert tg.star_payment(first) == {"user_id": 1001, "total_amount": 50, "refunded": True}
    shown = await balance(tg, chat, ann)
    assert "Credits: <b>2</b>" in shown and "(refunded)" in shown
    assert "refunded already" in await say(tg, admin_chat, owner, f"/refund {first}")
    assert "No purchase" in await say(tg, admin_chat, owner, "/refund stxNOPE")

    # Credits of a purchase partly spent can't be refunded.
    second = await buy_pack(bot, chat, ann, "10 credits — 50 ⭐")
    await tg.wait_for("sendMessage", said(chat["id"], "Your balance: <b>12</b>"))
    tg.send_message(chat, ann, "/imagine a costly fox")
    await bot.photo_reply(chat["id"], keyboard_in(chat["id"]))
    calls = len(tg.calls("refundStarPayment"))
    spent = await say(tg, admin_chat, owner, f"/refund {second}")
    assert "has spent some of those 10 credits (they have 9 left)" in spent
    assert len(tg.calls("refundStarPayment")) == calls
    assert "Credits: <b>9</b>" in await balance(tg, chat, ann)

    # Out of credits: the job is refused, and /stats names why in words.
    await say(tg, admin_chat, owner, "/grant 1001 -9")
    tg.send_message(chat, ann, "/imagine one fox too many")
    await tg.wait_for("sendMessage", said(chat["id"], "out of credits"))
    stats = await say(tg, admin_chat, owner, "/stats")
    assert "+100 ⭐, credits spent: 3 (refunded: 50 ⭐)" in stats
    assert "1 × out of credits" in stats and "bot:" not in stats


async def test_a_refund_telegram_made_on_its_own_takes_the_credits_back(make_bot: Any) -> None:
    bot: BotHarness = await make_bot()
    tg = bot.tg
    owner, ann = tg.user(ADMIN, "Owner"), tg.user(1001, "Ann")
    admin_chat, chat = tg.private_chat(owner), tg.private_chat(ann)
    charge = await buy_pack(bot, chat, ann, "10 credits — 50 ⭐")
    await tg.wait_for("sendMessage", said(chat["id"], "Your balance: <b>10</b>"))
    calls = len(tg.calls("refundStarPayment"))

    tg.refund_by_telegram(charge)  # a dispute Telegram settled: its refunded_payment message
    for _ in range(50):
        if "Credits: <b>0</b>" in (shown := await balance(tg, chat, ann)):
            break
        await asyncio.sleep(0.1)
    assert "Credits: <b>0</b>" in shown and "(refunded)" in shown
    assert "refunded already" in await say(tg, admin_chat, owner, f"/refund {charge}")
    assert len(tg.calls("refundStarPayment")) == calls


async def test_restart_between_hold_and_done_charges_once(make_bot: Any) -> None:
    bot: BotHarness = await make_bot()
    tg, sim = bot.tg, bot.sim
    owner, ann = tg.user(ADMIN, "Owner"), tg.user(1001, "Ann")
    admin_chat, chat = tg.private_chat(owner), tg.private_chat(ann)
    await say(tg, admin_chat, owner, "/grant 1001 2")

    sim.config.hold = True
    tg.send_message(chat, ann, "/imagine through a restart")
    hashes = await wait_in_flight(bot, 1)
    assert "Held by running jobs: 1" in await balance(tg, chat, ann)
    await bot.stop()
    sim.release()
    await sim.wait_for_status(hashes[0], "done")

    await bot.start()
    await bot.photo_reply(chat["id"], keyboard_in(chat["id"]))
    # The bot learns of `done` again on every poll until delivered; one charge all the same.
    await asyncio.sleep(0.5)
    shown = await balance(tg, chat, ann)
    assert "Credits: <b>1</b>" in shown and "Held by running jobs: 0" in shown
    assert bot.app is not None
    rows = await bot.app.db.fetch_all(
        "SELECT kind, amount FROM credit_ledger WHERE task_id IS NOT NULL ORDER BY id"
    )
    assert [(row["kind"], row["amount"]) for row in rows] == [("reserve", -1), ("charge", 0)]


async def test_free_jobs_first_and_free_types_cost_nothing(make_bot: Any) -> None:
    bot: BotHarness = await make_bot(daily_limit=1, job_costs="imagine:1,reroll:0,upscale:1")
    tg, sim = bot.tg, bot.sim
    ann = tg.user(1001, "Ann")
    chat = tg.private_chat(ann)

    # The day's free job, then a reroll priced 0: neither needs credits, and the reroll takes
    # nothing of the free allowance.
    tg.send_message(chat, ann, "/imagine a free fox")
    grid = await bot.photo_reply(chat["id"], keyboard_in(chat["id"]))
    tg.press(grid, button_data(grid, "🔄"), ann)
    await bot.photo_reply(chat["id"], keyboard_in(chat["id"]), count=2)
    me = await say(tg, chat, ann, "/me")
    assert "Free jobs today: 1 of 1." in me and "Credits: <b>0</b>" in me

    # An upscale costs its price: with no credits it is refused before reaching the API.
    upscales = len(sim.requests_to("/midjourney/v2/upscale"))
    tg.press(grid, button_data(grid, "U1"), ann)
    refusal = await tg.wait_for("sendMessage", said(chat["id"], "out of credits"))
    assert "this job costs 1" in refusal.params["text"]
    assert len(sim.requests_to("/midjourney/v2/upscale")) == upscales


async def test_jobs_queued_before_their_hold_are_held_or_refused_after_a_crash(
    make_bot: Any,
) -> None:
    bot: BotHarness = await make_bot()
    tg, sim = bot.tg, bot.sim
    owner, ann = tg.user(ADMIN, "Owner"), tg.user(1001, "Ann")
    admin_chat, chat = tg.private_chat(owner), tg.private_chat(ann)
    await say(tg, admin_chat, owner, "/grant 1001 1")
    await bot.stop()

    # The process died right after storing two jobs, before either took its hold.
    db = await Database.open(bot.database_path)
    repo = TaskRepo(db)
    for prompt in ("first after the crash", "second after the crash"):
        await repo.create(
            type="imagine",
            chat_id=chat["id"],
            user_id=ann["id"],
            prompt=prompt,
            request=dump_request(ImagineRequest(prompt=prompt)),
        )
    await db.close()

    await bot.start()
    # One credit: the first job is held and runs; the second can't be paid and is refused.
    await bot.photo_reply(chat["id"], keyboard_in(chat["id"]))
    await tg.wait_for("sendMessage", said(chat["id"], "out of credits"))
    assert [r.json()["prompt"] for r in sim.requests_to("/midjourney/v2/imagine")] == [
        "first after the crash"
    ]
    assert bot.app is not None
    rows = await bot.app.db.fetch_all(
        "SELECT kind, amount FROM credit_ledger WHERE task_id IS NOT NULL ORDER BY id"
    )
    assert [(row["kind"], row["amount"]) for row in rows] == [("reserve", -1), ("charge", 0)]
