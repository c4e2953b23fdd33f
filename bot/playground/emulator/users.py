"""Playing the people: users, their chats, their messages, button presses and inline mode."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import secrets
import time
from urllib.parse import urlencode

from bot.playground.emulator.entities import (
    command_entities,
    format_text,
)
from bot.playground.emulator.sending import Sending
from bot.playground.emulator.wire import (
    CACHED_RESULTS,
    INLINE_QUERY_LIMIT,
    JSONDict,
)

# Where an inline query can be typed, as its chat_type says ("sender": the bot's own chat).
_INLINE_CHAT_TYPES = ("sender", "private", "group", "supergroup", "channel")


def sign_init_data(
    token: str, user: JSONDict, auth_date: int | None = None, query_id: str | None = None
) -> str:
    """A Mini App's initData as Telegram signs it (HMAC-SHA256, keyed by the bot token)."""
    fields = {
        "auth_date": str(int(time.time()) if auth_date is None else auth_date),
        "query_id": query_id or f"AA{secrets.token_urlsafe(18)}",
        "user": json.dumps(user, separators=(",", ":"), ensure_ascii=False),
    }
    check = "\n".join(f"{key}={value}" for key, value in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode(fields)


class Users(Sending):
    """What users do in their Telegram apps, turned into updates for the bot."""

    def open_web_app(self, user: JSONDict) -> str:
        """The initData a user's app hands a Mini App opened from a button, signed for the bot."""
        known = self._users.get(user["id"], user)
        fields = ("id", "first_name", "last_name", "username", "language_code", "is_premium")
        return sign_init_data(self.token, {key: known[key] for key in fields if key in known})

    def group_chat(self, chat_id: int, title: str = "Group", is_forum: bool = False) -> JSONDict:
        """A group (supergroup when forum or a -100... id) the bot is a member of."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        supergroup = is_forum or str(chat_id).startswith("-100")
        chat: JSONDict = {
            "id": chat_id,
            "type": "supergroup" if supergroup else "group",
            "title": title,
        }
        if is_forum:
            chat["is_forum"] = True
        self._chats[chat_id] = chat
        return dict(chat)

    def send_message(
        self,
        chat: JSONDict,
        user: JSONDict,
        text: str | None = None,
        *,
        caption: str | None = None,
        photo: bytes | None = None,
        document: tuple[bytes, str, str] | None = None,
        reply_to_message_id: int | None = None,
        message_thread_id: int | None = None,
        media_group_id: str | None = None,
        file_size: int | None = None,
        sender_chat: JSONDict | None = None,
    ) -> JSONDict:
        """Queue an update with a user's message and return the message.

        `file_size` pretends the attached file has that size (for Telegram's download limit).
        `sender_chat` sends it on behalf of a chat: a channel, or the group itself for an
        anonymous admin (`user` is then Telegram's stand-in bot, as Telegram sends it).
        """
        self._chats.setdefault(chat["id"], dict(chat))
        self._users.setdefault(user["id"], dict(user))
        message: JSONDict = {
            "message_id": self._next_message_id(chat["id"]),
            "from": dict(user),
            "chat": dict(chat),
            "date": int(time.time()),
        }
        if sender_chat is not None:
            message["sender_chat"] = dict(sender_chat)
        if message_thread_id is not None:
            message["message_thread_id"] = message_thread_id
            if chat.get("is_forum"):
                message["is_topic_message"] = True
        if reply_to_message_id is not None:
            message["reply_to_message"] = self._replied(chat, reply_to_message_id)
        if media_group_id is not None:
            message["media_group_id"] = media_group_id
        if text is not None:
            message["text"] = text
            if entities := command_entities(text):
                message["entities"] = entities
        if photo is not None:
            stored = self._store_photo(photo, size=file_size)
            message["photo"] = copy.deepcopy(stored.meta["sizes"])
        if document is not None:
            data, filename, mime = document
            stored = self._store_file(data, "document", filename, size=file_size)
            message["document"] = {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_name": filename,
                "mime_type": mime,
                "file_size": stored.size,
            }
        if caption is not None:
            message["caption"] = caption
            if entities := command_entities(caption):
                message["caption_entities"] = entities
        self._store(message)
        self.queue_update({"message": copy.deepcopy(message)})
        return copy.deepcopy(message)

    def press(
        self, message: JSONDict, callback_data: str, user: JSONDict, *, check: bool = True
    ) -> str:
        """Queue a callback_query for a button of a bot message; return the query id.

        With `check`, the button must exist on the message's current keyboard, as only
        existing buttons can be pressed in a real client.
        """
        chat_id = message["chat"]["id"]
        current = self.message(chat_id, message["message_id"])
        if current is None:
            raise ValueError(f"message {message['message_id']} in chat {chat_id} is gone")
        if check:
            rows = current.get("reply_markup", {}).get("inline_keyboard", [])
            datas = [button.get("callback_data") for row in rows for button in row]
            if callback_data not in datas:
                raise ValueError(f"no button {callback_data!r} on the message; have {datas}")
        self._users.setdefault(user["id"], dict(user))
        query_id = str(secrets.randbits(63))
        self._callbacks[query_id] = None
        self.queue_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": dict(user),
                    "message": current,
                    "chat_instance": str(abs(hash(chat_id))),
                    "data": callback_data,
                }
            }
        )
        return query_id

    def inline_query(
        self, user: JSONDict, query: str = "", *, offset: str = "", chat_type: str = "sender"
    ) -> str:
        """Queue an inline_query, as typing `@bot query` in a chat does; return the query id.

        `offset` is what the bot's last answer gave as next_offset (scrolling down asks for
        more); `chat_type` is where the user types (`inline_chat_type` tells it for a chat).
        """
        if not self.supports_inline_queries:
            raise ValueError("inline mode is off (BotFather /setinline): apps send no queries")
        if len(query) > INLINE_QUERY_LIMIT:
            raise ValueError(f"an inline query holds at most {INLINE_QUERY_LIMIT} characters")
        if chat_type not in _INLINE_CHAT_TYPES:
            raise ValueError(f"chat_type is one of {_INLINE_CHAT_TYPES}, not {chat_type!r}")
        self._users.setdefault(user["id"], dict(user))
        query_id = str(secrets.randbits(63))
        self._inline_queries[query_id] = None
        body = {"id": query_id, "from": dict(user), "query": query, "offset": offset}
        self._inline_asked[query_id] = {**body, "chat_type": chat_type}
        self.queue_update({"inline_query": copy.deepcopy(self._inline_asked[query_id])})
        return query_id

    def _replied(self, chat: JSONDict, message_id: int) -> JSONDict:
        """The message a user's message answers, as Telegram embeds it (one level deep)."""
        replied = self.message(chat["id"], message_id)
        if replied is None:
            raise ValueError(f"no message {message_id} in chat {chat['id']}")
        replied.pop("reply_to_message", None)
        return replied

    @staticmethod
    def inline_chat_type(chat: JSONDict, user: JSONDict) -> str:
        """What an inline query says of the chat it is typed in: "sender" is the bot's own."""
        if chat["type"] == "private" and chat["id"] == user["id"]:
            return "sender"
        return str(chat["type"])

    async def wait_inline_answer(self, query_id: str, timeout: float = 10.0) -> JSONDict:
        """Wait for the bot's answerInlineQuery, as the user's app does, at most `timeout` s.

        An app that stops waiting drops the query: a later answer is "too old", as in Telegram.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        while (answer := self._inline_queries.get(query_id)) is None:
            if query_id not in self._inline_queries:
                raise ValueError(f"no inline query {query_id}")
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                del self._inline_queries[query_id]
                raise TimeoutError(f"inline query {query_id} unanswered after {timeout}s")
            await self._wait_change(remaining)
        return copy.deepcopy(answer)

    def choose_inline_result(
        self,
        chat: JSONDict,
        user: JSONDict,
        query_id: str,
        result_id: str,
        *,
        reply_to_message_id: int | None = None,
    ) -> JSONDict:
        """Send a result of an answered inline query into a chat "via @bot"; return the message.

        The message is the user's, with the result's media and caption (or its
        input_message_content) and its keyboard, if any. With `inline_feedback` on, the bot also
        gets chosen_inline_result, which its allowed_updates may still leave out.
        """
        asked, answer = self._inline_asked.get(query_id), self._inline_queries.get(query_id)
        if asked is None or answer is None:
            raise ValueError(f"inline query {query_id} has no answer to choose from")
        if asked["from"]["id"] != user["id"]:
            raise ValueError("only the user who typed an inline query sees its results")
        results = [r for r in answer.get("results", []) if str(r.get("id")) == result_id]
        if not results:
            raise ValueError(f"no result {result_id!r} in the answer to inline query {query_id}")
        content = self._inline_content(results[0])
        markup = self._check_markup(results[0].get("reply_markup"), None)
        chat = self._chats.setdefault(chat["id"], dict(chat))
        message: JSONDict = {
            "message_id": self._next_message_id(chat["id"]),
            "from": dict(user),
            "chat": dict(chat),
            "date": int(time.time()),
            "via_bot": self.bot_user,
        }
        if reply_to_message_id is not None:
            message["reply_to_message"] = self._replied(chat, reply_to_message_id)
        message.update(content)
        if markup is not None:
            message["reply_markup"] = markup
        self._store(message)
        self.queue_update({"message": copy.deepcopy(message)})
        if self.inline_feedback:
            chosen: JSONDict = {
                "result_id": result_id,
                "from": dict(user),
                "query": asked["query"],
            }
            if markup is not None:
                # Telegram names the message this way only when it has buttons to edit it by.
                chosen["inline_message_id"] = secrets.token_urlsafe(24)
            self.queue_update({"chosen_inline_result": chosen})
        return copy.deepcopy(message)

    def _inline_content(self, result: JSONDict) -> JSONDict:
        """The message fields an inline result makes (answerInlineQuery checked it already)."""
        text_content = result.get("input_message_content")
        if isinstance(text_content, dict):
            if "message_text" not in text_content:
                raise ValueError("the emulator sends input_message_content with text only")
            text, entities = format_text(
                str(text_content["message_text"]),
                text_content.get("parse_mode"),
                text_content.get("entities"),
                self._users,
            )
            return {"text": text, "entities": entities} if entities else {"text": text}
        field, kind = CACHED_RESULTS[str(result["type"])]
        stored = self._files[str(result[field])]
        content: JSONDict
        if kind == "photo":
            content = {"photo": copy.deepcopy(stored.meta["sizes"])}
        else:
            content = {kind: self._file_object(stored, kind, stored.meta, {})}
            if kind == "animation":
                content["document"] = self._file_object(stored, "document", stored.meta, {})
        caption = (result.get("caption"), result.get("parse_mode"), result.get("caption_entities"))
        return {**content, **self._caption(*caption)}

    def delete_as_user(self, chat_id: int, message_id: int) -> None:
        """Play a user deleting a message; Telegram sends the bot no update about it."""
        key = (chat_id, message_id)
        if key in self._deleted or key not in self._messages:
            raise ValueError(f"no message {message_id} in chat {chat_id}")
        self._delete(key)
