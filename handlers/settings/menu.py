"""The /settings and /language menus (no router): their words, buttons and parsing."""

from __future__ import annotations

import html
from collections.abc import Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)

from bot.prompts.rules import (
    ASPECT_RATIOS,
    CURRENT_MODELS,
    EXP_VALUES,
    OW_VALUES,
    PROFILE_CODE,
    SPEEDS,
    STYLE_CODE,
    STYLIZE_VALUES,
    SW_VALUES,
)
from bot.telegram.i18n import LOCALES, _
from storage.settings import UserSettings

LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}
MODEL_LABELS = {
    "v7": "V7",
    "v6.1": "V6.1",
    "v6": "V6",
    "v5.2": "V5.2",
    "niji6": "Niji 6",
    "niji7": "Niji 7",
}
# Settings typed as text (codes), with the parameter they become.
CODE_FLAGS = {"sref": "--sref", "personalize": "--p"}
CODE_PATTERNS = {"sref": STYLE_CODE, "personalize": PROFILE_CODE}
# Words that clear a code, in the languages the bot speaks.
CLEAR_WORDS = frozenset({"off", "-", "none", "выкл", "нет"})
TOGGLES = ("raw", "originals", "draft", "translate")
NUMBERS = ("stylize", "exp", "sw", "ow")
# Sentinel value meaning "back to Midjourney's default".
DEFAULT = "-"


class SettingsCallback(CallbackData, prefix="s1"):
    """A press in the settings menu: open a submenu (`open`), ask for a code (`ask`), or set
    `field` to `value`."""

    field: str
    value: str = ""


class SettingsInput(StatesGroup):
    """A code the settings menu asked for (`code_field` in the FSM data says which)."""

    code = State()


def allowed(speeds: Sequence[str]) -> list[str]:
    """The speeds a user may choose, in Midjourney's order."""
    return [speed for speed in SPEEDS if speed in speeds]


def _choices(field: str, speeds: Sequence[str] = SPEEDS) -> list[tuple[str, str]]:
    """The (value, label) pairs a submenu offers."""
    if field == "aspect":
        return [(ratio, ratio) for ratio in ASPECT_RATIOS]
    if field == "model":
        return [(key, MODEL_LABELS[key]) for key in CURRENT_MODELS]
    if field == "stylize":
        return [(str(value), str(value)) for value in STYLIZE_VALUES]
    if field == "exp":
        return [(str(value), str(value)) for value in EXP_VALUES]
    if field == "sw":
        return [(str(value), str(value)) for value in SW_VALUES]
    if field == "ow":
        return [(str(value), str(value)) for value in OW_VALUES]
    if field == "speed":
        return [(speed, speed.title()) for speed in allowed(speeds)]
    if field == "locale":
        return [(code, LANGUAGE_NAMES[code]) for code in LOCALES]
    raise ValueError(field)


def _shown(value: object) -> str:
    return _("default") if value is None else str(value)


def settings_text(
    settings: UserSettings, *, speeds: Sequence[str] = SPEEDS, translation: bool = False
) -> str:
    """The settings summary above the buttons."""
    on, off = _("on"), _("off")
    model = MODEL_LABELS.get(settings.model or "")
    # A speed the owner has since forbidden is not added any more: show it as the default.
    speed = settings.speed if settings.speed in speeds else None
    text = _(
        "⚙️ <b>Your defaults</b>\n"
        "They are added to every prompt that doesn't set them itself.\n"
        "\n"
        "Aspect ratio: <b>{aspect}</b>\n"
        "Model: <b>{model}</b>\n"
        "Stylize: <b>{stylize}</b>\n"
        "Raw style: <b>{raw}</b>\n"
        "Speed: <b>{speed}</b>\n"
        "Upscales also as original files: <b>{originals}</b>"
    ).format(
        aspect=_shown(settings.aspect),
        model=_shown(model),
        stylize=_shown(settings.stylize),
        raw=on if settings.raw else off,
        speed=_shown(speed),
        originals=on if settings.originals else off,
    )
    text += "\n" + _(
        "Draft mode (<code>--draft</code>, V7): <b>{draft}</b>\n"
        "Experimental (<code>--exp</code>, V7): <b>{exp}</b>\n"
        "Style code (<code>--sref</code>): <b>{sref}</b>\n"
        "Personalization (<code>--p</code>): <b>{personalize}</b>\n"
        "Style weight (<code>--sw</code>): <b>{sw}</b>\n"
        "Omni weight (<code>--ow</code>): <b>{ow}</b>"
    ).format(
        draft=on if settings.draft else off,
        exp=_shown(settings.exp),
        sref=html.escape(_shown(settings.sref)),
        personalize=html.escape(_shown(settings.personalize)),
        sw=_shown(settings.sw),
        ow=_shown(settings.ow),
    )
    if translation:
        text += "\n" + _("Translate prompts into English: <b>{state}</b>").format(
            state=on if settings.translate else off
        )
    return text


def settings_keyboard(
    settings: UserSettings, *, translation: bool = False
) -> InlineKeyboardMarkup:
    """The main settings menu."""

    def button(text: str, field: str, value: str = "") -> InlineKeyboardButton:
        return InlineKeyboardButton(
            text=text, callback_data=SettingsCallback(field=field, value=value).pack()
        )

    def toggle(label: str, field: str, state: bool) -> InlineKeyboardButton:
        return button(
            label.format(state=_("on") if state else _("off")), field, "0" if state else "1"
        )

    rows = [
        [button(_("Aspect ratio"), "open", "aspect"), button(_("Model"), "open", "model")],
        [button(_("Stylize"), "open", "stylize"), button(_("Speed"), "open", "speed")],
        [toggle(_("Raw style: {state}"), "raw", settings.raw)],
        [toggle(_("Original files: {state}"), "originals", settings.originals)],
        [
            toggle(_("Draft mode: {state}"), "draft", settings.draft),
            button("--exp", "open", "exp"),
        ],
        [
            button(_("Style code"), "ask", "sref"),
            button(_("Personalization"), "ask", "personalize"),
        ],
        [button(_("Style weight"), "open", "sw"), button(_("Omni weight"), "open", "ow")],
    ]
    if translation:
        rows.append([toggle(_("Translate prompts: {state}"), "translate", settings.translate)])
    rows.append([button("🌐 " + _("Language"), "open", "locale")])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def submenu_keyboard(
    field: str, *, with_default: bool = True, speeds: Sequence[str] = SPEEDS
) -> InlineKeyboardMarkup:
    """A submenu: the field's choices, Midjourney's default, and back."""
    # Callback values can't hold ':' (aspect ratios do), so a choice travels as its index.
    choices = [
        InlineKeyboardButton(
            text=label, callback_data=SettingsCallback(field=field, value=str(index)).pack()
        )
        for index, (_value, label) in enumerate(_choices(field, speeds))
    ]
    rows = [choices[i : i + 4] for i in range(0, len(choices), 4)]
    last = [
        InlineKeyboardButton(
            text="« " + _("Back"), callback_data=SettingsCallback(field="back").pack()
        )
    ]
    if with_default:
        last.insert(
            0,
            InlineKeyboardButton(
                text=_("Default"),
                callback_data=SettingsCallback(field=field, value=DEFAULT).pack(),
            ),
        )
    rows.append(last)
    return InlineKeyboardMarkup(inline_keyboard=rows)


def parse_choice(field: str, value: str, speeds: Sequence[str] = SPEEDS) -> object:
    """The stored value of a choice (None for the default); ValueError for a forged one."""
    if field in TOGGLES:
        return value == "1"
    if value == DEFAULT and field != "locale":
        return None
    choices = _choices(field, speeds)
    if not value.isdigit() or int(value) >= len(choices):
        raise ValueError(value)
    choice = choices[int(value)][0]
    return int(choice) if field in NUMBERS else choice


def parse_code(field: str, text: str) -> str | None:
    """A typed style or personalization code (`--sref 123` works too); ValueError if invalid.

    None clears the setting.
    """
    words = text.strip().split()
    if words and words[0].lower() in ("--sref", "--p", "--personalize", "—sref", "—p"):
        words = words[1:]
    if len(words) == 1 and words[0].lower() in CLEAR_WORDS:
        return None
    code = " ".join(words)
    if not code or not CODE_PATTERNS[field].fullmatch(code):
        raise ValueError(code)
    return code


def code_question(field: str) -> str:
    """The question for a code."""
    if field == "sref":
        return _(
            "🎨 Send a style code to add to your prompts as <code>--sref</code>, for example "
            "<code>123456</code> (or <code>random</code>). Send <code>off</code> to remove it."
        )
    return _(
        "🧬 Send your personalization code (a profile or moodboard) to add as "
        "<code>--p</code>, for example <code>abc123</code>. Send <code>off</code> to remove it."
    )


def code_invalid(field: str) -> str:
    """The answer to a code that can't be one."""
    if field == "sref":
        return _(
            "A style code is a number, like <code>123456</code>. Send one, or <code>off</code>."
        )
    return _(
        "A personalization code has letters and digits, like <code>abc123</code>. "
        "Send one, or <code>off</code>."
    )
