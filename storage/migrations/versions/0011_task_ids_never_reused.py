"""Task ids are never reused, even after the newest tasks are pruned.

The credits ledger keeps the ids of tasks long pruned; a new task given such an id would meet
an old hold. PostgreSQL numbers tasks by an identity (a sequence never goes back) from 0001.
SQLite reuses the largest rowid after a delete unless the table is AUTOINCREMENT, which only a
rebuild can add (SQLite's documented twelve steps; foreign keys are off while migrating).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.migrations.columns import BIG, TIME, where

revision = "0011"
down_revision = "0010"

COLUMNS = (
    "id, hash, parent_id, type, action, choice, prompt, status, status_rank, progress,"
    " status_reason, prefilter, result, next_actions, account_hash, chat_id, thread_id,"
    " user_id, request_message_id, status_message_id, status_is_photo, result_message_id,"
    " result_file_id, delivery, created_at, updated_at, delivered_at, locale, requester, request"
)


def upgrade() -> None:
    """Rebuild tasks as AUTOINCREMENT on SQLite, numbering on from every id ever used."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_table(
        "tasks_rebuilt",
        sa.Column("id", BIG, primary_key=True),
        sa.Column("hash", sa.Text, unique=True),
        sa.Column("parent_id", BIG, sa.ForeignKey("tasks.id")),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("action", sa.Text),
        sa.Column("choice", sa.Text),
        sa.Column("prompt", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("status_rank", sa.Integer, nullable=False),
        sa.Column("progress", sa.Integer, nullable=False, server_default="0"),
        sa.Column("status_reason", sa.Text),
        sa.Column("prefilter", sa.Text),
        sa.Column("result", sa.Text),
        sa.Column("next_actions", sa.Text),
        sa.Column("account_hash", sa.Text),
        sa.Column("chat_id", BIG, nullable=False),
        sa.Column("thread_id", BIG),
        sa.Column("user_id", BIG, nullable=False),
        sa.Column("request_message_id", BIG),
        sa.Column("status_message_id", BIG),
        sa.Column("status_is_photo", sa.Integer, nullable=False, server_default="0"),
        sa.Column("result_message_id", BIG),
        sa.Column("result_file_id", sa.Text),
        sa.Column("delivery", sa.Text, nullable=False, server_default="none"),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("delivered_at", TIME),
        sa.Column("locale", sa.Text, nullable=False, server_default="en"),
        sa.Column("requester", sa.Text),
        sa.Column("request", sa.Text),
        sqlite_autoincrement=True,
    )
    op.execute(f"INSERT INTO tasks_rebuilt ({COLUMNS}) SELECT {COLUMNS} FROM tasks")
    op.drop_table("tasks")
    op.rename_table("tasks_rebuilt", "tasks")
    # Number on after the largest id the ledger or the table ever held.
    op.execute("DELETE FROM sqlite_sequence WHERE name IN ('tasks', 'tasks_rebuilt')")
    op.execute(
        """INSERT INTO sqlite_sequence (name, seq) SELECT 'tasks', MAX(n) FROM (
               SELECT COALESCE(MAX(id), 0) AS n FROM tasks
               UNION ALL SELECT COALESCE(MAX(task_id), 0) FROM credit_ledger)"""
    )
    op.create_index("tasks_in_flight", "tasks", ["status_rank"], **where("status_rank < 4"))
    op.create_index(
        "tasks_delivery", "tasks", ["delivery"], **where("delivery IN ('pending', 'sending')")
    )
    op.create_index("tasks_parent", "tasks", ["parent_id"])
    op.create_index("tasks_user_recent", "tasks", ["user_id", "id"])
    op.create_index("tasks_created", "tasks", ["created_at"])
    op.create_index("tasks_queued", "tasks", ["id"], **where("status = 'queued'"))
