"""A user's prompt on its way to Midjourney: checked, trimmed, translated, with their defaults.

Shared by the routers that take prompts (/imagine, image prompts, references, remix replies),
so every prompt passes the same checks before anything is spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiogram.types import Message

from bot.config import Settings
from bot.prompts.rules import (
    MAX_PROMPT_LENGTH,
    MODELS,
    VERSION_RULES,
    PromptDefaults,
    PromptError,
    add_reference,
    apply_defaults,
    defaults_of,
    flags_in,
    model_version,
    normalize_prompt,
    strip_speeds,
    version_problem,
)
from bot.prompts.translate import Translator
from bot.telegram.i18n import _
from storage.settings import UserSettingsRepo

# Stands in for an image URL while a prompt is checked before its images are uploaded.
_PLACEHOLDER_URL = "https://cdn.discordapp.com/attachments/0/0/image.png"
_VERSION_FLAGS = frozenset({"v", "version", "niji"})
# The version a photo reference runs on when neither the prompt nor the defaults fit it.
_REFERENCE_VERSION = {"oref": "--v 7", "cref": "--v 6.1"}


def prompt_problem(error: PromptError) -> str:
    """What is wrong with a prompt, in the user's language."""
    if error.code == "unknown_flag":
        return _(
            "Midjourney doesn't know the parameter {flag}. Please check the spelling "
            "(the list is in /help)."
        ).format(flag=error.detail)
    if error.code == "too_long":
        return _("That prompt is too long: Midjourney takes at most {limit} characters.").format(
            limit=MAX_PROMPT_LENGTH
        )
    if error.code == "wrong_version":
        return _(
            "<code>{flag}</code> doesn't work with {version}: it works with {takes}. "
            "Nothing was sent. Change the version (<code>--v</code>, /settings) or remove "
            "<code>{flag}</code>."
        ).format(flag=error.detail, version=error.version, takes=error.takes)
    return _(
        "Please add a prompt after the command, for example:\n"
        "<code>/imagine a red fox in the snow, watercolor --ar 3:2</code>"
    )


def speeds_removed(flags: Sequence[str]) -> str:
    """The note for speed flags the owner doesn't allow, taken out of a prompt."""
    return _(
        "⚠️ {flags}: this speed isn't allowed here, so I took it out of the prompt. "
        "The job runs at the speed the bot's owner chose."
    ).format(flags=", ".join(flags))


def translation_failed() -> str:
    """The note for a translator that failed or was too slow."""
    return _(
        "⚠️ The translator didn't answer in time, so the prompt goes to Midjourney as you wrote it."
    )


@dataclass(frozen=True, slots=True)
class Draft:
    """A checked prompt waiting for its image URLs (image prompts, references)."""

    words: str
    defaults: PromptDefaults
    speeds: tuple[str, ...]
    reference: str | None = None

    def compose(self, *, images: Sequence[str] = (), refs: Sequence[str] = ()) -> str:
        """The prompt Midjourney gets: image prompts, the words, the reference, the defaults."""
        words = self.words
        if self.reference is not None:
            words = add_reference(words, self.reference, refs)
            words = self._fit_version(words)
        return apply_defaults(" ".join([*images, words]), self.defaults, speeds=self.speeds)

    def _fit_version(self, words: str) -> str:
        # The user chose "Omni reference (V7)" or "Character reference (V6)": when neither the
        # prompt nor their default model takes it, run it on the version that does.
        if self.reference not in _REFERENCE_VERSION or set(flags_in(words)) & _VERSION_FLAGS:
            return words
        default = MODELS.get(self.defaults.model or "", "")
        if VERSION_RULES[self.reference].takes(*model_version(default)):
            return words
        return f"{words} {_REFERENCE_VERSION[self.reference]}"

    def check(self, *, images: int = 0, refs: int = 0) -> PromptError | None:
        """What would make Midjourney refuse the composed prompt, before anything is spent."""
        prompt = self.compose(images=[_PLACEHOLDER_URL] * images, refs=[_PLACEHOLDER_URL] * refs)
        if len(prompt) > MAX_PROMPT_LENGTH:
            return PromptError("too_long")
        return version_problem(prompt)


async def draft_prompt(
    message: Message,
    text: str | None,
    *,
    user_settings: UserSettingsRepo,
    config: Settings,
    translator: Translator | None,
    reference: str | None = None,
    images: int = 0,
    refs: int = 0,
) -> Draft | None:
    """Check and translate a user's prompt; None after telling them what is wrong with it."""
    try:
        words, removed = strip_speeds(normalize_prompt(text), config.allowed_speeds)
        if removed:
            await message.reply(speeds_removed(removed))
        words = normalize_prompt(words)  # a prompt of nothing but a speed is empty now
    except PromptError as error:
        await message.reply(prompt_problem(error))
        return None
    user = await user_settings.get(message.from_user.id if message.from_user else 0)
    draft = Draft(words, defaults_of(user), tuple(config.allowed_speeds), reference)
    problem = draft.check(images=images, refs=refs)
    if problem is not None:
        await message.reply(prompt_problem(problem))
        return None
    if translator is not None and user.translate:
        translation = await translator.translate(words)
        if translation.failed:
            await message.reply(translation_failed())
        draft = Draft(translation.text, draft.defaults, draft.speeds, reference)
        # The English words are checked again: a translator may have lengthened them.
        problem = draft.check(images=images, refs=refs)
        if problem is not None:
            await message.reply(prompt_problem(problem))
            return None
    return draft


async def plain_prompt(
    message: Message,
    text: str | None,
    *,
    config: Settings,
    translator: Translator | None,
    user_settings: UserSettingsRepo,
) -> str | None:
    """A prompt typed for a follow-up (remix, Vary (Region)): checked, trimmed, translated."""
    draft = await draft_prompt(
        message, text, user_settings=user_settings, config=config, translator=translator
    )
    return None if draft is None else draft.words
