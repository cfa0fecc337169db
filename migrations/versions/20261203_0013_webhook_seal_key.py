"""webhook_seal_key: the id of the one webhook seal key of this database

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 18:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_seal_key",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_webhook_seal_key_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_seal_key")),
    )


def downgrade() -> None:
    op.drop_table("webhook_seal_key")
