"""The bot: composition root (app, build, config, __main__) over packages by subject."""
