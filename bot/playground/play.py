"""The playground's start: Telegram emulated and the chat page on one port, then the real bot."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from aiohttp import web

from bot.__main__ import load_settings, run
from bot.config import Settings
from bot.playground.emulator import FakeTelegram, LimitedTelegram
from bot.playground.emulator.wire import UPLOAD_LIMIT
from bot.playground.page import Cast, ChatPage
from bot.telegram.session import StartupError

HOST = "127.0.0.1"
BOT_USERNAME = "mj_playground_bot"
BOT_NAME = "Midjourney Bot"
# The people on the page: you (the owner, an admin of the bot) and a friend, in a group too.
YOU, FRIEND = 100001, 100002
GROUP = -1001000000001


class PlaygroundSettings(Settings):
    """The bot's settings, with the playground's Telegram behind TELEGRAM_API_URL.

    That Telegram plays the test environment, which opens Mini Apps over plain HTTP; the main
    one needs HTTPS, so the bot's own rule (`Settings.mini_app_base`) stays as it is.
    """

    @property
    def mini_app_base(self) -> str | None:
        """The bot's own HTTP server on this machine: the page opens the Mini App from it."""
        return self.webapp_url


def new_token() -> str:
    """A token in Telegram's shape (bot id, colon, secret), made up for this run."""
    return f"{7_000_000_000 + secrets.randbelow(10**9)}:{secrets.token_urlsafe(26)}"


def playground_settings(database: Path) -> Settings:
    """The settings of `python -m bot`, pointed at the playground's Telegram on this machine.

    The rest comes from the environment and .env as usual (USERAPI_KEY: real Midjourney).
    Telegram's state lives in memory, so the bot's does too, in a database made for this run;
    polling, as nothing from outside could reach a webhook.
    """
    settings = load_settings(PlaygroundSettings, bot_token=new_token())
    return settings.model_copy(
        update={
            "telegram_api_url": f"http://{HOST}:{settings.playground_port}",
            "telegram_webhook": False,
            "webapp_url": f"http://{HOST}:{settings.web_port}",
            "database_path": database,
            "database_url": None,
            "redis_url": None,
            "admin_ids": [*settings.admin_ids, YOU],
        }
    )


def emulator(settings: Settings) -> FakeTelegram:
    """Telegram for one bot, with Telegram's sending limits, and its people."""
    telegram = LimitedTelegram(
        token=settings.bot_token.get_secret_value(),
        bot_username=BOT_USERNAME,
        bot_name=BOT_NAME,
        test_environment=True,
    )
    # Inline feedback stays off, as BotFather leaves it: the bot handles no chosen_inline_result.
    telegram.inline_feedback = False
    you = telegram.user(YOU, "You", username="you")
    friend = telegram.user(FRIEND, "Alex", username="alex")
    telegram.private_chat(you)
    telegram.private_chat(friend)
    telegram.group_chat(GROUP, "Playground group")
    telegram.set_admin(GROUP, YOU, "creator")
    return telegram


def cast() -> Cast:
    """The chats the page lists and who may write in each."""
    return Cast(
        chats=[
            {"id": YOU, "title": "You · private chat", "members": [YOU]},
            {"id": FRIEND, "title": "Alex · private chat", "members": [FRIEND]},
            {"id": GROUP, "title": "Playground group", "members": [YOU, FRIEND]},
        ],
    )


def announce(url: str) -> None:
    """The two lines a newcomer needs: where the page is, and how to go real."""
    print(f"Playground ready: open {url} in a browser and chat with the bot.", flush=True)
    print(
        "For real Telegram instead: create a bot with @BotFather, put its token in BOT_TOKEN "
        "in .env, and run `make run` again.",
        flush=True,
    )


async def play(settings: Settings) -> None:
    """Serve Telegram and the page, run the bot until a stop signal, then close the page."""
    telegram = emulator(settings)
    # Photos and albums from the page, up to Telegram's own upload size.
    app = web.Application(client_max_size=UPLOAD_LIMIT * 2)
    telegram.register(app)
    ChatPage(telegram, cast()).register(app)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, HOST, settings.playground_port).start()
        except OSError as error:
            raise StartupError(
                f"The playground can't listen on {HOST}:{settings.playground_port} "
                f"({error.strerror}): set PLAYGROUND_PORT to a free port.",
                exit_code=2,
            ) from None
        telegram.base_url = settings.telegram_api_url
        await run(settings, started=lambda: announce(f"http://{HOST}:{settings.playground_port}/"))
    finally:
        await runner.cleanup()
        sys.stdout.flush()
