"""Tasks, users, chats and the prompts the bot asked for."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.migrations.columns import BIG, TIME, id_column, where

revision = "0001"
down_revision = None


def upgrade() -> None:
    """Create the first tables."""
    op.create_table(
        "tasks",
        id_column(),
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
    )
    op.create_index("tasks_in_flight", "tasks", ["status_rank"], **where("status_rank < 4"))
    op.create_index(
        "tasks_delivery", "tasks", ["delivery"], **where("delivery IN ('pending', 'sending')")
    )
    op.create_index("tasks_parent", "tasks", ["parent_id"])
    op.create_table(
        "users",
        sa.Column("id", BIG, primary_key=True, autoincrement=False),
        sa.Column("username", sa.Text),
        sa.Column("first_name", sa.Text),
        sa.Column("language_code", sa.Text),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("last_seen_at", TIME, nullable=False),
    )
    op.create_table(
        "chats",
        sa.Column("id", BIG, primary_key=True, autoincrement=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("created_at", TIME, nullable=False),
    )
    op.create_table(
        "prompt_requests",
        sa.Column("chat_id", BIG, primary_key=True, autoincrement=False),
        sa.Column("message_id", BIG, primary_key=True, autoincrement=False),
        sa.Column("user_id", BIG, nullable=False),
        sa.Column("task_id", BIG, sa.ForeignKey("tasks.id"), nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )
