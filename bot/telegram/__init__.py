"""Talking to Telegram: session, shared limiter, i18n, media, uploads; imports runtime, userapi."""
