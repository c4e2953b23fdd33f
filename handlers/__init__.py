"""Telegram update handlers, one router per module."""

from __future__ import annotations

from aiogram import Router

from handlers import (
    actions,
    admin,
    blend,
    describe,
    groups,
    history,
    image_prompts,
    imagine,
    payments,
    photo_menu,
    references,
    region,
    settings,
    start,
)
from handlers.middlewares import AlbumMiddleware, image_flows


def images_router() -> Router:
    """The photo flows under one router whose middlewares hand them whole albums."""
    router = Router(name="images")
    albums = AlbumMiddleware()
    router.message.outer_middleware(albums)
    # Polling stops by emitting shutdown (App.stop awaits it): albums still gathering go then.
    router.shutdown.register(albums.drain)
    router.message.outer_middleware(image_flows)
    router.callback_query.outer_middleware(image_flows)
    # Replies to photos come before the waiting states' text (as /imagine in a reference).
    router.include_routers(
        image_prompts.build_router(),
        references.build_router(),
        describe.build_router(),
        blend.build_router(),
        region.build_router(),
        photo_menu.build_router(),
    )
    return router


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
        images_router(),
        imagine.build_router(),
    ]
