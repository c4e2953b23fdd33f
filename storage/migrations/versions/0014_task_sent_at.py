"""When the API accepted each task, so the time Midjourney took can be measured."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.migrations.columns import TIME

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    """Add tasks.sent_at (unknown for tasks sent before it)."""
    op.add_column("tasks", sa.Column("sent_at", TIME))
