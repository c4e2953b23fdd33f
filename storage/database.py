"""The bot's database: SQLite by default, PostgreSQL by `DATABASE_URL`; one SQL for both.

Repositories write plain SQL with named parameters (`:name`) in the dialect both servers
speak (upserts as `ON CONFLICT`, no scalar MAX, no date functions). On PostgreSQL,
SQLAlchemy's async engine runs it over asyncpg. On SQLite, SQLAlchemy runs the migrations,
and the statements go to one aiosqlite connection directly, which speaks the same named
parameters: through SQLAlchemy's adapter each statement took five hops to aiosqlite's thread
instead of one, and results waited ten times longer in the benchmark (docs/benchmarks.md).
Each call is its own transaction unless made inside `Database.transaction()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import aiosqlite
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from storage.migrations.upgrade import upgrade

log = logging.getLogger(__name__)

Params = Mapping[str, Any]
Row = Mapping[str, Any]

# Bound values get a type from their Python value, so PostgreSQL (asyncpg) knows what a
# parameter is where the SQL alone doesn't say (`:x IS NULL`, a SELECT list); None stays
# untyped and takes the type of what it meets.
_BIND_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "bool": sa.Integer(),
    "int": sa.BigInteger(),
    "float": sa.Float(precision=53),
    "str": sa.Text(),
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


def holding(word: str) -> str:
    """A LIKE pattern (with ESCAPE '!') for text holding `word`, its `%` and `_` literal."""
    return "%" + word.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"


# How text() finds `:name` in SQL (SQLAlchemy's own pattern), to type only what is used.
_BIND_NAME = re.compile(r"(?<![:\w\x5c]):(\w+)(?!:)")


def _statement(sql: str, params: Params | None) -> tuple[sa.TextClause, dict[str, Any]]:
    used = _bind_names(sql)
    values = {name: value for name, value in (params or {}).items() if name in used}
    kinds = tuple(
        (name, "list" if isinstance(value, list | tuple) else type(value).__name__)
        for name, value in values.items()
    )
    return _text(sql, kinds), values


@functools.lru_cache(maxsize=1024)
def _bind_names(sql: str) -> frozenset[str]:
    return frozenset(_BIND_NAME.findall(sql))


@functools.lru_cache(maxsize=4096)
def _text(sql: str, kinds: tuple[tuple[str, str], ...]) -> sa.TextClause:
    """The statement, parsed once per SQL and kinds of values (text() parses with a regex)."""
    binds: list[sa.BindParameter[Any]] = []
    for name, kind in kinds:
        if kind == "list":
            # `IN :ids` with a list: one parameter per item, on both backends.
            binds.append(sa.bindparam(name, expanding=True))
        elif (bind_type := _BIND_TYPES.get(kind)) is not None:
            binds.append(sa.bindparam(name, type_=bind_type))
    statement = sa.text(sql)
    return statement.bindparams(*binds) if binds else statement


class Statements(Protocol):
    """Runs SQL on one connection: the calls repositories make."""

    async def lock(self, subject: str, key: int | str) -> None:
        """Hold a lock on `subject` `key` until this transaction ends (others wait for it)."""

    async def execute(self, sql: str, params: Params | None = None) -> int:
        """Run one statement and return how many rows it changed."""

    async def insert(self, sql: str, params: Params | None = None) -> int:
        """Run one `INSERT ... RETURNING id` and return the new row's id."""

    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None:
        """The first row of a query (or of a write's RETURNING), or None."""

    async def fetch_all(self, sql: str, params: Params | None = None) -> Sequence[Row]:
        """Every row of a query."""


class _Engine:
    """Statements on a SQLAlchemy connection (PostgreSQL)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def lock(self, subject: str, key: int | str) -> None:
        """A transaction-scoped advisory lock, keyed by a hash of the name."""
        await self.connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"),
            {"name": f"{subject}:{key}"},
        )

    async def execute(self, sql: str, params: Params | None = None) -> int:
        """Run one statement and return how many rows it changed."""
        result = await self.connection.execute(*_statement(sql, params))
        return int(result.rowcount)

    async def insert(self, sql: str, params: Params | None = None) -> int:
        """Run one `INSERT ... RETURNING id` and return the new row's id."""
        result = await self.connection.execute(*_statement(sql, params))
        return int(result.scalar_one())

    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None:
        """The first row, or None."""
        result = await self.connection.execute(*_statement(sql, params))
        # A RowMapping is a mapping by column name (its key type also admits columns).
        return cast(Row | None, result.mappings().first())

    async def fetch_all(self, sql: str, params: Params | None = None) -> Sequence[Row]:
        """Every row."""
        result = await self.connection.execute(*_statement(sql, params))
        return cast(Sequence[Row], result.mappings().all())


class _SQLite:
    """Statements on the one aiosqlite connection (SQLite)."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection

    async def lock(self, subject: str, key: int | str) -> None:
        """Nothing: a writing transaction holds SQLite's one write lock from its BEGIN."""

    async def execute(self, sql: str, params: Params | None = None) -> int:
        """Run one statement and return how many rows it changed."""
        cursor = await self.connection.execute(*_sqlite(sql, params))
        changed = cursor.rowcount
        await cursor.close()
        return changed

    async def insert(self, sql: str, params: Params | None = None) -> int:
        """Run one `INSERT ... RETURNING id` and return the new row's id."""
        rows = await self.connection.execute_fetchall(*_sqlite(sql, params))
        return int(next(iter(rows))[0])

    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None:
        """The first row, or None."""
        rows = await self.connection.execute_fetchall(*_sqlite(sql, params))
        return next((dict(row) for row in rows), None)

    async def fetch_all(self, sql: str, params: Params | None = None) -> Sequence[Row]:
        """Every row."""
        return [dict(row) for row in await self.connection.execute_fetchall(*_sqlite(sql, params))]


def _sqlite(sql: str, params: Params | None) -> tuple[str, dict[str, Any]]:
    """The statement for sqlite3, with each list value (`IN :ids`) spread over parameters."""
    values = dict(params or {})
    for name, value in list(values.items()):
        if isinstance(value, list | tuple):
            del values[name]
            names = [f"{name}__{index}" for index in range(len(value))]
            values.update(zip(names, value, strict=True))
            spread = "(" + ", ".join(f":{item}" for item in names) + ")" if names else "(NULL)"
            sql = re.sub(rf"(?<![:\w]):{name}\b", spread, sql)
    return sql, values


class Database:
    """The bot's database, shared by the repositories."""

    def __init__(self, engine: AsyncEngine, sqlite: aiosqlite.Connection | None = None) -> None:
        # SQLite: migrations and introspection; PostgreSQL: transactions too.
        self.engine = engine
        self._sqlite = sqlite
        # SQLite's one connection: a transaction has it to itself. Statements go to it in the
        # order callers came (aiosqlite's queue; asyncio's lock is fair while one is held), so
        # jobs asked for together are stored, and queued, in that order.
        self._turn = asyncio.Lock()
        # PostgreSQL: single statements are atomic by themselves and go through autocommit
        # connections, one round trip each instead of BEGIN, the statement and COMMIT.
        self._autocommit = None if sqlite is not None else _engine(engine.url, autocommit=True)

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    @classmethod
    async def open(cls, target: Path | str | sa.URL, *, migrate: bool = True) -> Database:
        """Connect (creating a SQLite file if needed) and bring the schema up to date."""
        url = target if isinstance(target, sa.URL) else database_url(None, target)
        sqlite = None
        if url.get_backend_name() == "sqlite" and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            sqlite = await _sqlite_connection(url.database)
        database = cls(_engine(url), sqlite)
        if migrate:
            await database.migrate()
        return database

    async def migrate(self, revision: str = "head") -> None:
        """Apply the migrations this database has not seen yet, up to `revision`."""
        if self._autocommit is not None:
            await upgrade(self.engine, revision)
            # Statements prepared before the schema changed would fail once: start afresh.
            await self._autocommit.dispose()
            return
        # SQLite rebuilds a table to change it, which needs foreign keys off, and that can
        # only be set outside a transaction: a connection of its own does it, in turn.
        engine = _engine(self.engine.url, foreign_keys=False)
        try:
            async with self._turn:
                await upgrade(engine, revision)
        finally:
            await engine.dispose()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Statements]:
        """Statements that commit together (or not at all)."""
        if self._sqlite is None:
            async with self.engine.begin() as connection:
                yield _Engine(connection)
            return
        async with self._turn:
            # IMMEDIATE: the write lock from the start, so a transaction that reads and then
            # writes never finds another writer got in between.
            await self._sqlite.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLite(self._sqlite)
            except BaseException:
                await self._sqlite.execute("ROLLBACK")
                raise
            await self._sqlite.execute("COMMIT")

    @contextlib.asynccontextmanager
    async def _one_statement(self) -> AsyncIterator[Statements]:
        """Where a single statement runs: it is atomic by itself."""
        if self._sqlite is not None:
            if not self._turn.locked():
                # aiosqlite runs statements in the order they are handed to it, and this one
                # is handed over before this task next waits: before any BEGIN after it.
                yield _SQLite(self._sqlite)
                return
            async with self._turn:  # not inside someone else's transaction
                yield _SQLite(self._sqlite)
            return
        assert self._autocommit is not None
        async with self._autocommit.connect() as connection:
            yield _Engine(connection)

    async def execute(self, sql: str, params: Params | None = None) -> int:
        """Run one statement, commit, and return how many rows it changed."""
        async with self._one_statement() as statements:
            return await statements.execute(sql, params)

    async def insert(self, sql: str, params: Params | None = None) -> int:
        """Run one `INSERT ... RETURNING id`, commit, and return the new row's id."""
        async with self._one_statement() as statements:
            return await statements.insert(sql, params)

    async def change_returning(self, sql: str, params: Params | None = None) -> Row | None:
        """Run one `UPDATE ... RETURNING`, commit, and return the changed row, or None."""
        async with self._one_statement() as statements:
            return await statements.fetch_one(sql, params)

    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None:
        """The first row of a query, or None."""
        async with self._one_statement() as statements:
            return await statements.fetch_one(sql, params)

    async def fetch_all(self, sql: str, params: Params | None = None) -> Sequence[Row]:
        """Every row of a query."""
        async with self._one_statement() as statements:
            return await statements.fetch_all(sql, params)

    async def ping(self) -> None:
        """Raise unless the database answers."""
        await self.fetch_one("SELECT 1")

    async def close(self) -> None:
        """Close every connection."""
        if self._sqlite is not None:
            await self._sqlite.close()
        await self.engine.dispose()
        if self._autocommit is not None:
            await self._autocommit.dispose()


async def _sqlite_connection(path: str) -> aiosqlite.Connection:
    """The one connection statements use: autocommit (transactions say BEGIN), WAL."""
    connection = await aiosqlite.connect(path, isolation_level=None)
    connection.row_factory = sqlite3.Row
    # SQLite's own LOWER folds only ASCII; PostgreSQL's folds every letter (in a UTF-8
    # database), so a search for "кот" finds "Кот" on both. SQLite refuses to replace a
    # function while a statement is open on the connection: this comes before the PRAGMAs.
    await connection.create_function("lower", 1, _lower, deterministic=True)
    # WAL lets readers run beside the writer; NORMAL is durable across process crashes.
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "foreign_keys=ON",
        "busy_timeout=5000",
    ):
        await connection.execute(f"PRAGMA {pragma}")
    return connection


def _lower(text: str | None) -> str | None:
    return text.lower() if isinstance(text, str) else text


# How a database out of reach shows itself: SQLAlchemy wraps the drivers' errors, aiosqlite
# raises sqlite3's, and a connection that can't be made is an OSError or a timeout.
STORAGE_ERRORS: tuple[type[BaseException], ...] = (
    sa.exc.SQLAlchemyError,
    sqlite3.Error,
    OSError,
    TimeoutError,
)


_POOL: dict[str, Any] = {"pool_size": 10, "max_overflow": 10, "pool_recycle": 3600}


def _engine(url: sa.URL, *, foreign_keys: bool = True, autocommit: bool = False) -> AsyncEngine:
    """An async engine; on SQLite (migrations, introspection) with WAL and the foreign keys."""
    if url.get_backend_name() != "sqlite":
        # Autocommit connections never hold a transaction: nothing to roll back on return.
        options: dict[str, Any] = (
            {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None} if autocommit else {}
        )
        # A connection the server dropped (a restart, a failover) fails once and is replaced
        # (SQLAlchemy invalidates the pool on a disconnect); no ping before every use, which
        # would double each statement's round trips.
        return create_async_engine(url, **_POOL, **options)
    engine = create_async_engine(url, poolclass=sa.NullPool)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own transaction handling is off; the "begin" hook below says BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # A migration takes the write lock at once: replicas on one file wait their turn.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
