"""Prompt hygiene before it goes to Midjourney, and the user's default parameters."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

# Midjourney takes prompts of a few thousand characters; beyond this a Telegram caption can't
# show enough of it to be useful anyway, so we refuse early with a clear message.
MAX_PROMPT_LENGTH = 4000

# Telegram clients (iOS, macOS) turn `--` into an em or en dash; Midjourney needs `--`.
_DASHED_FLAG = re.compile(r"(^|\s)[—–](?=[A-Za-z])")
_SPACES = re.compile(r"\s+")
_FLAG = re.compile(r"(?:^|\s)--([A-Za-z][\w-]*)")

# Midjourney's parameters (docs.midjourney.com "Parameter List"), with their aliases. Anything
# else is pointed out to the user: Midjourney would refuse the job with a less clear message.
KNOWN_FLAGS = frozenset(
    {
        "ar",
        "aspect",
        "c",
        "chaos",
        "cref",
        "cw",
        "draft",
        "exp",
        "fast",
        "hd",
        "iw",
        "no",
        "niji",
        "oref",
        "ow",
        "p",
        "personalize",
        "profile",
        "q",
        "quality",
        "r",
        "raw",
        "relax",
        "repeat",
        "s",
        "sameseed",
        "seed",
        "sref",
        "stop",
        "style",
        "stylize",
        "sv",
        "sw",
        "test",
        "testp",
        "tile",
        "turbo",
        "uplight",
        "upbeta",
        "v",
        "version",
        "video",
        "w",
        "weird",
        "zoom",
        "motion",
        "loop",
        "end",
        "bs",
        "batch",
        "creative",
    }
)
# Which flags set each of the user's defaults, so a prompt's own choice wins over the default.
_SETTING_FLAGS = {
    "aspect": {"ar", "aspect"},
    "model": {"v", "version", "niji"},
    "stylize": {"s", "stylize"},
    "raw": {"style", "raw"},
    "speed": {"fast", "relax", "turbo", "draft"},
}

ASPECT_RATIOS = ("1:1", "2:3", "3:2", "4:5", "9:16", "16:9")
# The models the API's upsample choices cover (v5_*, v6_*, v6r1_*, v7_*), plus niji.
MODELS = {
    "v7": "--v 7",
    "v6.1": "--v 6.1",
    "v6": "--v 6",
    "v5.2": "--v 5.2",
    "niji6": "--niji 6",
}
STYLIZE_VALUES = (0, 50, 100, 250, 500, 750, 1000)
SPEEDS = ("fast", "relax", "turbo")


class PromptError(ValueError):
    """A prompt that can't be sent: `code` says why, `detail` names the culprit."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PromptDefaults:
    """A user's default parameters; None means "Midjourney's own default"."""

    aspect: str | None = None
    model: str | None = None
    stylize: int | None = None
    raw: bool = False
    speed: str | None = None


def flags_in(prompt: str) -> list[str]:
    """The `--parameters` a prompt uses, lower-cased, in order."""
    return [match.lower() for match in _FLAG.findall(prompt)]


def normalize_prompt(text: str | None) -> str:
    """Restore `--` flags, collapse whitespace, check the length and the parameters."""
    prompt = _SPACES.sub(" ", _DASHED_FLAG.sub(r"\1--", text or "")).strip()
    if not prompt:
        raise PromptError("empty")
    if len(prompt) > MAX_PROMPT_LENGTH:
        raise PromptError("too_long")
    for flag in flags_in(prompt):
        if flag not in KNOWN_FLAGS:
            close = difflib.get_close_matches(flag, sorted(KNOWN_FLAGS), n=1)
            raise PromptError("unknown_flag", f"--{flag}" + (f" (--{close[0]}?)" if close else ""))
    return prompt


def apply_defaults(prompt: str, defaults: PromptDefaults) -> str:
    """Append the user's defaults for every parameter the prompt doesn't set itself."""
    used = set(flags_in(prompt))
    extra: list[str] = []

    def unset(setting: str) -> bool:
        return not (_SETTING_FLAGS[setting] & used)

    if defaults.aspect and unset("aspect"):
        extra.append(f"--ar {defaults.aspect}")
    if defaults.model in MODELS and unset("model"):
        extra.append(MODELS[defaults.model])
    if defaults.stylize is not None and unset("stylize"):
        extra.append(f"--stylize {defaults.stylize}")
    if defaults.raw and unset("raw"):
        extra.append("--style raw")
    if defaults.speed in SPEEDS and unset("speed"):
        extra.append(f"--{defaults.speed}")
    return " ".join([prompt, *extra])
