"""Every follow-up button over real HTTP: the API call it makes, the prompt it asks, its result."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.delivery import keyboards
from bot.delivery.keyboards import ActionCallback
from bot.jobs.actions import Action, action_rows
from bot.playground.emulator import ApiCall, FakeTelegram
from bot.userapi.simulator import DEFAULT_ACCOUNT, Simulator
from tests.e2e.harness import (
    BotHarness,
    answer_of,
    button_data,
    button_labels,
    has_keyboard,
    make_harness,
)

API = "/midjourney/v2"
ACTION_PATHS = tuple(
    f"{API}/{name}"
    for name in (
        "upscale",
        "variation",
        "reroll",
        "vary-subtle",
        "vary-strong",
        "zoom",
        "pan",
        "upsample",
        "animate",
        "seed",
    )
)
GRID_LABELS = [["U1", "U2", "U3", "U4"], ["V1", "V2", "V3", "V4"], ["🔄", "🌱 Seed"]]
ANIMATION_LABELS = [["U1", "U2", "U3", "U4"], ["🔄"]]


def upscale_labels(upscale_row: list[str]) -> list[list[str]]:
    """The keyboard of an upscale whose prompt gives this Upscale row."""
    return [
        ["Vary (Subtle)", "Vary (Strong)", "Vary (Region)"],
        ["Zoom Out 2x", "Zoom Out 1.5x", "Custom Zoom"],
        ["⬅️", "➡️", "⬆️", "⬇️"],
        upscale_row,
        ["Animate (High motion)", "Animate (Low motion)"],
    ]


# Faster than the shared fixture: these tests run many jobs and only care about outcomes.
SIM_PACE = 0.02


@pytest.fixture
async def bot(tg: FakeTelegram, sim: Simulator, tmp_path: Path) -> AsyncIterator[BotHarness]:
    # Buttons work the same whichever way updates arrive (test_imagine_flow covers both).
    async for runner in make_harness(tg, sim, tmp_path, webhooks=True):
        yield runner


class Session:
    """One user in a private chat with the bot, and what the bot has sent back."""

    def __init__(self, bot: BotHarness) -> None:
        self.tg = bot.tg
        self.sim = bot.sim
        self.user = self.tg.user(1001, "Ann")
        self.chat = self.tg.private_chat(self.user)
        self.chat_id = int(self.chat["id"])

    def _is_result(self, call: ApiCall) -> bool:
        return call.ok and int(call.params["chat_id"]) == self.chat_id and has_keyboard(call)

    def results(self, method: str = "sendPhoto") -> list[dict[str, Any]]:
        """Result messages (media with buttons) sent to the chat so far, in order."""
        return [dict(c.result) for c in self.tg.calls(method) if self._is_result(c)]

    async def wait_results(self, count: int, method: str = "sendPhoto") -> list[dict[str, Any]]:
        """Wait until `count` results have been sent and return them all."""
        await self.tg.wait_for(method, self._is_result, count=count, timeout=20)
        return self.results(method)

    async def imagine(self, prompt: str) -> dict[str, Any]:
        """Send /imagine and return the grid that comes back."""
        before = len(self.results())
        self.tg.send_message(self.chat, self.user, f"/imagine {prompt}")
        return (await self.wait_results(before + 1))[-1]

    async def upscale(self, prompt: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Imagine, press U1, and return the grid and its upscale."""
        grid = await self.imagine(prompt)
        before = len(self.results())
        self.press(grid, "U1")
        return grid, (await self.wait_results(before + 1))[-1]

    def press(self, message: dict[str, Any], label: str) -> str:
        """Press the button with this label; return the callback query id."""
        return self.tg.press(message, button_data(message, label), self.user)

    async def answer(self, query_id: str) -> dict[str, Any]:
        """Wait for the bot to answer a button press and return the answer."""
        return await answer_of(self.tg, query_id)

    async def ask(self, count: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
        """Wait for the count-th ForceReply question; return the message and its reply_markup."""
        call = await self.tg.wait_for("sendMessage", lambda c: c.ok and asks(c), count=count)
        return dict(call.result), dict(call.params["reply_markup"])

    async def reply(self, question: dict[str, Any], text: str) -> dict[str, Any]:
        """Answer a ForceReply question and return the result the bot sends."""
        before = len(self.results())
        message = self.tg.send_message(
            self.chat, self.user, text, reply_to_message_id=question["message_id"]
        )
        result = (await self.wait_results(before + 1))[-1]
        assert result["reply_to_message"]["message_id"] == message["message_id"]
        return result

    def task_hash(self, type_: str, **fields: Any) -> str:
        """The simulator's hash of the one task of this type with these fields."""
        found = [
            t
            for t in self.sim.tasks.values()
            if t["type"] == type_ and all(t.get(k) == v for k, v in fields.items())
        ]
        assert len(found) == 1, f"{len(found)} {type_} tasks with {fields}"
        return str(found[0]["hash"])

    def bodies(self, name: str) -> list[dict[str, Any]]:
        """JSON bodies the bot posted to an endpoint, without the webhook fields."""
        skip = {"webhook_url", "webhook_type"}
        return [
            {k: v for k, v in json.loads(r.body).items() if k not in skip}
            for r in self.sim.requests_to(f"{API}/{name}")
        ]


def asks(call: ApiCall) -> bool:
    markup = call.params.get("reply_markup")
    return isinstance(markup, dict) and bool(markup.get("force_reply"))


def headline(message: dict[str, Any]) -> str:
    """The first line of a result's caption: what kind of job it was."""
    return str(message.get("caption", "")).split("\n", 1)[0]


def assert_answered_before_started(tg: FakeTelegram, since: int) -> None:
    """Each press was answered before its job's status message (so before the API call)."""
    answers = 0
    started = 0
    for call in tg.requests[since:]:
        if call.method == "answerCallbackQuery":
            answers += 1
        elif call.method == "sendMessage" and "Sending to Midjourney" in call.params["text"]:
            started += 1
            assert answers >= started, "a job started before its button press was answered"
    assert started > 0


def action_calls(sim: Simulator) -> list[str]:
    return [r.path for r in sim.requests if r.path in ACTION_PATHS]


async def test_grid_buttons_call_their_endpoints_and_deliver(bot: BotHarness) -> None:
    s = Session(bot)
    grid = await s.imagine("a lighthouse in a storm")
    grid_hash = s.task_hash("imagine")

    # Held jobs can't finish, so answered presses prove the answer doesn't wait for the job.
    s.sim.config.hold = True
    labels = ["U1", "U2", "U3", "U4", "V3", "🔄"]
    since = len(s.tg.requests)
    queries = [s.press(grid, label) for label in labels]
    answers = [await s.answer(q) for q in queries]
    assert not any(a.get("show_alert") for a in answers)
    assert all(t["status"] != "done" for t in s.sim.tasks.values() if t["parent_hash"])
    s.sim.release()
    await s.tg.wait_for(
        "sendMessage", lambda c: "Sending to Midjourney" in c.params["text"], count=7
    )
    assert_answered_before_started(s.tg, since)

    results = (await s.wait_results(1 + len(labels)))[1:]
    assert sorted(headline(r) for r in results) == sorted(
        ["Upscale #1", "Upscale #2", "Upscale #3", "Upscale #4", "Variation #3", "Reroll"]
    )
    assert all(r["reply_to_message"]["message_id"] == grid["message_id"] for r in results)
    for result in results:
        expected = upscale_labels(["Upscale (Subtle)", "Upscale (Creative)"])
        if not headline(result).startswith("Upscale"):
            expected = GRID_LABELS
        assert button_labels(result) == expected, headline(result)

    upscales = s.bodies("upscale")
    assert sorted(upscales, key=lambda b: b["choice"]) == [
        {"hash": grid_hash, "choice": n} for n in (1, 2, 3, 4)
    ]
    # Remix is off: V and 🔄 run at once, with no prompt and no question.
    assert s.bodies("variation") == [{"hash": grid_hash, "choice": 3}]
    assert s.bodies("reroll") == [{"hash": grid_hash}]
    assert not [c for c in s.tg.calls("sendMessage") if asks(c)]


async def test_upscale_buttons_call_their_endpoints_and_deliver(bot: BotHarness) -> None:
    s = Session(bot)
    _, upscale = await s.upscale("a red fox in the snow")
    up_hash = s.task_hash("upscale")
    assert button_labels(upscale) == upscale_labels(["Upscale (Subtle)", "Upscale (Creative)"])

    labels = [
        "Vary (Subtle)",
        "Vary (Strong)",
        "Zoom Out 1.5x",
        "⬅️",
        "➡️",
        "⬆️",
        "⬇️",
        "Upscale (Subtle)",
        "Upscale (Creative)",
    ]
    before = len(s.results())
    since = len(s.tg.requests)
    queries = [s.press(upscale, label) for label in labels]
    results = (await s.wait_results(before + len(labels)))[before:]
    for query in queries:
        assert not (await s.answer(query)).get("show_alert")
    assert_answered_before_started(s.tg, since)

    assert sorted(headline(r) for r in results) == sorted(
        ["Vary (Subtle)", "Vary (Strong)", "Zoom Out", *["Pan"] * 4, "Upscale", "Upscale"]
    )
    assert all(r["reply_to_message"]["message_id"] == upscale["message_id"] for r in results)
    assert all(button_labels(r) for r in results), "a child result came without buttons"

    assert s.bodies("vary-subtle") == [{"hash": up_hash}]
    assert s.bodies("vary-strong") == [{"hash": up_hash}]
    assert s.bodies("zoom") == [{"hash": up_hash, "choice": 75}]
    pans = sorted(b["choice"] for b in s.bodies("pan"))
    assert pans == ["down", "left", "right", "up"]
    assert all(b == {"hash": up_hash, "choice": b["choice"]} for b in s.bodies("pan"))
    assert sorted(b["choice"] for b in s.bodies("upsample")) == [
        "v7_2x_creative",
        "v7_2x_subtle",
    ]
    assert all(b["hash"] == up_hash for b in s.bodies("upsample"))


@pytest.mark.parametrize(
    ("flag", "labels", "choices"),
    [
        (
            "--v 6.1",
            ["Upscale (Subtle)", "Upscale (Creative)"],
            ["v6r1_2x_subtle", "v6r1_2x_creative"],
        ),
        ("--v 5.2", ["Upscale (2x)", "Upscale (4x)"], ["v5_2x", "v5_4x"]),
    ],
)
async def test_upsample_choice_follows_the_model_version(
    bot: BotHarness, flag: str, labels: list[str], choices: list[str]
) -> None:
    s = Session(bot)
    _, upscale = await s.upscale(f"a quiet harbour {flag}")
    assert button_labels(upscale) == upscale_labels(labels)

    before = len(s.results())
    for label in labels:
        s.press(upscale, label)
    results = (await s.wait_results(before + 2))[before:]

    up_hash = s.task_hash("upscale")
    assert sorted(s.bodies("upsample"), key=lambda b: choices.index(b["choice"])) == [
        {"hash": up_hash, "choice": choice} for choice in choices
    ]
    assert [headline(r) for r in results] == ["Upscale", "Upscale"]


async def test_animate_arrives_as_a_playable_animation(bot: BotHarness) -> None:
    s = Session(bot)
    _, upscale = await s.upscale("a paper boat on a pond")
    up_hash = s.task_hash("upscale")

    queries = [s.press(upscale, "Animate (High motion)"), s.press(upscale, "Animate (Low motion)")]
    animations = await s.wait_results(2, method="sendAnimation")
    for query in queries:
        assert not (await s.answer(query)).get("show_alert")

    assert sorted(s.bodies("animate"), key=lambda b: b["choice"]) == [
        {"hash": up_hash, "choice": "high"},
        {"hash": up_hash, "choice": "low"},
    ]
    for message in animations:
        animation = message["animation"]
        assert animation["mime_type"] == "video/mp4"
        # An ISO media file (what Telegram plays inline), not the API's animated WebP.
        assert s.tg.file_bytes(animation["file_id"])[4:8] == b"ftyp"
        assert button_labels(message) == ANIMATION_LABELS
        assert message["reply_to_message"]["message_id"] == upscale["message_id"]


async def test_remix_mode_asks_for_the_prompt_first(bot: BotHarness) -> None:
    s = Session(bot)
    s.sim.set_account(DEFAULT_ACCOUNT, remix=True)
    prompt = "a lighthouse in a storm --ar 1:1"
    grid = await s.imagine(prompt)
    grid_hash = s.task_hash("imagine")

    query = s.press(grid, "V1")
    question, markup = await s.ask()
    assert not (await s.answer(query)).get("show_alert")
    assert markup["input_field_placeholder"] == prompt
    assert prompt in question["text"]
    assert question["reply_to_message"]["message_id"] == grid["message_id"]

    # Telegram turns `--` into an em dash; the bot turns it back.
    variation = await s.reply(question, "a lighthouse at night —ar 1:1")
    assert s.bodies("variation") == [
        {"hash": grid_hash, "choice": 1, "prompt": "a lighthouse at night --ar 1:1"}
    ]
    assert variation["caption"] == "Variation #1\na lighthouse at night --ar 1:1"
    assert button_labels(variation) == GRID_LABELS

    # U is no remix action: it runs at once even in remix mode.
    before = len(s.results())
    s.press(grid, "U1")
    upscale = (await s.wait_results(before + 1))[-1]
    up_hash = s.task_hash("upscale")

    s.press(upscale, "Vary (Strong)")
    question, _ = await s.ask(2)
    assert prompt in question["text"]
    await s.reply(question, "a lighthouse made of glass")
    assert s.bodies("vary-strong") == [{"hash": up_hash, "prompt": "a lighthouse made of glass"}]

    s.press(upscale, "⬅️")
    question, _ = await s.ask(3)
    await s.reply(question, "a lighthouse and a pier")
    assert s.bodies("pan") == [
        {"hash": up_hash, "choice": "left", "prompt": "a lighthouse and a pier"}
    ]
    # One call per answered question: the presses themselves called nothing.
    assert sorted(action_calls(s.sim)) == sorted(
        [f"{API}/variation", f"{API}/upscale", f"{API}/vary-strong", f"{API}/pan"]
    )


async def test_custom_zoom_asks_for_a_prompt_and_sends_no_choice(bot: BotHarness) -> None:
    s = Session(bot)
    prompt = "a red fox in the snow"
    _, upscale = await s.upscale(prompt)
    up_hash = s.task_hash("upscale")

    s.press(upscale, "Custom Zoom")
    question, markup = await s.ask()
    assert markup["input_field_placeholder"] == f"{prompt} --zoom 2"
    assert f"{prompt} --zoom 2" in question["text"]
    assert s.bodies("zoom") == []

    zoomed = await s.reply(question, "a red fox in a snowy forest —zoom 1.8")
    assert s.bodies("zoom") == [
        {"hash": up_hash, "prompt": "a red fox in a snowy forest --zoom 1.8"}
    ]
    assert headline(zoomed) == "Zoom Out"
    assert button_labels(zoomed) == GRID_LABELS


async def test_seed_is_asked_once_and_shown_on_every_press(bot: BotHarness) -> None:
    s = Session(bot)
    grid = await s.imagine("a bowl of cherries")

    def shows_seed(call: ApiCall) -> bool:
        return call.ok and "🌱 Seed" in str(call.params.get("text"))

    texts = []
    for count in (1, 2, 3):
        query = s.press(grid, "🌱 Seed")
        call = await s.tg.wait_for("sendMessage", shows_seed, count=count)
        assert not (await s.answer(query)).get("show_alert")
        texts.append(call.result["text"])

    seed_task = s.sim.tasks[s.task_hash("seed")]
    assert texts == [f"🌱 Seed: {seed_task['result']['seed']}"] * 3
    assert len(s.sim.requests_to(f"{API}/seed")) == 1


async def test_forged_or_stale_buttons_get_an_alert_and_call_nothing(bot: BotHarness) -> None:
    s = Session(bot)
    grid = await s.imagine("a bowl of cherries")
    grid_task_id = button_data(grid, "U1").split(":")[1]

    for data in ("a1:99999:0", f"a1:{grid_task_id}:99"):
        query = s.tg.press(grid, data, s.user, check=False)
        answer = await s.answer(query)
        assert answer.get("show_alert") is True
        assert "no longer available" in answer["text"]
    assert action_calls(s.sim) == []
    assert len(s.results()) == 1


async def test_keyboards_are_the_same_without_next_actions(bot: BotHarness) -> None:
    s = Session(bot)

    async def keyboards() -> list[list[list[str]]]:
        grid, upscale = await s.upscale("a paper boat on a pond")
        s.press(upscale, "Animate (High motion)")
        count = len(s.results("sendAnimation")) + 1
        animation = (await s.wait_results(count, method="sendAnimation"))[-1]
        return [button_labels(grid), button_labels(upscale), button_labels(animation)]

    with_next_actions = await keyboards()
    s.sim.config.next_actions = False
    without = await keyboards()

    assert with_next_actions == [
        GRID_LABELS,
        upscale_labels(["Upscale (Subtle)", "Upscale (Creative)"]),
        ANIMATION_LABELS,
    ]
    assert without == with_next_actions
    # The two runs really read the two sources.
    done = [t for t in s.sim.tasks.values() if t["type"] in ("imagine", "upscale", "animate")]
    assert sorted("next_actions" in t for t in done) == [False] * 3 + [True] * 3


async def test_a_button_delivered_before_a_table_change_keeps_its_meaning(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Session(bot)
    grid = await s.imagine("a red kite over dunes")
    grid_task_id = button_data(grid, "U1").split(":")[1]

    # The button table changes after delivery: every row (and the rows' order) is reversed,
    # so each index now names another button than the one in the chat.
    real_rows = action_rows

    def reordered(**task: Any) -> list[list[Action]]:
        return [row[::-1] for row in real_rows(**task)[::-1]]

    monkeypatch.setattr(keyboards, "action_rows", reordered)
    s.press(grid, "U2")
    upscale = (await s.wait_results(2))[-1]
    assert headline(upscale) == "Upscale #2"
    assert s.bodies("upscale") == [{"hash": s.task_hash("imagine"), "choice": 2}]

    # A button sent before keys carried its index in the keyboard of the day ("a1:<task>:2"
    # was U3): it is read by rebuilding the keyboard, so it still does what its label said.
    monkeypatch.undo()
    s.tg.press(grid, f"a1:{grid_task_id}:2", s.user, check=False)
    again = (await s.wait_results(3))[-1]
    assert headline(again) == "Upscale #3"
    assert [b["choice"] for b in s.bodies("upscale")] == [2, 3]


async def test_button_keys_fit_telegram_callback_data(bot: BotHarness) -> None:
    s = Session(bot)
    grid, upscale = await s.upscale("a tin robot, --v 6.1")
    for message in (grid, upscale):
        for row in message["reply_markup"]["inline_keyboard"]:
            for button in row:
                data = ActionCallback.unpack(button["callback_data"])
                assert len(button["callback_data"].encode()) <= 64
                assert data.task_id > 0 and data.kind
    forged = f"a2:{button_data(grid, 'U1').split(':')[1]}:upscale:9"
    answer = await s.answer(s.tg.press(grid, forged, s.user, check=False))
    assert answer.get("show_alert") is True and "no longer available" in answer["text"]
