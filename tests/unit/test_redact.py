"""The logging filter that keeps the bot token and the API key out of every record."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.runtime.redact import RedactSecrets, install, uninstall

TOKEN = "123456:AAE-very-secret-bot-token-part"
KEY = "sk-userapi-key-0123456789"


@pytest.fixture
def redacted(caplog: pytest.LogCaptureFixture) -> Iterator[RedactSecrets]:
    caplog.set_level(logging.DEBUG)
    redactor = install([TOKEN, KEY, None])
    yield redactor
    uninstall(redactor)


def third_party_download(url: str) -> None:
    """Fails the way aiohttp does: the URL (with the token) in the exception message."""
    raise ConnectionError(f"502, message='Bad Gateway', url='{url}'")


def test_messages_args_and_tracebacks_are_masked(
    redacted: RedactSecrets, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("aiohttp.client")  # any library's logger ends at the root handlers
    url = f"https://api.telegram.org/file/bot{TOKEN}/photos/file_1.jpg"
    log.info("GET %s with api-key %s", url, KEY)
    log.warning("quoted: %s", url.replace(":", "%3A"))
    try:
        third_party_download(url)
    except ConnectionError:
        log.exception("download failed")
    log.debug("the id alone is public: bot %s", TOKEN.split(":")[0])

    secret_half = TOKEN.split(":", 1)[1]
    assert secret_half not in caplog.text and KEY not in caplog.text
    assert "Traceback" in caplog.text and "third_party_download" in caplog.text
    assert "/file/bot***/photos" in caplog.text
    assert "bot 123456" in caplog.text
    for record in caplog.records:
        assert secret_half not in record.getMessage()
        assert secret_half not in (record.exc_text or "")


def test_nothing_changes_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    redactor = install([None, ""])
    try:
        logging.getLogger("x").info("value %s", 42)
    finally:
        uninstall(redactor)
    assert caplog.records[-1].getMessage() == "value 42"


def test_a_handler_added_after_start_gets_masked_records(redacted: RedactSecrets) -> None:
    stream = io.StringIO()
    late = logging.StreamHandler(stream)
    logger = logging.getLogger("added.later")
    logger.addHandler(late)
    logger.propagate = False
    try:
        logger.warning("token %s", TOKEN)
        try:
            third_party_download(f"https://api.telegram.org/bot{TOKEN}/getMe")
        except ConnectionError:
            logger.exception("failed")
    finally:
        logger.removeHandler(late)
        logger.propagate = True
    assert TOKEN.split(":", 1)[1] not in stream.getvalue()
    assert "token ***" in stream.getvalue() and "Traceback" in stream.getvalue()


def test_uninstall_restores_the_factory_before_it() -> None:
    before = logging.getLogRecordFactory()
    redactor = install([TOKEN])
    assert logging.getLogRecordFactory() is not before
    uninstall(redactor)
    assert logging.getLogRecordFactory() is before
