"""User images uploaded to Discord, and their URLs."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.migrations.columns import BIG, TIME, id_column

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    """Create uploads."""
    op.create_table(
        "uploads",
        id_column(),
        sa.Column("user_id", BIG, nullable=False),
        sa.Column("file_unique_id", sa.Text, nullable=False),
        sa.Column("account_hash", sa.Text),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("ext", sa.Text, nullable=False),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.Column("created_at", TIME, nullable=False),
    )
    op.create_index("uploads_file", "uploads", ["file_unique_id", "created_at"])
