"""The daily reset, as pure logic."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.owner.limits import next_reset, today


def test_day_and_reset_are_utc() -> None:
    late = datetime(2025, 3, 1, 23, 30, tzinfo=UTC)
    assert today(late) == "2025-03-01"
    assert next_reset(late) == datetime(2025, 3, 2, tzinfo=UTC)
