"""Alembic migrations: one history for SQLite and PostgreSQL, applied at start under a lock."""
