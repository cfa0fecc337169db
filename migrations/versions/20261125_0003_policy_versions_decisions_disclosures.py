"""policy versions, decisions, disclosures

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 00:55:31.029838
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_policy_versions")),
        sa.UniqueConstraint("ledger_index", name=op.f("uq_policy_versions_ledger_index")),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("subject_ref", sa.String(length=40), nullable=False),
        sa.Column("from_org", sa.String(length=64), nullable=False),
        sa.Column("to_org", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("data_categories", sa.JSON(), nullable=False),
        sa.Column("legal_basis_type", sa.String(length=32), nullable=True),
        sa.Column("legal_basis_reference", sa.String(length=200), nullable=True),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("basis", sa.String(length=16), nullable=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["from_org"], ["organisations.id"], name=op.f("fk_decisions_from_org_organisations")
        ),
        sa.ForeignKeyConstraint(
            ["to_org"], ["organisations.id"], name=op.f("fk_decisions_to_org_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
        sa.UniqueConstraint("ledger_index", name=op.f("uq_decisions_ledger_index")),
    )
    op.create_index(op.f("ix_decisions_made_at"), "decisions", ["made_at"], unique=False)
    op.create_index(op.f("ix_decisions_subject_ref"), "decisions", ["subject_ref"], unique=False)
    op.create_table(
        "disclosures",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("decision_id", sa.String(length=40), nullable=False),
        sa.Column("subject_ref", sa.String(length=40), nullable=False),
        sa.Column("from_org", sa.String(length=64), nullable=False),
        sa.Column("to_org", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("data_categories", sa.JSON(), nullable=False),
        sa.Column("basis", sa.String(length=16), nullable=True),
        sa.Column("legal_basis_type", sa.String(length=32), nullable=True),
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("disclosed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"], ["decisions.id"], name=op.f("fk_disclosures_decision_id_decisions")
        ),
        sa.ForeignKeyConstraint(
            ["from_org"], ["organisations.id"], name=op.f("fk_disclosures_from_org_organisations")
        ),
        sa.ForeignKeyConstraint(
            ["to_org"], ["organisations.id"], name=op.f("fk_disclosures_to_org_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disclosures")),
        sa.UniqueConstraint("ledger_index", name=op.f("uq_disclosures_ledger_index")),
    )
    op.create_index(
        op.f("ix_disclosures_disclosed_at"), "disclosures", ["disclosed_at"], unique=False
    )
    op.create_index(op.f("ix_disclosures_from_org"), "disclosures", ["from_org"], unique=False)
    op.create_index(
        op.f("ix_disclosures_subject_ref"), "disclosures", ["subject_ref"], unique=False
    )
    op.create_index(op.f("ix_disclosures_to_org"), "disclosures", ["to_org"], unique=False)
    op.create_table(
        "disclosure_consents",
        sa.Column("disclosure_id", sa.String(length=40), nullable=False),
        sa.Column("consent_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consents.id"], name=op.f("fk_disclosure_consents_consent_id_consents")
        ),
        sa.ForeignKeyConstraint(
            ["disclosure_id"],
            ["disclosures.id"],
            name=op.f("fk_disclosure_consents_disclosure_id_disclosures"),
        ),
        sa.PrimaryKeyConstraint("disclosure_id", "consent_id", name=op.f("pk_disclosure_consents")),
    )
    op.create_index(
        op.f("ix_disclosure_consents_consent_id"),
        "disclosure_consents",
        ["consent_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_disclosure_consents_consent_id"), table_name="disclosure_consents")
    op.drop_table("disclosure_consents")
    op.drop_index(op.f("ix_disclosures_to_org"), table_name="disclosures")
    op.drop_index(op.f("ix_disclosures_subject_ref"), table_name="disclosures")
    op.drop_index(op.f("ix_disclosures_from_org"), table_name="disclosures")
    op.drop_index(op.f("ix_disclosures_disclosed_at"), table_name="disclosures")
    op.drop_table("disclosures")
    op.drop_index(op.f("ix_decisions_subject_ref"), table_name="decisions")
    op.drop_index(op.f("ix_decisions_made_at"), table_name="decisions")
    op.drop_table("decisions")
    op.drop_table("policy_versions")
