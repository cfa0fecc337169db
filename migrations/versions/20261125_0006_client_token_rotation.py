"""client token rotation

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 02:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_clients", sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_clients", sa.Column("rotated_index", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_clients") as batch:
        batch.drop_column("rotated_index")
        batch.drop_column("rotated_at")
