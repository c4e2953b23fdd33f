"""Status messages shared by replicas: the preview each shows, and whose turn it is to change it.

A task's progress webhooks reach any replica; each changes the task's status message only in
its turn (numbered, with an expiry, like a claim), reading from here which message that is.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.migrations.columns import TIME

revision = "0016"
down_revision = "0015"


def upgrade() -> None:
    """Add tasks.status_preview, tasks.status_turn and tasks.status_turn_until."""
    op.add_column("tasks", sa.Column("status_preview", sa.Text))
    op.add_column(
        "tasks", sa.Column("status_turn", sa.Integer, nullable=False, server_default="0")
    )
    op.add_column("tasks", sa.Column("status_turn_until", TIME))
