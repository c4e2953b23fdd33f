"""Files: uploads and file_ids checked as Telegram checks them, stored, described."""

from __future__ import annotations

import copy
import io
import mimetypes
import secrets
import warnings
from typing import Any

from PIL import Image

from bot.playground.emulator.wire import (
    PHOTO_UPLOAD_LIMIT,
    UPLOAD_LIMIT,
    WRONG_FILE,
    JSONDict,
    Req,
    StoredFile,
    TelegramError,
    UploadedFile,
    bad,
)
from bot.playground.emulator.world import World


class Media(World):
    """Stores files and turns input files into Telegram's file objects."""

    def _new_file_ids(self, kind: str) -> tuple[str, str]:
        prefix = {"photo": "AgAC", "document": "BQAC", "video": "BAAC", "animation": "CgAC"}
        number = next(self._file_counter)
        file_id = f"{prefix.get(kind, 'BQAC')}{number:06d}{secrets.token_urlsafe(24)}"
        return file_id, f"AQAD{number:06d}{secrets.token_urlsafe(4)}"

    def _store_file(
        self, data: bytes, kind: str, filename: str = "", size: int | None = None
    ) -> StoredFile:
        file_id, unique_id = self._new_file_ids(kind)
        ext = (filename.rsplit(".", 1)[-1] if "." in filename else "") or {
            "photo": "jpg",
            "video": "mp4",
            "animation": "mp4",
        }.get(kind, "bin")
        number = len(self._files_by_path) + 1
        folder = {"photo": "photos", "video": "videos", "animation": "animations"}
        path = f"{folder.get(kind, 'documents')}/file_{number}.{ext}"
        stored = StoredFile(
            file_id, unique_id, data, path, len(data) if size is None else size, kind
        )
        self._files[file_id] = stored
        self._files_by_path[path] = stored
        return stored

    def _store_photo(self, data: bytes, size: int | None = None) -> StoredFile:
        width, height = self._image_size(data)
        if width + height > 10000 or max(width, height) / max(1, min(width, height)) > 20:
            raise bad("PHOTO_INVALID_DIMENSIONS")
        stored = self._store_file(data, "photo", "photo.jpg", size=size)
        sizes: list[JSONDict] = []
        for limit in (90, 320, 800):
            if max(width, height) > limit:
                scale = limit / max(width, height)
                thumb_id, thumb_unique = self._new_file_ids("photo")
                # Thumbnails share the original bytes: tests care about ids, not pixels.
                self._files[thumb_id] = stored
                sizes.append(
                    {
                        "file_id": thumb_id,
                        "file_unique_id": thumb_unique,
                        "width": max(1, round(width * scale)),
                        "height": max(1, round(height * scale)),
                    }
                )
        sizes.append(
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_size": stored.size,
                "width": width,
                "height": height,
            }
        )
        stored.meta["sizes"] = sizes
        return stored

    @staticmethod
    def _image_size(data: bytes) -> tuple[int, int]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                with Image.open(io.BytesIO(data)) as image:
                    return image.size
            except Image.DecompressionBombError as exc:
                raise bad("PHOTO_INVALID_DIMENSIONS") from exc
            except (OSError, ValueError, SyntaxError) as exc:
                raise bad("IMAGE_PROCESS_FAILED") from exc

    def _resolve_file(self, req: Req, value: Any, kind: str) -> StoredFile | UploadedFile:
        """An InputFile reference: a new upload, or an existing file_id."""
        if isinstance(value, UploadedFile):
            upload = value
        elif value is None or value == "":
            upload_part = req.files.get(kind)
            if upload_part is None:
                raise bad(f"there is no {kind} in the request")
            upload = upload_part
        elif isinstance(value, str) and value.startswith("attach://"):
            part = req.files.get(value.removeprefix("attach://"))
            if part is None:
                raise bad(WRONG_FILE.removeprefix("Bad Request: "))
            upload = part
        elif isinstance(value, str) and value in self._files:
            return self._files[value]
        else:
            # Unknown ids and URLs alike: our bot must upload bytes, never pass URLs.
            raise TelegramError(400, WRONG_FILE)
        if len(upload.data) > UPLOAD_LIMIT or (
            kind == "photo" and len(upload.data) > PHOTO_UPLOAD_LIMIT
        ):
            raise TelegramError(413, "Request Entity Too Large")
        return upload

    def _media_content(self, req: Req, kind: str, value: Any, extra: JSONDict) -> JSONDict:
        """Validate an input file and build the message fields for it (stores nothing yet)."""
        source = self._resolve_file(req, value, kind)
        if isinstance(source, StoredFile):
            if kind == "photo":
                if source.kind != "photo":
                    raise bad(f"can't use file of type {source.kind.title()} as Photo")
                return {"photo": copy.deepcopy(source.meta["sizes"])}
            return {kind: self._file_object(source, kind, source.meta, extra)}
        if kind == "photo":
            self._image_size(source.data)  # validates before anything is stored
        return {"__upload__": (kind, source, extra)}

    def _materialize(self, content: JSONDict) -> JSONDict:
        """Store a pending upload in content, turning it into Telegram's file object."""
        pending = content.pop("__upload__", None)
        if pending is None:
            return content
        kind, upload, extra = pending
        if kind == "photo":
            stored = self._store_photo(upload.data)
            content["photo"] = copy.deepcopy(stored.meta["sizes"])
            return content
        stored = self._store_file(upload.data, kind, upload.filename)
        mime = mimetypes.guess_type(upload.filename)[0] or upload.content_type
        stored.meta = {"file_name": upload.filename, "mime_type": mime}
        if kind in ("video", "animation"):
            width, height = self._media_dims(upload.data, extra)
            stored.meta.update(
                width=width, height=height, duration=int(extra.get("duration") or 0)
            )
        content[kind] = self._file_object(stored, kind, stored.meta, extra)
        if kind == "animation":
            # Telegram also fills `document` for animations, for old clients.
            content["document"] = self._file_object(stored, "document", stored.meta, extra)
        return content

    @staticmethod
    def _media_dims(data: bytes, extra: JSONDict) -> tuple[int, int]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                with Image.open(io.BytesIO(data)) as image:
                    return image.size
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
                return int(extra.get("width") or 0), int(extra.get("height") or 0)

    @staticmethod
    def _file_object(stored: StoredFile, kind: str, meta: JSONDict, extra: JSONDict) -> JSONDict:
        obj: JSONDict = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
        }
        for key in ("file_name", "mime_type"):
            if key in meta:
                obj[key] = meta[key]
        if kind in ("video", "animation"):
            for key in ("width", "height", "duration"):
                value = meta.get(key, extra.get(key))
                obj[key] = value if isinstance(value, int) else 0
        return obj
