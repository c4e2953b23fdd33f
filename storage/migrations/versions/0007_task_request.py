"""Each job's request as a value (JSON), so the queue of waiting jobs survives a restart."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.migrations.columns import where

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    """Add tasks.request and the index the queue reads."""
    op.add_column("tasks", sa.Column("request", sa.Text))
    op.create_index("tasks_queued", "tasks", ["id"], **where("status = 'queued'"))
