"""Telegram updates received by webhook, kept until handled (so a replica's death loses none)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.migrations.columns import BIG, TIME

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    """Create telegram_updates."""
    op.create_table(
        "telegram_updates",
        sa.Column("update_id", BIG, primary_key=True, autoincrement=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("claimed_by", sa.Text),
        sa.Column("claim_expires", TIME),
        sa.Column("received_at", TIME, nullable=False),
    )
