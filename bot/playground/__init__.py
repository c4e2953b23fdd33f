"""The playground: the real bot against an in-memory Telegram, chatted with in a browser."""
