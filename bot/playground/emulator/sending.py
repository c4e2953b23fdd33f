"""The send* methods: texts, media, albums and chat actions, validated as Telegram does."""

from __future__ import annotations

import copy
import secrets
from typing import Any

from bot.playground.emulator.entities import (
    format_text,
    utf16_len,
)
from bot.playground.emulator.media import Media
from bot.playground.emulator.wire import (
    CALLBACK_DATA_LIMIT,
    CAPTION_LIMIT,
    TEXT_LIMIT,
    JSONDict,
    Req,
    bad,
)


class Sending(Media):
    """sendMessage, sendPhoto and the other ways a bot puts something in a chat."""

    def _check_markup(self, markup: Any, chat: JSONDict | None) -> JSONDict | None:
        """Validate reply_markup; return it when it belongs on the Message (inline only)."""
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            if not any(k in markup for k in ("keyboard", "remove_keyboard", "force_reply")):
                raise bad("can't parse reply keyboard markup JSON object")
            placeholder = markup.get("input_field_placeholder")
            if placeholder is not None and len(str(placeholder)) > 64:
                raise bad("can't parse reply keyboard markup JSON object")
            return None
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list):
            raise bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
        for row in rows:
            for button in row:
                if not button.get("text"):
                    raise bad("can't parse inline keyboard button: Text is empty")
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= CALLBACK_DATA_LIMIT:
                    raise bad("BUTTON_DATA_INVALID")
                web_app = button.get("web_app")
                if web_app is not None:
                    url = str(web_app.get("url", ""))
                    schemes = ("https://", "http://") if self.test_environment else ("https://",)
                    if not url.startswith(schemes):
                        raise bad(
                            f"inline keyboard button Web App URL '{url}' is invalid:"
                            " Only HTTPS links are allowed"
                        )
                    if chat is not None and chat["type"] != "private":
                        raise bad("BUTTON_TYPE_INVALID")
        return copy.deepcopy(markup)

    def _reply_to(self, req: Req, chat: JSONDict) -> JSONDict | None:
        reply = req.get("reply_parameters")
        allow_missing = req.get_bool("allow_sending_without_reply")
        message_id: int | None = None
        if isinstance(reply, dict):
            message_id = reply.get("message_id")
            allow_missing = allow_missing or bool(reply.get("allow_sending_without_reply"))
        elif req.get_int("reply_to_message_id") is not None:
            message_id = req.get_int("reply_to_message_id")
        if message_id is None:
            return None
        replied = self.message(chat["id"], int(message_id))
        if replied is None:
            if allow_missing:
                return None
            raise bad("message to be replied not found")
        replied.pop("reply_to_message", None)
        return replied

    def _caption(self, caption: Any, parse_mode: Any, entities: Any) -> JSONDict:
        if caption is None or caption == "":
            return {}
        text, parsed = format_text(str(caption), parse_mode, entities, self._users)
        if utf16_len(text) > CAPTION_LIMIT:
            raise bad("message caption is too long")
        content: JSONDict = {"caption": text}
        if parsed:
            content["caption_entities"] = parsed
        return content

    async def _send_message(self, req: Req) -> JSONDict:
        chat = self._chat(req)
        raw = req.get_str("text")
        if not raw:
            raise bad("message text is empty")
        text, entities = format_text(
            raw, req.get_str("parse_mode"), req.get("entities"), self._users
        )
        if not text.strip():
            raise bad("message text is empty")
        if utf16_len(text) > TEXT_LIMIT:
            raise bad("message is too long")
        markup = self._check_markup(req.get("reply_markup"), chat)
        reply = self._reply_to(req, chat)
        content: JSONDict = {"text": text}
        if entities:
            content["entities"] = entities
        return self._emit(req, chat, content, markup, reply)

    async def _send_media(self, req: Req, kind: str) -> JSONDict:
        chat = self._chat(req)
        caption = self._caption(
            req.get("caption"), req.get_str("parse_mode"), req.get("caption_entities")
        )
        extra = {k: req.get(k) for k in ("width", "height", "duration")}
        content = self._media_content(req, kind, req.get(kind), extra)
        markup = self._check_markup(req.get("reply_markup"), chat)
        reply = self._reply_to(req, chat)
        content = self._materialize(content)
        content.update(caption)
        if req.get_bool("has_spoiler"):
            content["has_media_spoiler"] = True
        return self._emit(req, chat, content, markup, reply)

    async def _send_photo(self, req: Req) -> JSONDict:
        return await self._send_media(req, "photo")

    async def _send_document(self, req: Req) -> JSONDict:
        return await self._send_media(req, "document")

    async def _send_animation(self, req: Req) -> JSONDict:
        return await self._send_media(req, "animation")

    async def _send_video(self, req: Req) -> JSONDict:
        return await self._send_media(req, "video")

    async def _send_media_group(self, req: Req) -> list[JSONDict]:
        chat = self._chat(req)
        media = req.get("media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise bad(
                "too few or too many media in the album"
                if isinstance(media, list)
                else "media is empty"
            )
        reply = self._reply_to(req, chat)
        prepared: list[JSONDict] = []
        for item in media:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind not in ("photo", "video", "document", "audio"):
                raise bad("wrong type of the media in the album")
            content = self._media_content(req, str(kind), item.get("media"), item)
            content.update(
                self._caption(
                    item.get("caption"), item.get("parse_mode"), item.get("caption_entities")
                )
            )
            prepared.append(content)
        kinds = {next(k for k in c if k not in ("caption", "caption_entities")) for c in prepared}
        if "document" in kinds and len(kinds) > 1:
            raise bad("documents can't be mixed with other media types in an album")
        group_id = str(secrets.randbits(60))
        messages = []
        for content in prepared:
            content = self._materialize(content)
            content["media_group_id"] = group_id
            messages.append(self._emit(req, chat, content, None, reply))
        return messages

    async def _send_chat_action(self, req: Req) -> bool:
        chat = self._chat(req)
        action = req.get_str("action")
        if not action:
            raise bad("action is empty")
        self._publish("action", chat_id=chat["id"], action=action)
        return True
