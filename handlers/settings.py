"""/settings (default parameters, original files) and /language, edited in place with buttons."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n

from bot.i18n import LOCALES, _
from bot.prompts import ASPECT_RATIOS, MODELS, SPEEDS, STYLIZE_VALUES
from storage.settings import UserSettings, UserSettingsRepo

LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}
MODEL_LABELS = {"v7": "V7", "v6.1": "V6.1", "v6": "V6", "v5.2": "V5.2", "niji6": "Niji 6"}
# Sentinel value meaning "back to Midjourney's default".
DEFAULT = "-"


class SettingsCallback(CallbackData, prefix="s1"):
    """A press in the settings menu: open a submenu (`open`), or set `field` to `value`."""

    field: str
    value: str = ""


def _choices(field: str) -> list[tuple[str, str]]:
    """The (value, label) pairs a submenu offers."""
    if field == "aspect":
        return [(ratio, ratio) for ratio in ASPECT_RATIOS]
    if field == "model":
        return [(key, MODEL_LABELS[key]) for key in MODELS]
    if field == "stylize":
        return [(str(value), str(value)) for value in STYLIZE_VALUES]
    if field == "speed":
        return [(speed, speed.title()) for speed in SPEEDS]
    if field == "locale":
        return [(code, LANGUAGE_NAMES[code]) for code in LOCALES]
    raise ValueError(field)


def _shown(value: object) -> str:
    return _("default") if value is None else str(value)


def settings_text(settings: UserSettings) -> str:
    """The settings summary above the buttons."""
    on, off = _("on"), _("off")
    model = MODEL_LABELS.get(settings.model or "")
    return _(
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
        speed=_shown(settings.speed),
        originals=on if settings.originals else off,
    )


def settings_keyboard(settings: UserSettings) -> InlineKeyboardMarkup:
    """The main settings menu."""

    def button(text: str, field: str, value: str = "") -> InlineKeyboardButton:
        return InlineKeyboardButton(
            text=text, callback_data=SettingsCallback(field=field, value=value).pack()
        )

    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button(_("Aspect ratio"), "open", "aspect"), button(_("Model"), "open", "model")],
            [button(_("Stylize"), "open", "stylize"), button(_("Speed"), "open", "speed")],
            [
                button(
                    _("Raw style: {state}").format(state=_("on") if settings.raw else _("off")),
                    "raw",
                    "0" if settings.raw else "1",
                ),
            ],
            [
                button(
                    _("Original files: {state}").format(
                        state=_("on") if settings.originals else _("off")
                    ),
                    "originals",
                    "0" if settings.originals else "1",
                ),
            ],
            [button("🌐 " + _("Language"), "open", "locale")],
        ]
    )


def submenu_keyboard(field: str, *, with_default: bool = True) -> InlineKeyboardMarkup:
    """A submenu: the field's choices, Midjourney's default, and back."""
    # Callback values can't hold ':' (aspect ratios do), so a choice travels as its index.
    choices = [
        InlineKeyboardButton(
            text=label, callback_data=SettingsCallback(field=field, value=str(index)).pack()
        )
        for index, (_value, label) in enumerate(_choices(field))
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


def _parse(field: str, value: str) -> object:
    """The stored value of a choice (None for the default); ValueError for a forged one."""
    if field in ("raw", "originals"):
        return value == "1"
    if value == DEFAULT and field != "locale":
        return None
    choices = _choices(field)
    if not value.isdigit() or int(value) >= len(choices):
        raise ValueError(value)
    choice = choices[int(value)][0]
    return int(choice) if field == "stylize" else choice


def build_router() -> Router:
    """The router for /settings and /language."""
    router = Router(name="settings")

    @router.message(Command("settings"))
    async def show_settings(message: Message, user_settings: UserSettingsRepo) -> None:
        if message.from_user is None:
            return
        settings = await user_settings.get(message.from_user.id)
        await message.answer(settings_text(settings), reply_markup=settings_keyboard(settings))

    @router.message(Command("language"))
    async def show_languages(message: Message) -> None:
        await message.answer(
            _("Choose the bot's language:"),
            reply_markup=submenu_keyboard("locale", with_default=False),
        )

    @router.callback_query(SettingsCallback.filter(), F.message.as_("message"))
    async def on_settings(
        query: CallbackQuery,
        callback_data: SettingsCallback,
        message: Message,
        user_settings: UserSettingsRepo,
        i18n: I18n,
    ) -> None:
        user_id = query.from_user.id
        field, value = callback_data.field, callback_data.value
        if field == "open":
            await query.answer()
            await message.edit_reply_markup(
                reply_markup=submenu_keyboard(value, with_default=value != "locale")
            )
            return
        settings = await user_settings.get(user_id)
        if field != "back":
            try:
                parsed = _parse(field, value)
            except ValueError:
                await query.answer(_("That choice is not available."), show_alert=True)
                return
            settings = await user_settings.update(user_id, **{field: parsed})
        if field == "locale" and settings.locale:
            # Answer in the language just chosen, not the one this update arrived in.
            i18n.current_locale = settings.locale
        await query.answer(_("Saved") if field != "back" else None)
        await message.edit_text(settings_text(settings), reply_markup=settings_keyboard(settings))

    return router
