"""Languages: gettext catalogs, compiled from `.po` at start into a private temporary directory.

Source strings are English and serve as message ids;
`bot/telegram/locales/<lang>/LC_MESSAGES/messages.po` holds the translations. Nothing is
written into the install directory: replicas starting together from one checkout (or a
read-only image) each compile their own copy, so none reads a half-written `.mo`.
"""

from __future__ import annotations

import logging
import tempfile
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


def compile_catalogs(source: Path, target: Path) -> list[Path]:
    """Compile every `.po` under `source` into the same layout under `target`."""
    written = []
    for po_path in sorted(source.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        mo_path = target / po_path.relative_to(source).with_suffix(".mo")
        mo_path.parent.mkdir(parents=True, exist_ok=True)
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=po_path.parent.parent.name)
        with mo_path.open("wb") as mo_file:
            write_mo(mo_file, catalog)
        written.append(mo_path)
    return written


def build_i18n(path: Path = LOCALES_DIR) -> I18n:
    """Load the catalogs; English is the message ids themselves."""
    # aiogram's I18n reads compiled `.mo` files from a directory, once, in its constructor;
    # the directory is this process's own and is gone as soon as they are read.
    with tempfile.TemporaryDirectory(prefix="mjbot-locales-") as compiled:
        compile_catalogs(path, Path(compiled))
        return I18n(path=compiled, default_locale=DEFAULT_LOCALE, domain=DOMAIN)


def pick_locale(language_code: str | None) -> str:
    """The supported locale closest to a Telegram `language_code` (English otherwise)."""
    code = (language_code or "").split("-")[0].lower()
    return code if code in LOCALES else DEFAULT_LOCALE
