"""Prompt hygiene before it goes to Midjourney, and the user's default parameters."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from storage.settings import UserSettings

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
    "draft": {"draft"},
    "exp": {"exp"},
    "sref": {"sref"},
    "personalize": {"p", "personalize", "profile"},
    "sw": {"sw"},
    "ow": {"ow"},
}

ASPECT_RATIOS = ("1:1", "2:3", "3:2", "4:5", "9:16", "16:9")
# The models the API's upsample choices cover (v5_*, v6_*, v6r1_*, v7_*), plus niji.
MODELS = {
    "v7": "--v 7",
    "v6.1": "--v 6.1",
    "v6": "--v 6",
    "v5.2": "--v 5.2",
    "niji6": "--niji 6",
    "niji7": "--niji 7",
}
# What /settings offers: the versions Midjourney runs today (older stored choices still apply).
CURRENT_MODELS = ("v7", "v6.1", "niji7", "niji6")
STYLIZE_VALUES = (0, 50, 100, 250, 500, 750, 1000)
SPEEDS = ("fast", "relax", "turbo")
EXP_VALUES = (5, 10, 25, 50, 100)
# Reference weights: --sw 0-1000 (Midjourney's default 100), --ow 1-1000 (default 100).
SW_VALUES = (0, 50, 100, 200, 400, 800, 1000)
OW_VALUES = (25, 50, 100, 200, 400, 800, 1000)
REFERENCE_FLAGS = {"sref": "--sref", "oref": "--oref", "cref": "--cref"}
_SPEED_FLAG = re.compile(r"(?:^|\s)--(fast|relax|turbo)\b", re.IGNORECASE)
# A style code (`--sref 123456`) and a personalization code (`--p abc123`) as users type them.
STYLE_CODE = re.compile(r"^(?:\d{1,12}|random)$")
PROFILE_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def model_version(prompt: str | None) -> tuple[str, float]:
    """The model family (`v` or `niji`) and version a prompt asks for; v7 when it names none."""
    text = prompt or ""
    niji = re.search(r"--niji(?:\s+(\d+(?:\.\d+)?))?", text)
    if niji:
        return "niji", float(niji.group(1) or 6)
    version = re.search(r"--(?:v|version)\s*(\d+(?:\.\d+)?)", text)
    return "v", float(version.group(1)) if version else 7.0


class PromptError(ValueError):
    """A prompt that can't be sent: `code` says why, `detail` names the culprit."""

    def __init__(self, code: str, detail: str = "", *, version: str = "", takes: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail
        # For `wrong_version`: the prompt's version and the versions that take `detail`.
        self.version = version
        self.takes = takes


@dataclass(frozen=True, slots=True)
class PromptDefaults:
    """A user's default parameters; None means "Midjourney's own default"."""

    aspect: str | None = None
    model: str | None = None
    stylize: int | None = None
    raw: bool = False
    speed: str | None = None
    draft: bool = False
    exp: int | None = None
    sref: str | None = None
    personalize: str | None = None
    sw: int | None = None
    ow: int | None = None


def defaults_of(settings: UserSettings) -> PromptDefaults:
    """The prompt defaults in a user's settings."""
    return PromptDefaults(
        aspect=settings.aspect,
        model=settings.model,
        stylize=settings.stylize,
        raw=settings.raw,
        speed=settings.speed,
        draft=settings.draft,
        exp=settings.exp,
        sref=settings.sref,
        personalize=settings.personalize,
        sw=settings.sw,
        ow=settings.ow,
    )


@dataclass(frozen=True, slots=True)
class VersionRule:
    """Which versions take a parameter: `low` up to (not incl.) `high`, in words `label`."""

    low: float
    label: str
    high: float = 99.0
    niji: bool = True

    def takes(self, family: str, version: float) -> bool:
        """Whether a prompt of this family and version may use the parameter."""
        if family == "niji" and not self.niji:
            return False
        return self.low <= version < self.high


_V7 = VersionRule(7, "V7+", niji=False)
_V6 = VersionRule(6, "V6, V6.1, Niji 6", high=7)
_PERSONAL = VersionRule(6, "V6+, Niji 6+")
# Parameters that only some versions take (docs.midjourney.com): omni reference, draft mode and
# --exp are V7's; character reference is V6's (V7 replaced it with omni reference).
VERSION_RULES = {
    "oref": _V7,
    "ow": _V7,
    "draft": _V7,
    "exp": _V7,
    "cref": _V6,
    "cw": _V6,
    "p": _PERSONAL,
    "personalize": _PERSONAL,
    "profile": _PERSONAL,
}


def version_label(family: str, version: float) -> str:
    """A version as Midjourney writes it: V7, V6.1, Niji 6."""
    number = f"{version:g}"
    return f"Niji {number}" if family == "niji" else f"V{number}"


def version_problem(prompt: str) -> PromptError | None:
    """A parameter the prompt's model version doesn't take, as an error naming both; or None."""
    family, version = model_version(prompt)
    for flag in flags_in(prompt):
        rule = VERSION_RULES.get(flag)
        if rule is not None and not rule.takes(family, version):
            return PromptError(
                "wrong_version",
                f"--{flag}",
                version=version_label(family, version),
                takes=rule.label,
            )
    return None


def strip_speeds(prompt: str, allowed: Iterable[str]) -> tuple[str, list[str]]:
    """The prompt without speed flags the owner doesn't allow, and the flags removed."""
    permitted = {speed.lower() for speed in allowed}
    removed: list[str] = []

    def drop(match: re.Match[str]) -> str:
        speed = match.group(1).lower()
        if speed in permitted:
            return match.group(0)
        removed.append(f"--{speed}")
        return ""

    stripped = _SPACES.sub(" ", _SPEED_FLAG.sub(drop, prompt)).strip()
    return stripped, list(dict.fromkeys(removed))


def add_reference(prompt: str, kind: str, urls: Iterable[str]) -> str:
    """The prompt with image URLs as a `--sref`/`--oref`/`--cref` reference (appended)."""
    links = " ".join(urls)
    return f"{prompt} {REFERENCE_FLAGS[kind]} {links}" if links else prompt


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


def apply_defaults(
    prompt: str, defaults: PromptDefaults, *, speeds: Iterable[str] = SPEEDS
) -> str:
    """Append the user's defaults for every parameter the prompt doesn't set itself.

    Defaults the prompt's model version doesn't take (draft mode with V6.1) are left out, so a
    default never makes a prompt fail; a speed the owner no longer allows is left out too.
    """
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
    family, version = model_version(" ".join([prompt, *extra]))

    def fits(flag: str) -> bool:
        return VERSION_RULES[flag].takes(family, version)

    if defaults.draft and unset("draft") and fits("draft"):
        extra.append("--draft")
    if defaults.exp is not None and unset("exp") and fits("exp"):
        extra.append(f"--exp {defaults.exp}")
    if defaults.sref and unset("sref"):
        extra.append(f"--sref {defaults.sref}")
    if defaults.personalize and unset("personalize") and fits("p"):
        extra.append(f"--p {defaults.personalize}")
    has_sref = "sref" in used or any(part.startswith("--sref") for part in extra)
    if defaults.sw is not None and unset("sw") and has_sref:
        extra.append(f"--sw {defaults.sw}")
    if defaults.ow is not None and unset("ow") and "oref" in used and fits("ow"):
        extra.append(f"--ow {defaults.ow}")
    if defaults.speed in SPEEDS and defaults.speed in speeds and unset("speed"):
        extra.append(f"--{defaults.speed}")
    return " ".join([prompt, *extra])
