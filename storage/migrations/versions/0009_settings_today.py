"""Today's Midjourney in /settings: draft, --exp, style and personalization codes, weights."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    """Add the new user_settings columns."""
    op.add_column(
        "user_settings", sa.Column("draft", sa.Integer, nullable=False, server_default="0")
    )
    op.add_column("user_settings", sa.Column("exp", sa.Integer))
    op.add_column("user_settings", sa.Column("sref", sa.Text))
    op.add_column("user_settings", sa.Column("personalize", sa.Text))
    op.add_column("user_settings", sa.Column("sw", sa.Integer))
    op.add_column("user_settings", sa.Column("ow", sa.Integer))
    op.add_column(
        "user_settings", sa.Column("translate", sa.Integer, nullable=False, server_default="1")
    )
