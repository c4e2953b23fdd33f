"""Playing the people: users, their chats, their messages and button presses."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import secrets
import time
from urllib.parse import urlencode

from bot.playground.emulator.entities import (
    command_entities,
)
from bot.playground.emulator.media import Media
from bot.playground.emulator.wire import (
    INLINE_QUERY_LIMIT,
    JSONDict,
)


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


class Users(Media):
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
            replied = self.message(chat["id"], reply_to_message_id)
            if replied is None:
                raise ValueError(f"no message {reply_to_message_id} in chat {chat['id']}")
            replied.pop("reply_to_message", None)
            message["reply_to_message"] = replied
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
        more); `chat_type` is where the user types ("sender" is their chat with the bot).
        """
        if not self.supports_inline_queries:
            raise ValueError("inline mode is off (BotFather /setinline): apps send no queries")
        if len(query) > INLINE_QUERY_LIMIT:
            raise ValueError(f"an inline query holds at most {INLINE_QUERY_LIMIT} characters")
        self._users.setdefault(user["id"], dict(user))
        query_id = str(secrets.randbits(63))
        self._inline_queries[query_id] = None
        body = {"id": query_id, "from": dict(user), "query": query, "offset": offset}
        self.queue_update({"inline_query": {**body, "chat_type": chat_type}})
        return query_id

    def delete_as_user(self, chat_id: int, message_id: int) -> None:
        """Play a user deleting a message; Telegram sends the bot no update about it."""
        key = (chat_id, message_id)
        if key in self._deleted or key not in self._messages:
            raise ValueError(f"no message {message_id} in chat {chat_id}")
        self._delete(key)
