"""Claims: which process is submitting or delivering a task, and until when its claim holds.

Replicas share the tasks table; a claim that is not renewed (its process died) expires and
another process takes the work over.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.migrations.columns import TIME

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    """Add tasks.claimed_by and tasks.claim_expires."""
    op.add_column("tasks", sa.Column("claimed_by", sa.Text))
    op.add_column("tasks", sa.Column("claim_expires", TIME))
