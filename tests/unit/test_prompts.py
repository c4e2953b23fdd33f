"""Prompt clean-up."""

from __future__ import annotations

import pytest

from bot.prompts.rules import (
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


def test_forbidden_speeds_are_stripped_and_named() -> None:
    from bot.prompts.rules import strip_speeds

    assert strip_speeds("a cat --turbo --ar 1:1 --FAST", ["relax"]) == (
        "a cat --ar 1:1",
        ["--turbo", "--fast"],
    )
    assert strip_speeds("a cat --relax", ["relax"]) == ("a cat --relax", [])
    assert strip_speeds("a --fastidious cat", ["relax"]) == ("a --fastidious cat", [])


@pytest.mark.parametrize(
    ("prompt", "flag", "version"),
    [
        ("a cat --oref https://x.test/a.png --v 6.1", "--oref", "V6.1"),
        ("a cat --oref https://x.test/a.png --niji 6", "--oref", "Niji 6"),
        ("a cat --cref https://x.test/a.png", "--cref", "V7"),
        ("a cat --draft --v 6", "--draft", "V6"),
        ("a cat --exp 10 --v 6.1", "--exp", "V6.1"),
        ("a cat --p abc --v 5.2", "--p", "V5.2"),
    ],
)
def test_parameters_that_dont_fit_the_version_are_named(
    prompt: str, flag: str, version: str
) -> None:
    from bot.prompts.rules import version_problem

    problem = version_problem(prompt)
    assert problem is not None
    assert (problem.code, problem.detail, problem.version) == ("wrong_version", flag, version)


@pytest.mark.parametrize(
    "prompt",
    [
        "a cat --oref https://x.test/a.png --ow 200",
        "a cat --cref https://x.test/a.png --v 6.1 --cw 50",
        "a cat --cref https://x.test/a.png --niji 6",
        "a cat --draft --exp 25 --p abc --sref 123 --sw 300",
        "a cat --v 8 --oref https://x.test/a.png",
    ],
)
def test_parameters_that_fit_pass(prompt: str) -> None:
    from bot.prompts.rules import version_problem

    assert version_problem(prompt) is None


def test_todays_defaults_are_appended_only_where_they_fit() -> None:
    defaults = PromptDefaults(draft=True, exp=25, sref="123456", personalize="abc", sw=300, ow=50)
    assert apply_defaults("a cat", defaults) == (
        "a cat --draft --exp 25 --sref 123456 --p abc --sw 300"
    )
    # Draft mode and --exp are V7's: a V6.1 default model leaves them out rather than fail.
    v61 = PromptDefaults(model="v6.1", draft=True, exp=25, personalize="abc")
    assert apply_defaults("a cat", v61) == "a cat --v 6.1 --p abc"
    # The prompt's own reference wins; the weights follow the references present.
    assert apply_defaults("a cat --sref 9 --oref https://x.test/o.png", defaults) == (
        "a cat --sref 9 --oref https://x.test/o.png --draft --exp 25 --p abc --sw 300 --ow 50"
    )
    assert apply_defaults("a cat", PromptDefaults(sw=300, ow=50)) == "a cat"
    # A speed the owner no longer allows is not added.
    assert apply_defaults("a cat", PromptDefaults(speed="turbo"), speeds=["relax"]) == "a cat"


def test_a_photo_reference_runs_on_a_version_that_takes_it() -> None:
    from handlers.images.prompting import Draft

    url = "https://cdn.test/u.png"
    v61 = PromptDefaults(model="v6.1", draft=True)
    # Omni reference is V7's: a V6.1 default gives way to --v 7 (and draft mode fits again).
    assert Draft("a knight", v61, ("fast",), "oref").compose(refs=[url]) == (
        f"a knight --oref {url} --v 7 --draft"
    )
    # Character reference is V6's: with the V7 default (none chosen) it runs on V6.1.
    assert Draft("a pilot", PromptDefaults(), ("fast",), "cref").compose(refs=[url]) == (
        f"a pilot --cref {url} --v 6.1"
    )
    # A version the user wrote is theirs: checked, not replaced.
    mine = Draft("a pilot --v 7", PromptDefaults(), ("fast",), "cref")
    assert mine.compose(refs=[url]) == f"a pilot --v 7 --cref {url}"
    problem = mine.check(refs=1)
    assert problem is not None and problem.detail == "--cref"
    assert Draft("a cat", v61, ("fast",), "sref").compose(refs=[url, url]) == (
        f"a cat --sref {url} {url} --v 6.1"
    )
