"""Changing what was sent: edits, deletions, answers to button presses and inline queries."""

from __future__ import annotations

import copy
import re
import time

from bot.playground.emulator.entities import (
    format_text,
    utf16_len,
)
from bot.playground.emulator.sending import Sending
from bot.playground.emulator.wire import (
    CACHED_RESULTS,
    INLINE_ID_LIMIT,
    INLINE_RESULTS_LIMIT,
    MEDIA_KEYS,
    NOT_MODIFIED,
    TEXT_LIMIT,
    WRONG_FILE,
    JSONDict,
    Req,
    StoredFile,
    TelegramError,
    bad,
)

_START_PARAMETER = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Editing(Sending):
    """editMessage*, deleteMessage, answerCallbackQuery and answerInlineQuery."""

    def _editable(self, req: Req) -> JSONDict:
        if req.get("inline_message_id"):
            raise bad("MESSAGE_ID_INVALID")
        chat_id = req.get("chat_id")
        message_id = req.get_int("message_id")
        if chat_id is None or message_id is None:
            raise bad("message to edit not found")
        chat = self._chat(req)
        key = (chat["id"], message_id)
        if key in self._deleted or key not in self._messages:
            raise bad("message to edit not found")
        message = self._messages[key]
        if message["from"]["id"] != self.bot_id:
            raise bad("message can't be edited")
        return message

    def _apply_edit(
        self, message: JSONDict, changes: JSONDict, markup: JSONDict | None
    ) -> JSONDict:
        """Apply changes (None values remove keys) unless nothing would change."""
        updated = copy.deepcopy(message)
        for key, value in changes.items():
            if value is None:
                updated.pop(key, None)
            else:
                updated[key] = value
        if markup is None:
            updated.pop("reply_markup", None)
        else:
            updated["reply_markup"] = markup
        updated.pop("edit_date", None)
        before = {k: v for k, v in message.items() if k != "edit_date"}
        if updated == before:
            raise bad(NOT_MODIFIED.removeprefix("Bad Request: "))
        updated["edit_date"] = int(time.time())
        message.clear()
        message.update(updated)
        self._publish("message", message=message)
        return copy.deepcopy(message)

    async def _edit_message_text(self, req: Req) -> JSONDict:
        message = self._editable(req)
        if "text" not in message:
            raise bad("there is no text in the message to edit")
        raw = req.get_str("text")
        if not raw:
            raise bad("message text is empty")
        text, entities = format_text(
            raw, req.get_str("parse_mode"), req.get("entities"), self._users
        )
        if utf16_len(text) > TEXT_LIMIT:
            raise bad("message is too long")
        markup = self._check_markup(req.get("reply_markup"), message["chat"])
        return self._apply_edit(message, {"text": text, "entities": entities or None}, markup)

    async def _edit_message_caption(self, req: Req) -> JSONDict:
        message = self._editable(req)
        if not any(kind in message for kind in MEDIA_KEYS):
            raise bad("there is no caption in the message to edit")
        caption = self._caption(
            req.get("caption"), req.get_str("parse_mode"), req.get("caption_entities")
        )
        markup = self._check_markup(req.get("reply_markup"), message["chat"])
        changes = {
            "caption": caption.get("caption"),
            "caption_entities": caption.get("caption_entities"),
        }
        return self._apply_edit(message, changes, markup)

    async def _edit_message_media(self, req: Req) -> JSONDict:
        message = self._editable(req)
        if not any(kind in message for kind in MEDIA_KEYS):
            raise bad("there is no media in the message to edit")
        media = req.get("media")
        if not isinstance(media, dict) or media.get("type") not in (
            "photo",
            "video",
            "animation",
            "document",
            "audio",
        ):
            raise bad("can't parse InputMedia JSON object")
        kind = str(media["type"])
        content = self._media_content(req, kind, media.get("media"), media)
        caption = self._caption(
            media.get("caption"), media.get("parse_mode"), media.get("caption_entities")
        )
        markup = self._check_markup(req.get("reply_markup"), message["chat"])
        content = self._materialize(content)
        changes: JSONDict = dict.fromkeys((*MEDIA_KEYS, "caption", "caption_entities"))
        changes.update(content)
        changes.update(caption)
        return self._apply_edit(message, changes, markup)

    async def _edit_message_reply_markup(self, req: Req) -> JSONDict:
        message = self._editable(req)
        markup = self._check_markup(req.get("reply_markup"), message["chat"])
        return self._apply_edit(message, {}, markup)

    async def _delete_message(self, req: Req) -> bool:
        chat = self._chat(req)
        message_id = req.need_int("message_id", "message identifier is not specified")
        key = (chat["id"], message_id)
        if key in self._deleted or key not in self._messages:
            raise bad("message to delete not found")
        self._delete(key)
        return True

    async def _answer_callback_query(self, req: Req) -> bool:
        query_id = req.get_str("callback_query_id") or ""
        if query_id not in self._callbacks or self._callbacks[query_id] is not None:
            raise bad("query is too old and response timeout expired or query ID is invalid")
        text = req.get_str("text")
        if text is not None and len(text) > 200:
            raise bad("MESSAGE_TOO_LONG")
        self._callbacks[query_id] = dict(req.params)
        self._publish("answer", query_id=query_id, answer=self._callbacks[query_id])
        return True

    async def _answer_inline_query(self, req: Req) -> bool:
        query_id = req.get_str("inline_query_id") or ""
        if query_id not in self._inline_queries or self._inline_queries[query_id] is not None:
            raise bad("query is too old and response timeout expired or query ID is invalid")
        results = req.get("results")
        if not isinstance(results, list):
            raise bad("can't parse inline query results JSON object")
        if len(results) > INLINE_RESULTS_LIMIT:
            raise bad("RESULTS_TOO_MUCH")
        ids: set[str] = set()
        for result in results:
            self._check_inline_result(result, ids)
        if len((req.get_str("next_offset") or "").encode()) > INLINE_ID_LIMIT:
            raise bad("NEXT_OFFSET_INVALID")
        button = req.get("button")
        if button is not None:
            if not isinstance(button, dict) or not button.get("text"):
                raise bad("can't parse inline query results button JSON object")
            start = button.get("start_parameter")
            if "web_app" not in button and not _START_PARAMETER.fullmatch(str(start or "")):
                raise bad("START_PARAM_INVALID")
        self._inline_queries[query_id] = dict(req.params)
        self._publish("inline", query_id=query_id, answer=self._inline_queries[query_id])
        return True

    def _check_inline_result(self, result: object, ids: set[str]) -> None:
        """One result as Telegram checks it; this emulator plays cached files and articles."""
        if not isinstance(result, dict):
            raise bad("can't parse inline query result JSON object")
        result_id = str(result.get("id") or "")
        if not 1 <= len(result_id.encode()) <= INLINE_ID_LIMIT:
            raise bad("RESULT_ID_INVALID")
        if result_id in ids:
            raise bad("RESULT_ID_DUPLICATE")
        ids.add(result_id)
        kind = str(result.get("type") or "")
        if kind == "article":
            content = result.get("input_message_content")
            if not result.get("title") or not isinstance(content, dict):
                raise bad("can't parse inline query result JSON object")
        elif kind in CACHED_RESULTS and CACHED_RESULTS[kind][0] in result:
            field, file_kind = CACHED_RESULTS[kind]
            stored = self._files.get(str(result[field]))
            if not isinstance(stored, StoredFile):
                raise TelegramError(400, WRONG_FILE)
            if stored.kind != file_kind:
                raise bad(f"can't use file of type {stored.kind.title()} as {file_kind.title()}")
            self._caption(
                result.get("caption"), result.get("parse_mode"), result.get("caption_entities")
            )
        else:
            raise bad("RESULT_TYPE_INVALID")
        self._check_markup(result.get("reply_markup"), None)
