"""Prompt clean-up."""

from __future__ import annotations

import pytest

from bot.prompts import (
    MAX_PROMPT_LENGTH,
    PromptDefaults,
    PromptError,
    apply_defaults,
    normalize_prompt,
)


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


def test_unknown_flag_is_pointed_out_with_a_suggestion() -> None:
    with pytest.raises(PromptError) as caught:
        normalize_prompt("a cat --ar 1:1 --stylise 200")
    assert caught.value.code == "unknown_flag"
    assert caught.value.detail == "--stylise (--stylize?)"


def test_known_flags_and_urls_pass() -> None:
    prompt = "https://x.test/a--b.png a cat --ar 16:9 --no text --style raw --v 6.1 --iw 2"
    assert normalize_prompt(prompt) == prompt


def test_defaults_are_appended() -> None:
    defaults = PromptDefaults(aspect="16:9", model="v6.1", stylize=250, raw=True, speed="relax")
    assert apply_defaults("a cat", defaults) == (
        "a cat --ar 16:9 --v 6.1 --stylize 250 --style raw --relax"
    )


def test_the_prompts_own_parameters_win() -> None:
    defaults = PromptDefaults(aspect="16:9", model="niji6", stylize=250, raw=True, speed="fast")
    prompt = "a cat --aspect 1:1 --v 7 --s 50 --style raw --turbo"
    assert apply_defaults(prompt, defaults) == prompt


def test_no_defaults_change_nothing() -> None:
    assert apply_defaults("a cat", PromptDefaults()) == "a cat"
