"""log openings (log format 2), and whom recorded responses are about

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 14:40:00.000000

A committed leaf's opening (salt and canonical entry) lives in ``log_openings``, apart from the
tree. Rows may be deleted (that is how a person is erased) but never changed: a trigger refuses
UPDATE, and on SQLite an insert onto an existing index (INSERT OR REPLACE would otherwise
swap an opening without firing a trigger).

``idempotency_subjects`` says which people a recorded response is about, so that erasing a
person also blanks the responses that describe them. Responses recorded before this revision
are filled in from the log: their bodies name the log indexes of what they recorded, and those
entries (all written in the clear, before log format 2) name the person.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PG_GUARD_FUNCTION = """
CREATE FUNCTION consent_ledger_no_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'consent-ledger: % on % refused: an opening is deleted, never changed',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def _indexes(value: Any) -> Iterator[int]:
    """The log indexes a recorded response names: ``ledger.index`` and ``ledger_index``, at any
    depth (a list of decisions names one each)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "ledger_index" and isinstance(item, int):
                yield item
            elif key == "ledger" and isinstance(item, dict) and isinstance(item.get("index"), int):
                yield item["index"]
            else:
                yield from _indexes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _indexes(item)


def _fill_idempotency_subjects() -> None:
    bind = op.get_bind()
    records = bind.execute(sa.text("SELECT client_id, key, body FROM idempotency_records")).all()
    rows = set()
    for client_id, key, body in records:
        try:
            indexes = sorted(set(_indexes(json.loads(body))))
        except ValueError:
            continue
        for index in indexes:
            leaf = bind.execute(
                sa.text("SELECT leaf FROM log_entries WHERE idx = :i"), {"i": index}
            ).scalar()
            try:
                data = json.loads(bytes(leaf)).get("data", {}) if leaf is not None else {}
            except ValueError:
                continue
            if isinstance(data, dict) and isinstance(data.get("subject_ref"), str):
                rows.add((data["subject_ref"], client_id, key))
    if rows:
        bind.execute(
            sa.text(
                "INSERT INTO idempotency_subjects (subject_ref, client_id, key) "
                "VALUES (:subject_ref, :client_id, :key)"
            ),
            [{"subject_ref": r, "client_id": c, "key": k} for r, c, k in sorted(rows)],
        )


def upgrade() -> None:
    op.create_table(
        "log_openings",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("subject_ref", sa.String(length=40), nullable=False),
        sa.Column("salt", sa.LargeBinary(length=32), nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_log_openings")),
    )
    op.create_index(
        op.f("ix_log_openings_subject_ref"), "log_openings", ["subject_ref"], unique=False
    )
    op.create_table(
        "idempotency_subjects",
        sa.Column("subject_ref", sa.String(length=40), nullable=False),
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint(
            "subject_ref", "client_id", "key", name=op.f("pk_idempotency_subjects")
        ),
    )
    _fill_idempotency_subjects()
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_GUARD_FUNCTION)
        op.execute(
            "CREATE TRIGGER log_openings_no_update BEFORE UPDATE ON log_openings "
            "FOR EACH ROW EXECUTE FUNCTION consent_ledger_no_update()"
        )
        return
    op.execute(
        "CREATE TRIGGER log_openings_no_update BEFORE UPDATE ON log_openings "
        "BEGIN SELECT RAISE(ABORT, 'consent-ledger: UPDATE on log_openings refused: an "
        "opening is deleted, never changed'); END"
    )
    op.execute(
        "CREATE TRIGGER log_openings_no_replace BEFORE INSERT ON log_openings "
        "WHEN EXISTS (SELECT 1 FROM log_openings WHERE idx = NEW.idx) "
        "BEGIN SELECT RAISE(ABORT, 'consent-ledger: REPLACE on log_openings refused: an "
        "opening is deleted, never changed'); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS log_openings_no_update ON log_openings")
        op.execute("DROP FUNCTION IF EXISTS consent_ledger_no_update()")
    else:
        op.execute("DROP TRIGGER IF EXISTS log_openings_no_update")
        op.execute("DROP TRIGGER IF EXISTS log_openings_no_replace")
    op.drop_table("idempotency_subjects")
    op.drop_index(op.f("ix_log_openings_subject_ref"), table_name="log_openings")
    op.drop_table("log_openings")
