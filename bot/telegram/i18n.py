"""Languages: gettext catalogs, compiled from `.po` at start (`.mo` files are never committed).

Source strings are English and serve as message ids;
`bot/telegram/locales/<lang>/LC_MESSAGES/messages.po` holds the translations.
`python -m bot.telegram.i18n` compiles them explicitly (the Docker build does).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import lazy_gettext as __
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

__all__ = ["DEFAULT_LOCALE", "LOCALES", "LOCALES_DIR", "_", "__", "build_i18n", "pick_locale"]

log = logging.getLogger(__name__)

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"
DEFAULT_LOCALE = "en"
LOCALES = ("en", "ru")


def compile_catalogs(path: Path = LOCALES_DIR) -> list[Path]:
    """Compile every `.po` whose `.mo` is missing or older; return the files written."""
    written = []
    for po_path in sorted(path.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=po_path.parent.parent.name)
        with mo_path.open("wb") as mo_file:
            write_mo(mo_file, catalog)
        written.append(mo_path)
    return written


def build_i18n(path: Path = LOCALES_DIR) -> I18n:
    """Compile what needs it and load the catalogs; English is the message ids themselves."""
    compile_catalogs(path)
    return I18n(path=path, default_locale=DEFAULT_LOCALE, domain=DOMAIN)


def pick_locale(language_code: str | None) -> str:
    """The supported locale closest to a Telegram `language_code` (English otherwise)."""
    code = (language_code or "").split("-")[0].lower()
    return code if code in LOCALES else DEFAULT_LOCALE


if __name__ == "__main__":
    for mo in compile_catalogs():
        print(f"compiled {mo}", file=sys.stderr)
