"""`python -m bot migrate --to postgresql://...`: move an owner's SQLite database to PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.runtime.redact import RedactSecrets
from storage.database import Database, database_url
from storage.migrations.copy import CountMismatch, TargetNotEmpty, copy_database


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line: where from (the SQLite file) and where to (an empty PostgreSQL)."""
    parser = argparse.ArgumentParser(
        prog="python -m bot migrate",
        description="Copy the bot's SQLite database into an empty PostgreSQL database.",
    )
    parser.add_argument("--to", required=True, help="postgresql://user:password@host:5432/db")
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=Path(os.environ.get("DATABASE_PATH", "data/bot.sqlite3")),
        help="the SQLite file (default: DATABASE_PATH or data/bot.sqlite3)",
    )
    return parser.parse_args(argv)


async def migrate(source: Path, target: str) -> dict[str, int]:
    """Bring both schemas up to date and copy every row; return the rows copied per table."""
    old = await Database.open(database_url(None, source))
    try:
        new = await Database.open(database_url(target, source))
        try:
            return (await copy_database(old, new)).rows
        finally:
            await new.close()
    finally:
        await old.close()


def main(argv: list[str]) -> None:
    """Run the copy and report it; exit 1 with one line when it can't be done."""
    args = parse(argv)
    try:
        if not args.source.is_file():
            raise FileNotFoundError(f"no SQLite database at {args.source}")
        if make_url(args.to).get_backend_name() != "postgresql":
            raise ValueError("DATABASE_URL must be postgresql://user:password@host:5432/db")
        rows = asyncio.run(migrate(args.source, args.to))
    except (TargetNotEmpty, CountMismatch, FileNotFoundError, ValueError) as error:
        print(f"Not migrated: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except (SQLAlchemyError, OSError) as error:
        # A driver's message may quote the URL, and with it the password.
        password = make_url(args.to).password
        reason = RedactSecrets([args.to, *([password] if password else [])]).redact(str(error))
        print(f"Not migrated: {type(error).__name__}: {reason}", file=sys.stderr)
        raise SystemExit(1) from None
    for table, count in rows.items():
        print(f"{table}: {count} rows")
    print(f"Copied {sum(rows.values())} rows. Set DATABASE_URL to the new database and restart.")
