"""The bot's database: SQLite by default, PostgreSQL by `DATABASE_URL`; one SQL for both.

Repositories write plain SQL with named parameters (`:name`) in the dialect both servers
speak (upserts as `ON CONFLICT`, no scalar MAX, no date functions); SQLAlchemy's async engine
runs it over aiosqlite or asyncpg. Each call is its own transaction unless made inside
`Database.transaction()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from storage.migrations.upgrade import upgrade

log = logging.getLogger(__name__)

Params = Mapping[str, Any]

# Bound values get a type from their Python value, so PostgreSQL (asyncpg) knows what a
# parameter is where the SQL alone doesn't say (`:x IS NULL`, a SELECT list); None stays
# untyped and takes the type of what it meets.
_BIND_TYPES: dict[type, sa.types.TypeEngine[Any]] = {
    bool: sa.Integer(),
    int: sa.BigInteger(),
    float: sa.Float(precision=53),
    str: sa.Text(),
}


def database_url(url: str | None, path: Path | str) -> sa.URL:
    """The engine URL: `DATABASE_URL` (postgresql://...) when set, else the SQLite file."""
    if not url:
        return sa.URL.create("sqlite+aiosqlite", database=str(path))
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg")
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    raise ValueError(f"DATABASE_URL must be postgresql:// or sqlite://, not {parsed.drivername}")


# How text() finds `:name` in SQL (SQLAlchemy's own pattern), to type only what is used.
_BIND_NAME = re.compile(r"(?<![:\w\x5c]):(\w+)(?!:)")


def _statement(sql: str, params: Params | None) -> tuple[sa.TextClause, dict[str, Any]]:
    statement = sa.text(sql)
    used = set(_BIND_NAME.findall(sql))
    values = {name: value for name, value in (params or {}).items() if name in used}
    binds: list[sa.BindParameter[Any]] = []
    for name, value in values.items():
        if isinstance(value, list | tuple):
            # `IN :ids` with a list: one parameter per item, on both backends.
            binds.append(sa.bindparam(name, expanding=True))
        elif (kind := _BIND_TYPES.get(type(value))) is not None:
            binds.append(sa.bindparam(name, type_=kind))
    return (statement.bindparams(*binds) if binds else statement), values


class Statements:
    """Runs SQL on one connection: the four calls repositories make."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def lock(self, subject: str, key: int | str) -> None:
        """Hold a lock on `subject` `key` until this transaction ends (others wait for it)."""
        if self.connection.dialect.name == "postgresql":
            await self.connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"),
                {"name": f"{subject}:{key}"},
            )
        # SQLite: a writing transaction holds the database's one write lock from its BEGIN.

    async def execute(self, sql: str, params: Params | None = None) -> int:
        """Run one statement and return how many rows it changed."""
        result = await self.connection.execute(*_statement(sql, params))
        return int(result.rowcount)

    async def insert(self, sql: str, params: Params | None = None) -> int:
        """Run one `INSERT ... RETURNING id` and return the new row's id."""
        result = await self.connection.execute(*_statement(sql, params))
        return int(result.scalar_one())

    async def fetch_one(self, sql: str, params: Params | None = None) -> RowMapping | None:
        """The first row of a query, or None."""
        result = await self.connection.execute(*_statement(sql, params))
        return result.mappings().first()

    async def fetch_all(self, sql: str, params: Params | None = None) -> Sequence[RowMapping]:
        """Every row of a query."""
        result = await self.connection.execute(*_statement(sql, params))
        return result.mappings().all()


class Database:
    """The bot's database: an engine shared by the repositories."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # SQLite has one connection: callers take turns in the order they came (asyncio's
        # lock is fair, the pool's queue is not), so jobs asked for together are stored, and
        # queued, in the order they were asked for. PostgreSQL's pool needs no turns.
        self._turn: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    @classmethod
    async def open(cls, target: Path | str | sa.URL, *, migrate: bool = True) -> Database:
        """Connect (creating a SQLite file if needed) and bring the schema up to date."""
        url = target if isinstance(target, sa.URL) else database_url(None, target)
        if url.get_backend_name() == "sqlite" and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        database = cls(_engine(url))
        if migrate:
            await database.migrate()
        return database

    async def migrate(self, revision: str = "head") -> None:
        """Apply the migrations this database has not seen yet, up to `revision`."""
        if self.dialect != "sqlite":
            await upgrade(self.engine, revision)
            return
        # SQLite rebuilds a table to change it, which needs foreign keys off, and that can
        # only be set outside a transaction: a connection of its own does it.
        engine = _engine(self.engine.url, foreign_keys=False)
        try:
            await upgrade(engine, revision)
        finally:
            await engine.dispose()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Statements]:
        """Statements that commit together (or not at all)."""
        async with self._turn, self.engine.connect() as connection:
            # SQLite: this transaction writes, so it takes the write lock when it begins.
            await connection.execution_options(writes=True)
            async with connection.begin():
                yield Statements(connection)

    async def execute(self, sql: str, params: Params | None = None) -> int:
        """Run one statement, commit, and return how many rows it changed."""
        async with self.transaction() as statements:
            return await statements.execute(sql, params)

    async def insert(self, sql: str, params: Params | None = None) -> int:
        """Run one `INSERT ... RETURNING id`, commit, and return the new row's id."""
        async with self.transaction() as statements:
            return await statements.insert(sql, params)

    async def fetch_one(self, sql: str, params: Params | None = None) -> RowMapping | None:
        """The first row of a query, or None."""
        async with self._turn, self.engine.connect() as connection:
            return await Statements(connection).fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Params | None = None) -> Sequence[RowMapping]:
        """Every row of a query."""
        async with self._turn, self.engine.connect() as connection:
            return await Statements(connection).fetch_all(sql, params)

    async def ping(self) -> None:
        """Raise unless the database answers."""
        await self.fetch_one("SELECT 1")

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def _engine(url: sa.URL, *, foreign_keys: bool = True) -> AsyncEngine:
    """An async engine; SQLite connections get WAL and real transactions."""
    if url.get_backend_name() != "sqlite":
        # pre_ping: a connection the server dropped (restart, failover) is replaced, not used.
        return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    # One connection, as before SQLAlchemy: statements queue for it in the order they come
    # (first come, first queued), and no writer ever waits on another's lock.
    engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=300)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own transaction handling is off; the "begin" hook below says BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the writer; NORMAL is durable across process crashes.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # A writing transaction takes the write lock at once (IMMEDIATE), so one that reads and
        # then writes waits its turn (busy_timeout) instead of failing when another writer got
        # in between; reads begin deferred and run beside it (WAL).
        writes = connection.get_execution_options().get("writes", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine
