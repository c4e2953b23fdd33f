"""Uploads: user images the bot put on Discord through userapi, and where they now live."""

from __future__ import annotations

import time
from dataclasses import dataclass

from storage.database import Database

# Discord attachment links expire after about a day; reuse an upload only well before that.
REUSE_SECONDS = 6 * 3600


@dataclass(frozen=True, slots=True)
class UploadRecord:
    """One uploaded image: the Telegram file it came from and its Discord URL."""

    file_unique_id: str
    account_hash: str | None
    url: str
    ext: str
    width: int | None
    height: int | None


class UploadRepo:
    """Remembers uploads so the same photo is not uploaded twice to the same account."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, user_id: int, record: UploadRecord) -> None:
        """Remember an upload."""
        await self._db.execute(
            """INSERT INTO uploads
                   (user_id, file_unique_id, account_hash, url, ext, width, height, created_at)
               VALUES (:user_id, :file_unique_id, :account_hash, :url, :ext, :width, :height,
                       :now)""",
            {
                "user_id": user_id,
                "file_unique_id": record.file_unique_id,
                "account_hash": record.account_hash,
                "url": record.url,
                "ext": record.ext,
                "width": record.width,
                "height": record.height,
                "now": time.time(),
            },
        )

    async def recent(self, file_unique_id: str, account_hash: str | None) -> UploadRecord | None:
        """A fresh enough upload of this file (to this account, or any when None)."""
        same_account = "" if account_hash is None else "AND account_hash = :account"
        row = await self._db.fetch_one(
            f"""SELECT * FROM uploads
                WHERE file_unique_id = :file AND created_at > :since {same_account}
                ORDER BY created_at DESC LIMIT 1""",
            {
                "file": file_unique_id,
                "since": time.time() - REUSE_SECONDS,
                "account": account_hash,
            },
        )
        if row is None:
            return None
        return UploadRecord(
            row["file_unique_id"],
            row["account_hash"],
            row["url"],
            row["ext"],
            row["width"],
            row["height"],
        )
