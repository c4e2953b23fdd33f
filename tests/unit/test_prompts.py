"""Prompt clean-up."""

from __future__ import annotations

import pytest

from bot.prompts import MAX_PROMPT_LENGTH, PromptError, normalize_prompt


def test_dashes_from_telegram_clients_become_flags_again() -> None:
    assert normalize_prompt("a cat —ar 16:9 –v 6.1") == "a cat --ar 16:9 --v 6.1"


def test_dashes_in_prose_stay() -> None:
    assert normalize_prompt("red — blue") == "red — blue"


def test_whitespace_is_collapsed() -> None:
    assert normalize_prompt("  a\n\ncat \t sitting ") == "a cat sitting"


@pytest.mark.parametrize("text", [None, "", "   \n "])
def test_empty_prompt_is_refused(text: str | None) -> None:
    with pytest.raises(PromptError, match="empty"):
        normalize_prompt(text)


def test_long_prompt_is_refused() -> None:
    with pytest.raises(PromptError, match="too_long"):
        normalize_prompt("a" * (MAX_PROMPT_LENGTH + 1))
    assert normalize_prompt("a" * MAX_PROMPT_LENGTH)
