"""What goes over the wire: Telegram's limits and errors, calls as recorded, decoded parameters."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp

JSONDict = dict[str, Any]


MB = 1024 * 1024


PHOTO_UPLOAD_LIMIT = 10 * MB


UPLOAD_LIMIT = 50 * MB


DOWNLOAD_LIMIT = 20 * MB


TEXT_LIMIT = 4096


CAPTION_LIMIT = 1024


CALLBACK_DATA_LIMIT = 64


# Inline mode: characters of a query; results per answer, bytes of a result id and of
# next_offset.
INLINE_QUERY_LIMIT = 256


INLINE_RESULTS_LIMIT = 50


INLINE_ID_LIMIT = 64


# Inline results that send a file Telegram holds: the field naming it, and its kind of file.
CACHED_RESULTS = {
    "photo": ("photo_file_id", "photo"),
    "mpeg4_gif": ("mpeg4_file_id", "animation"),
    "gif": ("gif_file_id", "animation"),
    "document": ("document_file_id", "document"),
    "video": ("video_file_id", "video"),
}


NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup"
    " are exactly the same as a current content and reply markup of the message"
)


WRONG_FILE = "Bad Request: wrong file identifier/HTTP URL specified"


# Form data carries every value as a string; these keys hold JSON objects or arrays.
_JSON_KEYS = frozenset(
    {
        "reply_markup",
        "reply_parameters",
        "entities",
        "caption_entities",
        "media",
        "allowed_updates",
        "commands",
        "scope",
        "link_preview_options",
        "results",
        "button",
        "menu_button",
        "message_ids",
        "rights",
        "prices",
        "suggested_tip_amounts",
    }
)


_INT_KEYS = frozenset(
    {
        "chat_id",
        "from_chat_id",
        "message_id",
        "user_id",
        "offset",
        "limit",
        "timeout",
        "reply_to_message_id",
        "message_thread_id",
        "cache_time",
        "max_connections",
        "width",
        "height",
        "duration",
    }
)


_BOOL_KEYS = frozenset(
    {
        "disable_notification",
        "protect_content",
        "show_alert",
        "drop_pending_updates",
        "has_spoiler",
        "supports_streaming",
        "disable_content_type_detection",
        "allow_sending_without_reply",
        "disable_web_page_preview",
        "show_caption_above_media",
        "allow_paid_broadcast",
        "revoke",
        "ok",
        "is_flexible",
        "is_personal",
    }
)


MEDIA_KEYS = ("photo", "document", "animation", "video", "audio")


class TelegramError(Exception):
    """An error answer of the Bot API, raised inside method handlers."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None) -> None:
        """Remember the HTTP status, Telegram's description and an optional retry_after."""
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> JSONDict:
        """The JSON body Telegram answers with."""
        body: JSONDict = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad(description: str) -> TelegramError:
    return TelegramError(400, f"Bad Request: {description}")


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class ApiCall:
    """One Bot API call as the fake server saw and answered it."""

    method: str
    params: JSONDict
    files: dict[str, UploadedFile]
    response: JSONDict
    at: float
    status: int = 200

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return bool(self.response.get("ok"))

    @property
    def result(self) -> Any:
        """The `result` of a successful call (None for errors)."""
        return self.response.get("result")


@dataclass
class WebhookDelivery:
    """One attempt to POST an update to the bot's webhook."""

    update_id: int
    status: int | None
    headers: dict[str, str]
    error: str | None
    at: float


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str
    size: int
    kind: str
    meta: JSONDict = field(default_factory=dict)


@dataclass
class Failure:
    error_code: int
    description: str
    retry_after: int | None


class Req:
    """Decoded parameters and file parts of one API call."""

    def __init__(self, params: JSONDict, files: dict[str, UploadedFile]) -> None:
        self.params = params
        self.files = files

    def get(self, key: str) -> Any:
        return self.params.get(key)

    def get_int(self, key: str) -> int | None:
        value = self.params.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad(f"invalid {key} specified")
        return value

    def need_int(self, key: str, empty_message: str | None = None) -> int:
        value = self.get_int(key)
        if value is None:
            raise bad(empty_message or f"{key} is empty")
        return value

    def get_str(self, key: str) -> str | None:
        value = self.params.get(key)
        if value is None:
            return None
        return value if isinstance(value, str) else json.dumps(value)

    def get_bool(self, key: str) -> bool:
        return self.params.get(key) is True


def decode_params(raw: JSONDict) -> JSONDict:
    """Give form strings their JSON types, as Telegram does for known fields."""
    params: JSONDict = {}
    for key, value in raw.items():
        if isinstance(value, str):
            if key in _JSON_KEYS:
                try:
                    value = json.loads(value)
                except ValueError as exc:
                    what = "reply keyboard markup" if key == "reply_markup" else key
                    raise bad(f"can't parse {what} JSON object") from exc
            elif key in _INT_KEYS and re.fullmatch(r"-?\d+", value):
                value = int(value)
            elif key in _BOOL_KEYS:
                value = value.lower() in ("true", "1")
        params[key] = value
    return params


async def read_multipart(
    reader: aiohttp.MultipartReader,
) -> tuple[JSONDict, dict[str, UploadedFile]]:
    params: JSONDict = {}
    files: dict[str, UploadedFile] = {}
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, aiohttp.BodyPartReader):
            raise bad("nested multipart is not supported")
        name = part.name or ""
        data = await part.read(decode=True)
        if part.filename is not None:
            content_type = part.headers.get(aiohttp.hdrs.CONTENT_TYPE, "application/octet-stream")
            files[name] = UploadedFile(part.filename, content_type, bytes(data))
        else:
            params[name] = bytes(data).decode("utf-8")
    return params, files
