"""Secrets out of the log: the bot token and the API keys cut from every record as it is made.

aiogram builds Telegram URLs with the token in their path, and libraries put URLs in their
exception messages; a traceback from any of them would otherwise print the token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any
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
        # The record factory this was installed over, and the one installed (see install()).
        self.factories: tuple[Callable[..., logging.LogRecord], ...] = ()

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
    """Mask every record as it is made, so handlers added later (or by libraries) get it masked."""
    redactor = RedactSecrets(secrets)
    make = logging.getLogRecordFactory()

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        redactor.filter(record)
        return record

    redactor.factories = (make, masked_record)
    logging.setLogRecordFactory(masked_record)
    return redactor


def uninstall(redactor: RedactSecrets) -> None:
    """Stop masking: restore the record factory that was there before."""
    previous, ours = redactor.factories
    # Another factory put on top of ours since keeps working; it still calls ours.
    if logging.getLogRecordFactory() is ours:
        logging.setLogRecordFactory(previous)
