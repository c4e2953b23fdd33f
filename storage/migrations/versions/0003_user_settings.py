"""Per-user preferences (/settings, /language)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.migrations.columns import BIG, TIME

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    """Create user_settings."""
    op.create_table(
        "user_settings",
        sa.Column("user_id", BIG, primary_key=True, autoincrement=False),
        sa.Column("aspect", sa.Text),
        sa.Column("model", sa.Text),
        sa.Column("stylize", sa.Integer),
        sa.Column("raw", sa.Integer, nullable=False, server_default="0"),
        sa.Column("speed", sa.Text),
        sa.Column("originals", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locale", sa.Text),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_index("tasks_user_recent", "tasks", ["user_id", "id"])
