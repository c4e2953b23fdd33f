"""Telegram update handlers, one router per module."""

from __future__ import annotations

from aiogram import Router

from handlers import actions, admin, groups, history, images, imagine, payments, settings, start


def get_routers() -> list[Router]:
    """Fresh routers in the order they must see updates (prompt replies before plain text)."""
    return [
        payments.build_router(),
        start.build_router(),
        admin.build_router(),
        groups.build_router(),
        settings.build_router(),
        history.build_router(),
        actions.build_router(),
        images.build_router(),
        imagine.build_router(),
    ]
