"""Update handlers by subject (one router per module); subpackages share only handlers.common."""

from __future__ import annotations

from aiogram import Router

from handlers.admin import console
from handlers.chat import gallery, groups, history, start
from handlers.images import (
    actions,
    blend,
    describe,
    image_prompts,
    imagine,
    photo_menu,
    references,
    region,
)
from handlers.inline import share
from handlers.middlewares.albums import AlbumMiddleware, image_flows
from handlers.payments import stars
from handlers.settings import routes as settings


def images_router(albums: AlbumMiddleware | None = None) -> Router:
    """The photo flows under one router whose middlewares hand them whole albums."""
    router = Router(name="images")
    albums = albums or AlbumMiddleware()
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


def get_routers(albums: AlbumMiddleware | None = None) -> list[Router]:
    """Fresh routers in the order they must see updates (prompt replies before plain text).

    `albums` gathers albums where the replicas share them; by default, in this process.
    """
    return [
        stars.build_router(),
        start.build_router(),
        console.build_router(),
        groups.build_router(),
        settings.build_router(),
        history.build_router(),
        gallery.build_router(),
        share.build_router(),
        actions.build_router(),
        images_router(albums),
        imagine.build_router(),
    ]
