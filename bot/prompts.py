"""Prompt clean-up before it goes to Midjourney."""

from __future__ import annotations

import re

# Midjourney takes prompts of a few thousand characters; beyond this a Telegram caption can't
# show enough of it to be useful anyway, so we refuse early with a clear message.
MAX_PROMPT_LENGTH = 4000

# Telegram clients (iOS, macOS) turn `--` into an em or en dash; Midjourney needs `--`.
_DASHED_FLAG = re.compile(r"(^|\s)[—–](?=[A-Za-z])")
_SPACES = re.compile(r"\s+")


class PromptError(ValueError):
    """A prompt that can't be sent, with a message for the user."""


def normalize_prompt(text: str | None) -> str:
    """Restore `--` flags, collapse whitespace and check the length."""
    prompt = _SPACES.sub(" ", _DASHED_FLAG.sub(r"\1--", text or "")).strip()
    if not prompt:
        raise PromptError("empty")
    if len(prompt) > MAX_PROMPT_LENGTH:
        raise PromptError("too_long")
    return prompt
