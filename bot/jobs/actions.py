"""Follow-up actions of a finished task: which buttons it gets, in which order, and what each does.

Buttons come from the task's `next_actions` when the API sent them, otherwise from the task's
type and the prompt's model version. A button is named by its task and its action's `key`
(bot/keyboards.py), so a change to these tables never changes what a button in a chat does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, assert_never, get_args

from bot.prompts.rules import model_version
from bot.userapi.models import GRID_TYPES, UPSCALED_TYPES, TaskType

log = logging.getLogger(__name__)

# Buttons the API runs on the finished task they are under (an endpoint of the same name;
# custom_zoom is /zoom with a prompt).
FollowUp = Literal[
    "upscale",
    "variation",
    "reroll",
    "vary_subtle",
    "vary_strong",
    "zoom",
    "custom_zoom",
    "pan",
    "upsample",
    "animate",
    "seed",
]
# Buttons the bot runs itself: Vary (Region) asks for a mask first; describe's buttons start
# an imagine of a described prompt, or describe the image again.
InChat = Literal["inpaint", "imagine", "describe"]
ActionKind = Literal[FollowUp, InChat]
# The kinds the API's `next_actions` name (Custom Zoom is the bot's, from `zoom`).
OFFERED_KINDS: frozenset[str] = (frozenset(get_args(FollowUp)) - {"custom_zoom"}) | {"inpaint"}

ANIMATION_SUFFIXES = (".webp", ".gif", ".mp4", ".webm")

# Actions whose endpoint takes a new prompt when the account is in remix mode.
REMIX_KINDS: frozenset[ActionKind] = frozenset(
    {"variation", "reroll", "vary_subtle", "vary_strong", "pan"}
)

PAN_LABELS = {"left": "⬅️", "right": "➡️", "up": "⬆️", "down": "⬇️"}
ZOOM_LABELS = {50: "Zoom Out 2x", 75: "Zoom Out 1.5x"}
ANIMATE_LABELS = {"high": "Animate (High motion)", "low": "Animate (Low motion)"}
UPSAMPLE_LABELS = {"v5_2x": "Upscale (2x)", "v5_4x": "Upscale (4x)"}

# The version table, for tasks the API sent no next_actions for: the oldest version (V, Niji)
# whose upscales Midjourney gives each button. Vary (Subtle/Strong), Zoom Out and Pan came
# with V5.2, Vary (Region) with V5 (docs.midjourney.com); the rest is there from V5 on.
MIN_VERSIONS: dict[str, tuple[float, float]] = {
    "vary_subtle": (5.2, 5),
    "vary_strong": (5.2, 5),
    "zoom": (5.2, 5),
    "custom_zoom": (5.2, 5),
    "pan": (5.2, 5),
    "inpaint": (5, 5),
}
# What the API answers when a button doesn't exist for a job's version.
_NOT_FOR_VERSION = re.compile(
    r"not (?:available|supported|allowed)\b.*\bversion|version.*\bnot supported", re.IGNORECASE
)


def refused_for_version(message: str | None) -> bool:
    """Whether an API refusal says the action doesn't exist for the job's model version."""
    return bool(message) and _NOT_FOR_VERSION.search(message or "") is not None


def fits_version(kind: str, prompt: str | None) -> bool:
    """Whether the version table gives this button to a job of the prompt's version."""
    low = MIN_VERSIONS.get(kind)
    if low is None:
        return True
    family, version = model_version(prompt)
    return version >= (low[1] if family == "niji" else low[0])


@dataclass(frozen=True, slots=True)
class Action:
    """One button: what it does (kind and choice) and what it reads."""

    kind: ActionKind
    choice: int | str | None = None
    label: str = ""

    @property
    def key(self) -> str:
        """A short stable name, stored with the child task (e.g. `upscale:2`, `seed`)."""
        return self.kind if self.choice is None else f"{self.kind}:{self.choice}"

    @property
    def task_type(self) -> TaskType:
        """The `type` of the task this action creates."""
        return TaskType.ZOOM if self.kind == "custom_zoom" else TaskType(self.kind)

    @property
    def always_needs_prompt(self) -> bool:
        """Whether the user must type a prompt whatever the account's mode."""
        return self.kind == "custom_zoom"

    @property
    def takes_remix_prompt(self) -> bool:
        """Whether remix mode makes this action ask for a prompt first."""
        return self.kind in REMIX_KINDS


def follow_up(kind: ActionKind) -> FollowUp | None:
    """The endpoint a button calls on its task, or None for the ones the bot runs itself."""
    match kind:
        case (
            "upscale"
            | "variation"
            | "reroll"
            | "vary_subtle"
            | "vary_strong"
            | "zoom"
            | "custom_zoom"
            | "pan"
            | "upsample"
            | "animate"
            | "seed"
        ):
            return kind
        case "inpaint" | "imagine" | "describe":
            return None
        case _:
            assert_never(kind)


def upsample_choices(prompt: str | None) -> list[str]:
    """The `upsample` choices that fit the prompt's model version (the API needs the right one)."""
    family, version = model_version(prompt)
    if version < 6:
        return ["v5_2x", "v5_4x"]
    if family == "niji" and version < 7:
        return ["v6_2x_subtle", "v6_2x_creative"]
    if version < 6.1:
        return ["v6_2x_subtle", "v6_2x_creative"]
    if version < 7:
        return ["v6r1_2x_subtle", "v6r1_2x_creative"]
    return ["v7_2x_subtle", "v7_2x_creative"]


def upsample_label(choice: str) -> str:
    """Midjourney's label for an upsample choice."""
    if choice in UPSAMPLE_LABELS:
        return UPSAMPLE_LABELS[choice]
    return "Upscale (Creative)" if choice.endswith("creative") else "Upscale (Subtle)"


def _choices(raw: Iterable[Any] | None, default: Sequence[Any]) -> list[Any]:
    return list(raw) if raw else list(default)


def _from_next_actions(next_actions: list[dict[str, Any]]) -> list[list[Action]]:
    """Buttons for what the API says can follow, rows in Midjourney's order."""
    offered = {str(item.get("type")): item.get("choices") for item in next_actions}
    rows: list[list[Action]] = []
    if "upscale" in offered:
        rows.append(
            [
                Action("upscale", int(c), f"U{c}")
                for c in _choices(offered["upscale"], (1, 2, 3, 4))
            ]
        )
    if "variation" in offered:
        rows.append(
            [
                Action("variation", int(c), f"V{c}")
                for c in _choices(offered["variation"], (1, 2, 3, 4))
            ]
        )
    vary = [
        action
        for action in (
            Action("vary_subtle", None, "Vary (Subtle)"),
            Action("vary_strong", None, "Vary (Strong)"),
            Action("inpaint", None, "Vary (Region)"),
        )
        if action.kind in offered
    ]
    if vary:
        rows.append(vary)
    if "zoom" in offered:
        zooms = [
            Action("zoom", int(c), ZOOM_LABELS[int(c)])
            for c in _choices(offered["zoom"], (50, 75))
            if int(c) in ZOOM_LABELS
        ]
        rows.append([*zooms, Action("custom_zoom", None, "Custom Zoom")])
    if "pan" in offered:
        rows.append(
            [
                Action("pan", str(c), PAN_LABELS[str(c)])
                for c in _choices(offered["pan"], tuple(PAN_LABELS))
                if str(c) in PAN_LABELS
            ]
        )
    if offered.get("upsample"):
        rows.append(
            [Action("upsample", str(c), upsample_label(str(c))) for c in offered["upsample"] or ()]
        )
    if "animate" in offered:
        rows.append(
            [
                Action("animate", str(c), ANIMATE_LABELS[str(c)])
                for c in _choices(offered["animate"], ("high", "low"))
                if str(c) in ANIMATE_LABELS
            ]
        )
    last = [Action("reroll", None, "🔄")] if "reroll" in offered else []
    rows.append(last)
    unknown = offered.keys() - OFFERED_KINDS
    if unknown:
        log.info("Ignoring next_actions the bot has no button for: %s", sorted(unknown))
    return rows


def _grid_rows() -> list[list[Action]]:
    return [
        [Action("upscale", n, f"U{n}") for n in (1, 2, 3, 4)],
        [Action("variation", n, f"V{n}") for n in (1, 2, 3, 4)],
        [Action("reroll", None, "🔄")],
    ]


def _upscaled_rows(task_type: str, prompt: str | None) -> list[list[Action]]:
    rows = [
        [
            Action("vary_subtle", None, "Vary (Subtle)"),
            Action("vary_strong", None, "Vary (Strong)"),
            Action("inpaint", None, "Vary (Region)"),
        ],
        [
            Action("zoom", 50, "Zoom Out 2x"),
            Action("zoom", 75, "Zoom Out 1.5x"),
            Action("custom_zoom", None, "Custom Zoom"),
        ],
        [Action("pan", side, label) for side, label in PAN_LABELS.items()],
    ]
    # An upsampled image can't be upsampled again; Midjourney shows no Upscale row there.
    if task_type == TaskType.UPSCALE:
        rows.append([Action("upsample", c, upsample_label(c)) for c in upsample_choices(prompt)])
    rows.append([Action("animate", c, label) for c, label in ANIMATE_LABELS.items()])
    rows.append([])
    return rows


def is_animation(result: Any) -> bool:
    """Whether a stored result is an animation rather than a still image."""
    if not isinstance(result, dict):
        return False
    content_type = str(result.get("content_type") or "")
    filename = str(result.get("filename") or result.get("url") or "").lower()
    return (
        content_type.startswith("video/")
        or content_type in ("image/webp", "image/gif")
        or (filename.endswith(ANIMATION_SUFFIXES))
    )


def action_rows(
    *,
    task_type: str,
    prompt: str | None,
    result: Any,
    next_actions: list[dict[str, Any]] | None,
) -> list[list[Action]]:
    """The keyboard of a finished task as rows of actions (empty when it has no follow-ups)."""
    if task_type == TaskType.DESCRIBE and isinstance(result, list) and result:
        # Midjourney's describe: 1-4 imagine that prompt, 🔄 describes the image again.
        return [
            [Action("imagine", n, str(n)) for n in range(1, len(result) + 1)],
            [Action("describe", None, "🔄")],
        ]
    if not isinstance(result, dict) or "url" not in result:
        return []  # describe, seed, info...: not an image, so no image buttons.
    if next_actions is not None:
        # The API's list is authoritative when present, even when it offers nothing.
        rows = _from_next_actions(next_actions)
    elif task_type == TaskType.ANIMATE:
        rows = [
            [Action("upscale", n, f"U{n}") for n in (1, 2, 3, 4)],
            [Action("reroll", None, "🔄")],
        ]
    elif task_type in UPSCALED_TYPES and is_animation(result):
        rows = []  # one animation picked out of an animate grid: nothing more to do with it
    elif task_type in UPSCALED_TYPES:
        rows = [
            [action for action in row if fits_version(action.kind, prompt)]
            for row in _upscaled_rows(task_type, prompt)
        ]
    elif task_type in GRID_TYPES:
        rows = _grid_rows()
    else:
        rows = []
    offers_seed = next_actions is not None and any(a.get("type") == "seed" for a in next_actions)
    if rows and (task_type in GRID_TYPES or offers_seed):
        # A seed belongs to a grid (its answer holds the grid's four images); asked once, kept.
        rows[-1].append(Action("seed", None, "🌱 Seed"))
    return [row for row in rows if row]


def flat_actions(rows: list[list[Action]]) -> list[Action]:
    """Actions in button order; a button's index here is what its callback data carries."""
    return [action for row in rows for action in row]
