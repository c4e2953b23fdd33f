"""Who is who: the bot, chats and their members, files to download, command menus."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from bot.playground.emulator.wire import (
    DOWNLOAD_LIMIT,
    JSONDict,
    Req,
    bad,
)
from bot.playground.emulator.world import World

_BOT_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_MENU_BUTTON_TYPES = ("commands", "web_app", "default")


class Chats(World):
    """getMe, getChat*, getFile and the command menus."""

    async def _true(self, req: Req) -> bool:
        return True

    async def _get_me(self, req: Req) -> JSONDict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": self.supports_inline_queries,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_chat(self, req: Req) -> JSONDict:
        chat = self._chat(req)
        gifts = dict.fromkeys(
            (
                "unlimited_gifts",
                "limited_gifts",
                "unique_gifts",
                "premium_subscription",
                "gifts_from_channels",
            ),
            False,
        )
        return {
            **chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": gifts,
        }

    def _member(self, chat_id: int, user_id: int) -> JSONDict:
        if user_id == self.bot_id:
            user = self.bot_user
        else:
            user = dict(
                self._users.get(user_id, {"id": user_id, "is_bot": False, "first_name": "User"})
            )
        status = self._admins.get(chat_id, {}).get(user_id, "member")
        if status == "creator":
            return {"status": "creator", "user": user, "is_anonymous": False}
        if status == "administrator":
            rights = dict.fromkeys(
                (
                    "can_be_edited",
                    "is_anonymous",
                    "can_restrict_members",
                    "can_promote_members",
                    "can_post_stories",
                    "can_edit_stories",
                    "can_delete_stories",
                ),
                False,
            )
            rights.update(
                dict.fromkeys(
                    (
                        "can_manage_chat",
                        "can_delete_messages",
                        "can_manage_video_chats",
                        "can_change_info",
                        "can_invite_users",
                        "can_send_welcome_messages",
                    ),
                    True,
                )
            )
            return {"status": "administrator", "user": user, **rights}
        return {"status": "member", "user": user}

    async def _get_chat_member(self, req: Req) -> JSONDict:
        chat = self._chat(req)
        user_id = req.need_int("user_id", "user not found")
        if chat["type"] == "private" and user_id not in (chat["id"], self.bot_id):
            raise bad("user not found")
        return self._member(chat["id"], user_id)

    async def _get_chat_administrators(self, req: Req) -> list[JSONDict]:
        chat = self._chat(req)
        if chat["type"] == "private":
            raise bad("there are no administrators in the private chat")
        return [self._member(chat["id"], uid) for uid in self._admins.get(chat["id"], {})]

    async def _get_file(self, req: Req) -> JSONDict:
        file_id = req.get_str("file_id") or ""
        stored = self._files.get(file_id)
        if stored is None:
            raise bad("invalid file_id")
        if stored.size > DOWNLOAD_LIMIT:
            raise bad("file is too big")
        return {
            "file_id": file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.file_path,
        }

    async def _set_chat_menu_button(self, req: Req) -> bool:
        button = req.get("menu_button") or {"type": "default"}
        if not isinstance(button, dict) or button.get("type") not in _MENU_BUTTON_TYPES:
            raise bad("can't parse menu button")
        if button["type"] == "web_app":
            url = str((button.get("web_app") or {}).get("url") or "")
            if not button.get("text"):
                raise bad("BUTTON_TEXT_EMPTY")
            if not url.startswith("https://"):
                raise bad("BUTTON_URL_INVALID")  # Mini Apps open over HTTPS only
        chat_id = req.get_int("chat_id")
        if chat_id is not None:
            self._chat(req)
        self.menu_buttons[chat_id] = copy.deepcopy(button)
        return True

    async def _set_my_commands(self, req: Req) -> bool:
        commands = req.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad("commands must be a list of at most 100 BotCommand")
        for command in commands:
            if not isinstance(command, dict) or not _BOT_COMMAND_RE.fullmatch(
                str(command.get("command", ""))
            ):
                raise bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad("BOT_COMMAND_DESCRIPTION_INVALID")
        key = self._scope_key(req.get("scope"), req.get_str("language_code") or "")
        self._commands[key] = copy.deepcopy(commands)
        self._publish("commands")
        return True

    async def _delete_my_commands(self, req: Req) -> bool:
        self._commands.pop(
            self._scope_key(req.get("scope"), req.get_str("language_code") or ""), None
        )
        self._publish("commands")
        return True

    async def _get_my_commands(self, req: Req) -> list[JSONDict]:
        return self.commands(req.get("scope"), req.get_str("language_code") or "")

    def commands(self, scope: JSONDict | None = None, language_code: str = "") -> list[JSONDict]:
        """The command list the bot set for a scope (default scope when None)."""
        return copy.deepcopy(self._commands.get(self._scope_key(scope, language_code), []))

    def menu(self, chat_id: int, user_id: int, language_code: str = "") -> list[JSONDict]:
        """The command menu a user's app shows in a chat: the narrowest scope the bot set.

        Telegram's order: in private chats the chat, all private chats, default; in groups the
        member, the chat's administrators, the chat, all administrators, all groups, default;
        each first in the user's language, then without one.
        """
        chat = self._chats.get(chat_id, {"type": "private"})
        admin = user_id in self._admins.get(chat_id, {})
        scopes: list[JSONDict]
        if chat["type"] == "private":
            scopes = [{"type": "chat", "chat_id": chat_id}, {"type": "all_private_chats"}]
        else:
            scopes = [
                {"type": "chat_member", "chat_id": chat_id, "user_id": user_id},
                *([{"type": "chat_administrators", "chat_id": chat_id}] if admin else []),
                {"type": "chat", "chat_id": chat_id},
                *([{"type": "all_chat_administrators"}] if admin else []),
                {"type": "all_group_chats"},
            ]
        for scope in [*scopes, {"type": "default"}]:
            for language in dict.fromkeys((language_code, "")):
                found = self._commands.get(self._scope_key(scope, language))
                if found is not None:
                    return copy.deepcopy(found)
        return []

    @staticmethod
    def _scope_key(scope: Any, language_code: str) -> tuple[str, str]:
        scope = scope if isinstance(scope, dict) and scope else {"type": "default"}
        return json.dumps(scope, sort_keys=True), language_code or ""

    def set_admin(self, chat_id: int, user_id: int, status: str = "administrator") -> None:
        """Make a user an administrator (or "creator") of a chat."""
        if status not in ("administrator", "creator"):
            raise ValueError(status)
        self._admins.setdefault(chat_id, {})[user_id] = status

    def block(self, user_id: int) -> None:
        """Play a user who blocked the bot: sends to their private chat get 403."""
        self._blocked.add(user_id)
