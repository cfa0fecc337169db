"""log, organisations and clients

Revision ID: 0001
Revises:
Create Date: 2026-11-25 00:13:05.526074

The log tables get append-only guards: triggers that refuse UPDATE and DELETE on SQLite, and
row triggers for UPDATE/DELETE plus a statement trigger for TRUNCATE on PostgreSQL. They are
defence in depth; the guarantee is the signed checkpoints that others hold.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


APPEND_ONLY_TABLES = ("log_entries", "log_nodes", "log_checkpoints")
PRIMARY_KEYS = {
    "log_entries": ("idx",),
    "log_nodes": ("level", "idx"),
    "log_checkpoints": ("tree_size",),
}
EMPTY_ROOT = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")

PG_GUARD_FUNCTION = """
CREATE FUNCTION consent_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'consent-ledger: % on % refused: the log is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def _add_append_only_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_GUARD_FUNCTION)
        for table in APPEND_ONLY_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION consent_ledger_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION consent_ledger_append_only()"
            )
        return
    for table in APPEND_ONLY_TABLES:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'consent-ledger: {action} on {table} refused: "
                "the log is append-only'); END"
            )
        # INSERT OR REPLACE deletes the conflicting row without firing DELETE triggers (unless
        # recursive_triggers is on), so refuse any insert onto an existing key as well.
        match = " AND ".join(f"{c} = NEW.{c}" for c in PRIMARY_KEYS[table])
        op.execute(
            f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
            f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {match}) "
            f"BEGIN SELECT RAISE(ABORT, 'consent-ledger: REPLACE on {table} refused: "
            "the log is append-only'); END"
        )


def _drop_append_only_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS consent_ledger_append_only()")
        return
    for table in APPEND_ONLY_TABLES:
        for action in ("update", "delete", "replace"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")


def upgrade() -> None:
    op.create_table(
        "log_checkpoints",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_log_checkpoints")),
    )
    op.create_table(
        "log_entries",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("leaf", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("entry_type", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_log_entries")),
    )
    op.create_index(op.f("ix_log_entries_entry_type"), "log_entries", ["entry_type"], unique=False)
    op.create_table(
        "log_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_log_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_head")),
    )
    op.create_table(
        "log_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_log_nodes")),
    )
    op.create_table(
        "organisations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("funder", sa.String(length=32), nullable=False),
        sa.Column("ods_code", sa.String(length=16), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
    )
    op.create_table(
        "api_clients",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("organisation_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_api_clients_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_clients")),
    )
    op.create_index(
        op.f("ix_api_clients_organisation_id"), "api_clients", ["organisation_id"], unique=False
    )
    log_head = sa.table(
        "log_head",
        sa.column("id", sa.Integer()),
        sa.column("size", sa.BigInteger()),
        sa.column("root_hash", sa.LargeBinary()),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    # The empty tree: size 0, root SHA-256 of the empty string (RFC 9162 section 2.1.1).
    op.execute(
        log_head.insert().values(
            id=1, size=0, root_hash=EMPTY_ROOT, updated_at=sa.func.current_timestamp()
        )
    )
    _add_append_only_guards()


def downgrade() -> None:
    _drop_append_only_guards()
    op.drop_index(op.f("ix_api_clients_organisation_id"), table_name="api_clients")
    op.drop_table("api_clients")
    op.drop_table("organisations")
    op.drop_table("log_nodes")
    op.drop_table("log_head")
    op.drop_index(op.f("ix_log_entries_entry_type"), table_name="log_entries")
    op.drop_table("log_entries")
    op.drop_table("log_checkpoints")
