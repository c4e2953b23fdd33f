"""The schema's version: Alembic brings it up to date at start, one replica at a time."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent
# pg_advisory_xact_lock's key: any constant the bot alone uses ("mjbot" in ASCII).
MIGRATION_LOCK = 0x6D6A626F74


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration, built in code (no alembic.ini to ship)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision: the schema this code reads and writes."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the history ships with the code
        raise RuntimeError("no migrations found")
    return head


def revisions() -> list[str]:
    """Every revision, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply what is missing, up to `revision`, in one transaction under a lock."""
    async with engine.connect() as connection:
        await connection.execution_options(writes=True)
        async with connection.begin():
            if engine.dialect.name == "postgresql":
                # Replicas starting together: the first migrates, the others wait, then
                # find nothing left to do. The lock ends with the transaction.
                await connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
            await connection.run_sync(_upgrade, revision)
            if engine.dialect.name == "sqlite":
                # Migrations run with foreign keys off (SQLite's table rebuilds need it); they
                # are checked whole before the transaction commits.
                broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if broken:
                    raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")


def _upgrade(connection: sa.Connection, revision: str) -> None:
    config = alembic_config(connection)
    current = MigrationContext.configure(connection).get_current_revision()
    if current is None and connection.dialect.name == "sqlite":
        # Databases from before Alembic counted their migrations in PRAGMA user_version,
        # one for one with revisions 0001..0010.
        legacy = connection.exec_driver_sql("PRAGMA user_version").scalar_one()
        if legacy:
            log.info("Database at legacy version %d: recording it for Alembic", legacy)
            command.stamp(config, f"{legacy:04d}")
    command.upgrade(config, revision)
