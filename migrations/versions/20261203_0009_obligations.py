"""obligations: what organisations must do after a withdrawal, objection or erasure

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 15:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "obligations",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("cause", sa.String(length=32), nullable=False),
        sa.Column("cause_index", sa.BigInteger(), nullable=False),
        sa.Column("consent_id", sa.String(length=40), nullable=True),
        sa.Column("objection_id", sa.String(length=40), nullable=True),
        sa.Column("purpose", sa.String(length=32), nullable=True),
        sa.Column("disclosures", sa.JSON(), nullable=False),
        sa.Column("subject_ref", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=True),
        sa.Column("acknowledged_by_client", sa.String(length=40), nullable=True),
        sa.Column("acknowledged_index", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_obligations_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_obligations")),
        sa.UniqueConstraint("id", name=op.f("uq_obligations_id")),
    )
    op.create_index(
        op.f("ix_obligations_organisation_id"), "obligations", ["organisation_id"], unique=False
    )
    op.create_index(
        op.f("ix_obligations_subject_ref"), "obligations", ["subject_ref"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_obligations_subject_ref"), table_name="obligations")
    op.drop_index(op.f("ix_obligations_organisation_id"), table_name="obligations")
    op.drop_table("obligations")
