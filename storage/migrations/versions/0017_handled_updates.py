"""Telegram updates marked handled instead of deleted, so a resend is known as a duplicate."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.migrations.columns import TIME, where

revision = "0017"
down_revision = "0016"


def upgrade() -> None:
    """Add telegram_updates.handled_at (NULL: not yet) and the index the sweep reads."""
    op.add_column("telegram_updates", sa.Column("handled_at", TIME))
    # The table now holds a day or two of handled updates; the sweep and the claim renewal
    # read only the few that are not.
    op.create_index(
        "telegram_updates_unhandled",
        "telegram_updates",
        ["claim_expires"],
        **where("handled_at IS NULL"),
    )
