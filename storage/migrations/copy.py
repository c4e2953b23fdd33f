"""Copy a whole database into an empty one (SQLite to PostgreSQL), counting every row."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.database import Database

log = logging.getLogger(__name__)

# Rows per INSERT: big enough to be quick, small enough for any driver's parameter limit.
_BATCH = 500
# Tables the migrations own, not the bot's data.
_BOOKKEEPING = {"alembic_version", "sqlite_sequence"}


class TargetNotEmpty(RuntimeError):
    """The target database already holds data: copying into it could mix two bots' rows."""


class CountMismatch(RuntimeError):
    """A table holds a different number of rows after the copy than before it."""


@dataclass(frozen=True, slots=True)
class Copied:
    """How many rows of each table were copied."""

    rows: dict[str, int]


async def _tables(db: Database) -> list[sa.Table]:
    """The data tables, in an order where rows that others refer to come first."""

    def reflect(connection: sa.Connection) -> list[sa.Table]:
        metadata = sa.MetaData()
        metadata.reflect(connection)
        return [table for table in metadata.sorted_tables if table.name not in _BOOKKEEPING]

    async with db.engine.connect() as connection:
        return await connection.run_sync(reflect)


async def _count(db: Database, table: str) -> int:
    row = await db.fetch_one(f"SELECT COUNT(*) AS n FROM {table}")
    return int(row["n"]) if row else 0


async def copy_database(source: Database, target: Database) -> Copied:
    """Copy every row of `source` into `target` (both at the newest schema), in one transaction."""
    tables = await _tables(target)
    for table in tables:
        if await _count(target, table.name):
            raise TargetNotEmpty(f"the target's {table.name} table holds rows")
    counts = {table.name: await _count(source, table.name) for table in tables}
    # PostgreSQL (the CLI takes no other target): SQLAlchemy inserts the rows in batches.
    async with target.engine.begin() as connection:
        for table in tables:
            # Tasks point at their parents: by id, a parent always comes first.
            order = " ORDER BY id" if "id" in table.c else ""
            rows = [
                dict(row) for row in await source.fetch_all(f"SELECT * FROM {table.name}{order}")
            ]
            for start in range(0, len(rows), _BATCH):
                await connection.execute(sa.insert(table), rows[start : start + _BATCH])
            log.info("Copied %d rows of %s", len(rows), table.name)
        if target.dialect == "postgresql":
            await _advance_identities(connection, tables)
    copied = {table.name: await _count(target, table.name) for table in tables}
    if copied != counts:
        raise CountMismatch(f"rows before {counts}, after {copied}")
    return Copied(copied)


async def _advance_identities(connection: AsyncConnection, tables: list[sa.Table]) -> None:
    """Number new rows after the copied ones: explicit ids don't move an identity's sequence."""
    for table in tables:
        if "id" not in table.c or not table.c.id.identity:
            continue
        # Task ids also live on in the ledger after their tasks are pruned: never reuse those.
        also = " UNION ALL SELECT MAX(task_id) FROM credit_ledger" if table.name == "tasks" else ""
        largest = f"SELECT MAX(n) FROM (SELECT MAX(id) AS n FROM {table.name}{also}) AS ids"
        await connection.execute(
            sa.text(
                f"""SELECT setval(pg_get_serial_sequence('{table.name}', 'id'),
                                  GREATEST(1, ({largest})), true)"""
            )
        )
