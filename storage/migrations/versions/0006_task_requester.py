"""Who asked, as shown under results in groups."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    """Add tasks.requester."""
    op.add_column("tasks", sa.Column("requester", sa.Text))
