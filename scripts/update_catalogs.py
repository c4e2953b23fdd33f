"""Extract every `_()` / `__()` string from the code and merge it into the catalogs.

English catalogs get msgstr = msgid (the source strings are English); other languages get new
entries with an empty msgstr to translate. `tests/unit/test_i18n.py` fails while any is empty.
Run: `python -m scripts.update_catalogs`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("bot", "handlers")
LOCALES_DIR = ROOT / "bot" / "telegram" / "locales"
KEYWORDS = {"_": None, "__": None}


def extract_messages() -> dict[str, list[str]]:
    """Every translatable string in the code, with the places it appears."""
    found: dict[str, list[str]] = {}
    for source in SOURCES:
        for filename, lineno, message, _comments, _context in extract_from_dir(
            ROOT / source,
            method_map=[("**.py", "python")],
            keywords=KEYWORDS,
        ):
            if isinstance(message, str):
                found.setdefault(message, []).append(f"{source}/{filename}:{lineno}")
    return found


def load_catalog(locale: str) -> Catalog:
    """The catalog of one language (empty when it doesn't exist yet)."""
    path = LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return Catalog(locale=locale, domain="messages")
    with path.open("rb") as file:
        return read_po(file, locale=locale)


def update(locale: str, messages: dict[str, list[str]]) -> int:
    """Bring one catalog in line with the code; return how many entries lack a translation."""
    catalog = load_catalog(locale)
    fresh = Catalog(locale=locale, domain="messages", project="mj-telegram-bot")
    for msgid, places in sorted(messages.items()):
        old = catalog.get(msgid)
        text = old.string if old is not None and old.string else ""
        if locale == "en":
            text = msgid
        locations = [(place.rsplit(":", 1)[0], int(place.rsplit(":", 1)[1])) for place in places]
        fresh.add(msgid, text, locations=locations)
    path = LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        write_po(file, fresh, width=99, omit_header=False)
    return sum(1 for message in fresh if message.id and not message.string)


def main() -> None:
    """Update every catalog and report what is left to translate."""
    messages = extract_messages()
    for locale in ("en", "ru"):
        missing = update(locale, messages)
        print(f"{locale}: {len(messages)} messages, {missing} untranslated", file=sys.stderr)


if __name__ == "__main__":
    main()
