"""Telegram update handlers, one router per module."""

from __future__ import annotations

from aiogram import Router

from handlers import actions, imagine, start


def get_routers() -> list[Router]:
    """Fresh routers in the order they must see updates (prompt replies before plain text)."""
    return [start.build_router(), actions.build_router(), imagine.build_router()]
