"""Secrets out of the log: a filter that cuts the bot token and the API key from every record.

aiogram builds Telegram URLs with the token in their path, and libraries put URLs in their
exception messages; a traceback from any of them would otherwise print the token.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import quote

MASK = "***"
# Shorter strings are too likely to occur by chance to be cut everywhere.
MIN_SECRET_CHARS = 8


def secret_forms(secrets: Iterable[str | None]) -> list[str]:
    """Each secret as it may appear in a log: as is, URL-quoted, and a token's secret half."""
    forms: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        candidates = {secret, quote(secret, safe=""), quote(secret)}
        if ":" in secret:
            # A bot token is "<bot id>:<secret>"; the id alone is public.
            candidates.add(secret.split(":", 1)[1])
        forms.update(form for form in candidates if len(form) >= MIN_SECRET_CHARS)
    # Longest first, so a part never leaves the rest of a longer form behind.
    return sorted(forms, key=len, reverse=True)


class RedactSecrets(logging.Filter):
    """Rewrites a record's message, arguments and traceback with every secret masked."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self._forms = secret_forms(secrets)

    def redact(self, text: str) -> str:
        """The text with every secret masked."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record in place; never drops it."""
        if not self._forms:
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # bad %-arguments: logging reports those itself
            message = str(record.msg)
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
            # The text above is what handlers print; the exception object would print the
            # secret again in a formatter that re-renders it.
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install(secrets: Iterable[str | None]) -> RedactSecrets:
    """Put the filter on every handler of the root logger (where every record ends)."""
    redactor = RedactSecrets(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)
    return redactor


def uninstall(redactor: RedactSecrets) -> None:
    """Take the filter off the root logger's handlers again."""
    for handler in logging.getLogger().handlers:
        handler.removeFilter(redactor)
