"""Access control, per-group settings and charged usage."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.migrations.columns import BIG, TIME

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    """Create bot_settings, user_access, chat_access and usage."""
    op.create_table(
        "bot_settings",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "user_access",
        sa.Column("user_id", BIG, primary_key=True, autoincrement=False),
        sa.Column("allowed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("banned", sa.Integer, nullable=False, server_default="0"),
        sa.Column("daily_limit", sa.Integer),
        sa.Column("concurrent_limit", sa.Integer),
    )
    op.create_table(
        "chat_access",
        sa.Column("chat_id", BIG, primary_key=True, autoincrement=False),
        sa.Column("allowed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("enabled", sa.Integer, nullable=False, server_default="1"),
        sa.Column("daily_limit", sa.Integer),
        sa.Column("anyone_presses", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "usage",
        sa.Column("task_id", BIG, sa.ForeignKey("tasks.id"), primary_key=True),
        sa.Column("user_id", BIG, nullable=False),
        sa.Column("chat_id", BIG, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("day", sa.Text, nullable=False),
        sa.Column("charged_at", TIME, nullable=False),
    )
    op.create_index("usage_user_day", "usage", ["user_id", "day"])
    op.create_index("usage_chat_day", "usage", ["chat_id", "day"])
    op.create_index("tasks_created", "tasks", ["created_at"])
