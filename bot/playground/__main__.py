"""`python -m bot.playground`: the bot against an emulated Telegram, chatted with in a browser."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bot.__main__ import configure_logging, serve
from bot.playground.play import play, playground_settings


def main() -> None:
    """Entry point (`make run` picks it when BOT_TOKEN is not set)."""
    with tempfile.TemporaryDirectory(prefix="mj-playground-") as folder:
        settings = playground_settings(Path(folder) / "bot.sqlite3")
        configure_logging(settings)
        serve(play(settings))


if __name__ == "__main__":
    main()
