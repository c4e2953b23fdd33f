"""Results a user removed from their history (the gallery's "Remove"): hidden, not deleted.

Gallery revision (issue 22): another branch may add its own 0015; renumber on merge.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.migrations.columns import TIME

revision = "0015"
down_revision = "0014"


def upgrade() -> None:
    """Add tasks.hidden_at (NULL: shown)."""
    op.add_column("tasks", sa.Column("hidden_at", TIME))
