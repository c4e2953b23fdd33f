"""Every user-facing string is in the catalogs, translated in English and Russian."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from bot.telegram.i18n import LOCALES, LOCALES_DIR, build_i18n, pick_locale
from scripts.update_catalogs import extract_messages

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"{(\w+)[^}]*}")
# Calls that put text in front of a user; their text must come from the catalogs.
SENDING_CALLS = {
    "answer",
    "reply",
    "send_message",
    "edit_text",
    "edit_message_text",
    "answer_photo",
    "send_photo",
    "edit_caption",
    "edit_message_caption",
}


def catalog(locale: str) -> Catalog:
    with (LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as file:
        return read_po(file, locale=locale)


@pytest.mark.parametrize("locale", LOCALES)
def test_every_message_is_translated(locale: str) -> None:
    messages = extract_messages()
    assert messages, "no translatable strings found: extraction is broken"
    translations = catalog(locale)
    missing = [msgid for msgid in messages if not (translations.get(msgid) or None)]
    untranslated = [
        msgid
        for msgid in messages
        if (entry := translations.get(msgid)) is not None and not entry.string
    ]
    assert not missing, f"{locale}: not in the catalog (run python -m scripts.update_catalogs)"
    assert not untranslated, f"{locale}: untranslated: {untranslated[:5]}"


@pytest.mark.parametrize("locale", LOCALES)
def test_translations_keep_their_placeholders(locale: str) -> None:
    for entry in catalog(locale):
        if not entry.id or not entry.string:
            continue
        assert set(PLACEHOLDER.findall(str(entry.id))) == set(
            PLACEHOLDER.findall(str(entry.string))
        ), f"{locale}: placeholders differ in {entry.id!r}"


def test_catalogs_load_from_a_read_only_install_and_nothing_is_written(tmp_path: Path) -> None:
    # Replicas share one install directory (or a read-only image): start-up must not write there.
    install = tmp_path / "locales"
    shutil.copytree(LOCALES_DIR, install)
    before = sorted(path.relative_to(install) for path in install.rglob("*"))
    for path in [install, *install.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        i18n = build_i18n(install)
    finally:
        for path in [install, *install.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert sorted(path.relative_to(install) for path in install.rglob("*")) == before
    entry = next(entry for entry in catalog("ru") if entry.id and entry.string)
    assert i18n.gettext(str(entry.id), locale="ru") == entry.string
    assert sorted(i18n.available_locales) == sorted(LOCALES)


def test_locale_from_telegram_language_code() -> None:
    assert pick_locale("ru") == "ru"
    assert pick_locale("ru-RU") == "ru"
    assert pick_locale("de") == "en"
    assert pick_locale(None) == "en"


def _literal_text(node: ast.expr) -> bool:
    """Whether an argument is text written in the code rather than taken from a catalog."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(re.search(r"[A-Za-zА-Яа-я]{3}", node.value))
    return isinstance(node, ast.JoinedStr) and any(
        isinstance(part, ast.Constant) and re.search(r"[A-Za-z]{3}", str(part.value))
        for part in node.values
    )


def test_no_user_facing_literal_outside_the_catalogs() -> None:
    offenders = []
    for folder in ("bot", "handlers"):
        for path in (ROOT / folder).rglob("*.py"):
            if "userapi" in path.parts:
                continue  # the client and the simulator talk to machines, not users
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                    continue
                if node.func.attr not in SENDING_CALLS:
                    continue
                texts = list(node.args[:1]) + [
                    kw.value for kw in node.keywords if kw.arg in ("text", "caption")
                ]
                if any(_literal_text(text) for text in texts):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"user-facing text outside the catalogs: {offenders}"
