"""Buttons from next_actions, and from the task type and model version when it is absent."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from bot.delivery.keyboards import ActionCallback
from bot.jobs.actions import InChat, action_rows, flat_actions, upsample_choices
from bot.prompts.rules import model_version
from handlers.images.actions import IN_CHAT_PRESSES

IMAGE = {"url": "http://cdn/x.png", "content_type": "image/png", "width": 2048, "height": 2048}
ANIMATION = {"url": "http://cdn/x.webp", "content_type": "image/webp"}


def labels(rows: list[list[Any]]) -> list[list[str]]:
    return [[action.label for action in row] for row in rows]


def test_grid_without_next_actions_has_the_nine_buttons_and_seed() -> None:
    rows = action_rows(task_type="imagine", prompt="a cat", result=IMAGE, next_actions=None)
    assert labels(rows) == [
        ["U1", "U2", "U3", "U4"],
        ["V1", "V2", "V3", "V4"],
        ["🔄", "🌱 Seed"],
    ]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a cat", ["v7_2x_subtle", "v7_2x_creative"]),
        ("a cat --v 7", ["v7_2x_subtle", "v7_2x_creative"]),
        ("a cat --v 6.1", ["v6r1_2x_subtle", "v6r1_2x_creative"]),
        ("a cat --version 6", ["v6_2x_subtle", "v6_2x_creative"]),
        ("a cat --v 5.2", ["v5_2x", "v5_4x"]),
        ("a cat --niji 6", ["v6_2x_subtle", "v6_2x_creative"]),
        ("a cat --niji 5", ["v5_2x", "v5_4x"]),
    ],
)
def test_upsample_choice_follows_the_prompt_version(prompt: str, expected: list[str]) -> None:
    assert upsample_choices(prompt) == expected


def test_model_version_defaults_to_v7() -> None:
    assert model_version(None) == ("v", 7.0)
    assert model_version("x --v5") == ("v", 5.0)


def test_upscale_without_next_actions_matches_midjourney() -> None:
    rows = action_rows(
        task_type="upscale", prompt="a cat --v 5.2", result=IMAGE, next_actions=None
    )
    assert labels(rows) == [
        ["Vary (Subtle)", "Vary (Strong)", "Vary (Region)"],
        ["Zoom Out 2x", "Zoom Out 1.5x", "Custom Zoom"],
        ["⬅️", "➡️", "⬆️", "⬇️"],
        ["Upscale (2x)", "Upscale (4x)"],
        ["Animate (High motion)", "Animate (Low motion)"],
    ]
    keys = [a.key for a in flat_actions(rows)]
    assert "upsample:v5_2x" in keys
    assert "zoom:50" in keys
    assert "pan:left" in keys


def test_upsample_result_offers_no_second_upscale() -> None:
    rows = action_rows(task_type="upsample", prompt="a cat", result=IMAGE, next_actions=None)
    assert not [a for a in flat_actions(rows) if a.kind == "upsample"]


def test_next_actions_are_authoritative() -> None:
    next_actions: list[dict[str, Any]] = [
        {"type": "upscale", "choices": [1, 2, 3, 4]},
        {"type": "reroll"},
    ]
    rows = action_rows(
        task_type="imagine", prompt="a cat", result=IMAGE, next_actions=next_actions
    )
    assert labels(rows) == [["U1", "U2", "U3", "U4"], ["🔄", "🌱 Seed"]]


def test_next_actions_for_an_upscale_use_the_apis_upsample_choices() -> None:
    next_actions: list[dict[str, Any]] = [
        {"type": "vary_subtle"},
        {"type": "vary_strong"},
        {"type": "inpaint"},
        {"type": "zoom", "choices": [50, 75]},
        {"type": "pan", "choices": ["left", "up"]},
        {"type": "upsample", "choices": ["v6r1_2x_subtle", "v6r1_2x_creative"]},
        {"type": "animate", "choices": ["high", "low"]},
        {"type": "mystery"},
    ]
    rows = action_rows(
        task_type="upscale", prompt="a cat", result=IMAGE, next_actions=next_actions
    )
    assert labels(rows) == [
        ["Vary (Subtle)", "Vary (Strong)", "Vary (Region)"],
        ["Zoom Out 2x", "Zoom Out 1.5x", "Custom Zoom"],
        ["⬅️", "⬆️"],
        ["Upscale (Subtle)", "Upscale (Creative)"],
        ["Animate (High motion)", "Animate (Low motion)"],
    ]
    assert [a.choice for a in flat_actions(rows) if a.kind == "upsample"] == [
        "v6r1_2x_subtle",
        "v6r1_2x_creative",
    ]


def test_animate_result_gets_upscales_and_reroll_but_no_seed() -> None:
    rows = action_rows(task_type="animate", prompt="a cat", result=ANIMATION, next_actions=None)
    assert labels(rows) == [["U1", "U2", "U3", "U4"], ["🔄"]]


def test_single_animation_and_non_images_get_no_buttons() -> None:
    assert action_rows(task_type="upscale", prompt="x", result=ANIMATION, next_actions=None) == []
    assert action_rows(task_type="describe", prompt="x", result=[], next_actions=None) == []
    assert action_rows(task_type="seed", prompt="x", result={"seed": "1"}, next_actions=None) == []


def test_remix_and_prompt_rules() -> None:
    rows = action_rows(task_type="upscale", prompt="x", result=IMAGE, next_actions=None)
    by_kind = {a.kind: a for a in flat_actions(rows)}
    assert by_kind["custom_zoom"].always_needs_prompt
    assert by_kind["custom_zoom"].task_type == "zoom"
    assert by_kind["pan"].takes_remix_prompt
    assert by_kind["vary_strong"].takes_remix_prompt
    assert not by_kind["zoom"].takes_remix_prompt
    assert not by_kind["upsample"].takes_remix_prompt


def test_describe_gets_a_button_per_prompt_and_describe_again() -> None:
    prompts = ["a", "b", "c", "d"]
    rows = action_rows(
        task_type="describe", prompt="https://x/y.png", result=prompts, next_actions=None
    )
    assert labels(rows) == [["1", "2", "3", "4"], ["🔄"]]
    assert [a.key for a in flat_actions(rows)] == [
        "imagine:1",
        "imagine:2",
        "imagine:3",
        "imagine:4",
        "describe",
    ]


def test_upscale_offers_vary_region() -> None:
    rows = action_rows(task_type="upscale", prompt="x", result=IMAGE, next_actions=None)
    assert rows[0][-1].label == "Vary (Region)"
    assert rows[0][-1].kind == "inpaint"
    assert not rows[0][-1].takes_remix_prompt


def test_the_version_table_leaves_out_buttons_older_versions_lack() -> None:
    def labels(prompt: str) -> list[list[str]]:
        rows = action_rows(
            task_type="upscale", prompt=prompt, result={"url": "u.png"}, next_actions=None
        )
        return [[a.label for a in row] for row in rows]

    old = labels("a barn --v 5.1")
    assert ["Vary (Region)"] in old
    assert not any("Zoom" in label or label == "⬅️" for row in old for label in row)
    assert ["⬅️", "➡️", "⬆️", "⬇️"] in labels("a barn --v 5.2")
    assert ["⬅️", "➡️", "⬆️", "⬇️"] in labels("a barn --niji 5")


def test_refusals_for_the_version_are_recognised() -> None:
    from bot.jobs.actions import refused_for_version

    assert refused_for_version("Pan is not available for this version")
    assert refused_for_version("This action is not supported for model version 5.1")
    assert not refused_for_version("Image already upscaled")
    assert not refused_for_version(None)


def test_every_button_key_fits_telegram_callback_data_with_a_huge_task_id() -> None:
    results: list[Any] = [IMAGE, ANIMATION, ["a", "b", "c", "d"]]
    actions = set()
    for task_type in ("imagine", "upscale", "upsample", "animate", "describe"):
        for prompt in ("cat", "cat --v 5", "cat --v 6", "cat --v 6.1", "cat --niji 6"):
            for result in results:
                rows = action_rows(
                    task_type=task_type, prompt=prompt, result=result, next_actions=None
                )
                actions.update(flat_actions(rows))
    assert len(actions) > 20
    for action in actions:
        packed = ActionCallback.of(2**63 - 1, action).pack()
        assert len(packed.encode()) <= 64, packed
        assert ActionCallback.unpack(packed).key == action.key


def test_every_in_chat_kind_has_its_press_and_no_follow_up_does() -> None:
    # A kind missing here would be sent to the API as a follow-up job it isn't.
    assert set(IN_CHAT_PRESSES) == set(get_args(InChat))
