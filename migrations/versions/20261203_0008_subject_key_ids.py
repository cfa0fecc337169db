"""identifier key ids and sealed identifiers on subjects

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 15:00:00.000000

Each identifier mapping records the id of the identifier key it was made under, and the
identifier sealed under that key (AES-GCM), so ``consent-ledger keys rotate-identifier --rekey``
can move it to a new key. Rows from before stay NULL in both: they are under ``identifier.key``
and move when next written about. Downgrading after a rotation leaves the mappings made under
newer keys unreachable by the older code, which knows ``identifier.key`` alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("subjects", sa.Column("key_id", sa.String(length=16), nullable=True))
    op.add_column("subjects", sa.Column("sealed", sa.LargeBinary(), nullable=True))
    op.create_index(op.f("ix_subjects_key_id"), "subjects", ["key_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_subjects_key_id"), table_name="subjects")
    with op.batch_alter_table("subjects") as batch:
        batch.drop_column("sealed")
        batch.drop_column("key_id")
