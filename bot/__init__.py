"""A Telegram front-end for the userapi.ai Midjourney API."""
