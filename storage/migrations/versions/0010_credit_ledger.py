"""The credits ledger: every change to a balance, which is the ledger's sum.

The partial unique indexes make each task's hold and its settlement, and each Telegram payment
and its refund, happen at most once however often they are asked for.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.migrations.columns import BIG, TIME, id_column, where

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    """Create credit_ledger and its once-only indexes."""
    op.create_table(
        "credit_ledger",
        id_column(),
        sa.Column("user_id", BIG, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("amount", sa.Integer, nullable=False),
        sa.Column("task_id", BIG),
        sa.Column("charge_id", sa.Text),
        sa.Column("stars", sa.Integer),
        sa.Column("reason", sa.Text),
        sa.Column("actor_id", BIG),
        sa.Column("created_at", TIME, nullable=False),
    )
    op.create_index("credit_ledger_user", "credit_ledger", ["user_id", "id"])
    op.create_index("credit_ledger_kind", "credit_ledger", ["kind", "created_at"])
    op.create_index(
        "credit_ledger_hold",
        "credit_ledger",
        ["task_id"],
        unique=True,
        **where("kind = 'reserve'"),
    )
    op.create_index(
        "credit_ledger_settled",
        "credit_ledger",
        ["task_id"],
        unique=True,
        **where("kind IN ('charge', 'release')"),
    )
    op.create_index(
        "credit_ledger_purchase",
        "credit_ledger",
        ["charge_id"],
        unique=True,
        **where("kind = 'purchase'"),
    )
    op.create_index(
        "credit_ledger_refund",
        "credit_ledger",
        ["charge_id"],
        unique=True,
        **where("kind = 'refund'"),
    )
