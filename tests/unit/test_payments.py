"""Prices of jobs and packs, and reading the payment settings."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bot.config import Settings
from bot.owner.payments import Pack, Payments, no_credits_cost, no_credits_reason, parse_payload
from storage.credits import CreditsRepo


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, bot_token="1:x", **values)


def payments(costs: dict[str, int]) -> Payments:
    repo: CreditsRepo = None  # type: ignore[assignment]  # prices need no database
    return Payments(credits=repo, enabled=True, packs=[(10, 50), (50, 200)], costs=costs)


def test_settings_read_packs_and_costs() -> None:
    parsed = settings(payments="stars", stars_packs="10:50, 50:200", job_costs="animate:3")
    assert parsed.payments == "stars"
    assert parsed.stars_packs == [(10, 50), (50, 200)]
    assert parsed.job_costs == {"imagine": 1, "upscale": 1, "animate": 3}
    assert settings(payments="").payments is None
    assert settings().job_costs == {"imagine": 1, "upscale": 1, "animate": 2}


@pytest.mark.parametrize(
    "values",
    [
        {"payments": "stars"},
        {"payments": "paypal", "stars_packs": "10:50"},
        {"stars_packs": "10"},
        {"stars_packs": "ten:50"},
        {"stars_packs": "10:0"},
        {"job_costs": "imagine:-1"},
        {"job_costs": "imagine"},
    ],
)
def test_bad_payment_settings_are_refused(values: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        settings(**values)


def test_job_costs_follow_their_family_unless_listed() -> None:
    prices = payments({"imagine": 2, "upscale": 1, "animate": 3, "reroll": 0})
    assert [prices.cost(t) for t in ("imagine", "variation", "zoom", "inpaint")] == [2, 2, 2, 2]
    assert prices.cost("reroll") == 0
    assert prices.cost("upsample") == 1 and prices.cost("animate") == 3
    assert prices.cost("describe") == 0 and prices.cost("seed") == 0


def test_checkout_accepts_only_an_offered_pack_at_its_price() -> None:
    prices = payments({})
    assert prices.checkout(currency="XTR", total_amount=50, payload="pack:10:50") == Pack(10, 50)
    assert prices.checkout(currency="XTR", total_amount=49, payload="pack:10:50") is None
    assert prices.checkout(currency="XTR", total_amount=50, payload="pack:11:50") is None
    assert prices.checkout(currency="EUR", total_amount=50, payload="pack:10:50") is None
    assert parse_payload("pack:x:50") is None and parse_payload("pack:1:2:3") is None
    assert no_credits_cost(no_credits_reason(2)) == 2
    assert no_credits_cost("bot:stuck") is None and no_credits_cost(None) is None
