"""Text as Telegram stores it: HTML parsed into plain text and entities, commands marked."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from bot.playground.emulator.wire import JSONDict, bad

_COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class HTMLEntities(HTMLParser):
    """Turn Telegram's HTML subset into plain text plus entities, as the server does."""

    _SIMPLE = {  # noqa: RUF012 - a read-only lookup table
        "b": "bold",
        "strong": "bold",
        "i": "italic",
        "em": "italic",
        "u": "underline",
        "ins": "underline",
        "s": "strikethrough",
        "strike": "strikethrough",
        "del": "strikethrough",
        "tg-spoiler": "spoiler",
        "code": "code",
        "pre": "pre",
        "blockquote": "blockquote",
    }

    def __init__(self, users: dict[int, JSONDict] | None = None) -> None:
        super().__init__(convert_charrefs=True)
        self._users = users or {}
        self.text = ""
        self.entities: list[JSONDict] = []
        self._open: list[tuple[str, JSONDict]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        entity: JSONDict
        if tag in self._SIMPLE:
            entity = {"type": self._SIMPLE[tag]}
            if tag == "blockquote" and "expandable" in attr:
                entity["type"] = "expandable_blockquote"
        elif tag == "span" and attr.get("class") == "tg-spoiler":
            entity = {"type": "spoiler"}
        elif tag == "a":
            href = attr.get("href") or ""
            match = re.fullmatch(r"tg://user\?id=(\d+)", href)
            if match:
                # Telegram sends the whole User of a mention, as it knows it.
                user_id = int(match[1])
                user = self._users.get(user_id) or {"id": user_id, "first_name": str(user_id)}
                entity = {"type": "text_mention", "user": {"is_bot": False, **user}}
            else:
                entity = {"type": "text_link", "url": href}
        elif tag == "tg-emoji":
            entity = {"type": "custom_emoji", "custom_emoji_id": attr.get("emoji-id") or ""}
        else:
            raise bad(f'can\'t parse entities: Unsupported start tag "{tag}"')
        entity["offset"] = utf16_len(self.text)
        self._open.append((tag, entity))

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1][0] != tag:
            raise bad(f'can\'t parse entities: Unexpected end tag "{tag}"')
        _, entity = self._open.pop()
        if entity["type"] == "code" and self._open and self._open[-1][1]["type"] == "pre":
            # <pre><code class="language-x"> is one pre entity with a language.
            return
        entity["length"] = utf16_len(self.text) - entity["offset"]
        if entity["length"] > 0:
            self.entities.append(entity)

    def handle_data(self, data: str) -> None:
        self.text += data

    def finish(self) -> tuple[str, list[JSONDict]]:
        """Close the parser and return text and entities sorted by offset."""
        self.close()
        if self._open:
            tag = self._open[-1][0]
            raise bad(
                f"can't parse entities: Can't find end tag corresponding to start tag \"{tag}\""
            )
        return self.text, sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))


def format_text(
    text: str,
    parse_mode: str | None,
    entities: Any,
    users: dict[int, JSONDict] | None = None,
) -> tuple[str, list[JSONDict]]:
    """Apply parse_mode (HTML only; Markdown is kept verbatim) or explicit entities."""
    if isinstance(entities, list) and entities:
        return text, entities
    if parse_mode and parse_mode.lower() == "html":
        parser = HTMLEntities(users)
        parser.feed(text)
        return parser.finish()
    return text, []


def command_entities(text: str) -> list[JSONDict]:
    match = _COMMAND_RE.match(text)
    if not match:
        return []
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(match[0])}]
