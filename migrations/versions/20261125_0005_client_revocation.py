"""client revocation

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 01:38:17.644348
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_clients", sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_clients", sa.Column("revoked_index", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_clients") as batch:
        batch.drop_column("revoked_index")
        batch.drop_column("revoked_at")
