"""Waiting states (aiogram FSM) kept across restarts, and what pruning looks up by age."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.migrations.columns import TIME

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    """Create fsm_states and the indexes pruning uses."""
    op.create_table(
        "fsm_states",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("state", sa.Text),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_index("fsm_states_updated", "fsm_states", ["updated_at"])
    op.create_index("uploads_created", "uploads", ["created_at"])
    op.create_index("prompt_requests_created", "prompt_requests", ["created_at"])
