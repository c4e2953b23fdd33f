"""Fixtures for every suite: throw-away PostgreSQL and Redis, a database on each backend."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from storage.database import database_url
from tests.servers import ServerMissing, postgres_server, redis_server


def _server(start: object, variable: str) -> Iterator[str]:
    try:
        with start() as url:  # type: ignore[operator]
            yield url
    except ServerMissing as missing:
        # CI installs the servers and sets REQUIRE_SERVERS=1: there a missing one fails.
        if os.environ.get("REQUIRE_SERVERS") == "1":
            raise
        pytest.skip(f"{missing} (set {variable} tests aside)")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL cluster for the whole run."""
    yield from _server(postgres_server, "PostgreSQL")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A redis-server for the whole run."""
    yield from _server(redis_server, "Redis")


async def fresh_postgres_database(server: str) -> str:
    """Create an empty database on the test cluster; return its URL."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    engine = create_async_engine(
        database_url(f"{server}/postgres", ""), isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        await engine.dispose()
    return f"{server}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[sa.URL]:
    """An empty database: a SQLite file, then a PostgreSQL database (the same test twice)."""
    if request.param == "sqlite":
        yield database_url(None, tmp_path / "bot.sqlite3")
        return
    server: str = request.getfixturevalue("postgres_url")
    yield database_url(await fresh_postgres_database(server), tmp_path)
