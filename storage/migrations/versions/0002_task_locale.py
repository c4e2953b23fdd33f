"""The language each task's messages are shown in (its requester's)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    """Add tasks.locale."""
    op.add_column("tasks", sa.Column("locale", sa.Text, nullable=False, server_default="en"))
