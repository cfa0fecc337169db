"""signing_keys: the log's signing keys after a rotation, and the checkpoints each may sign

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 17:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
# 0011 is being added on another branch at the same time; the chain is joined at merge.
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("generation", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("vkey", sa.String(length=200), nullable=False),
        sa.Column("first_size", sa.BigInteger(), nullable=False),
        sa.Column("last_size", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("generation", name=op.f("pk_signing_keys")),
        sa.UniqueConstraint("vkey", name=op.f("uq_signing_keys_vkey")),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
