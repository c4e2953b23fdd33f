"""Column types the revisions share, so both backends get the same schema."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

# SQLite makes only `INTEGER PRIMARY KEY` an alias of its rowid (numbered on insert);
# PostgreSQL needs 64 bits: Telegram chat ids pass 2**31.
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# UNIX times with fractions: REAL on SQLite, double precision on PostgreSQL.
TIME = sa.Float(precision=53)


def id_column() -> sa.Column[int]:
    """A row number that is never reused: an identity on PostgreSQL (SQLite: see 0011)."""
    return sa.Column("id", BIG, sa.Identity(), primary_key=True)


def where(condition: str) -> dict[str, Any]:
    """The keyword arguments that make an index partial on both backends."""
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}
