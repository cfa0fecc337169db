"""How each event changes the projections (app/services/log/projections.py): applied to the log
main's writers wrote, the functions give exactly the rows those writers stored by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from app.ledger.entry import decode_entry
from app.ledger.events import parse_entry
from app.models import ApiClient, Base, Consent
from app.services.container import Ledger
from app.services.log import rebuild
from app.services.log.log_store import make_entry
from app.services.log.projections import InMemory, primary_key, project

# Written by main's writers at 04cc6fc through the services, with every row they stored in the
# projection tables (times in UTC, token hashes left out).
FIXTURES = Path(__file__).parents[2] / "ledger" / "fixtures"
LEAVES = (FIXTURES / "log-04cc6fc.jsonl").read_bytes().splitlines()
STORED_ROWS: dict[str, list[dict[str, Any]]] = json.loads(
    (FIXTURES / "rows-04cc6fc.json").read_text(encoding="utf-8")
)
# Columns the log does not hold by design.
NOT_LOGGED = {ApiClient: {"token_hash"}}
# Columns added since those rows were stored, null on every row then (as their migration
# leaves them): when an imported consent was given (issue 17 item 2).
ADDED_SINCE: dict[type[Base], dict[str, Any]] = {Consent: {"given_at": None}}


def _plain(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


def _projected() -> InMemory:
    tables = InMemory()
    for index, leaf in enumerate(LEAVES):
        logged = parse_entry(decode_entry(leaf))
        project(tables, index, logged.time, logged.event)
    return tables


@pytest.mark.parametrize(("name", "model"), rebuild.TABLES, ids=[n for n, _ in rebuild.TABLES])
def test_the_projection_of_mains_log_is_the_rows_mains_writers_stored(
    name: str, model: type[Base]
) -> None:
    projected = {
        key: {column: _plain(value) for column, value in row.items()}
        for key, row in _projected().of(model).items()
    }
    added = ADDED_SINCE.get(model, {})
    stored = {primary_key(model, row): {**row, **added} for row in STORED_ROWS[model.__tablename__]}
    assert projected == stored
    # Every column but those the log does not hold: a writer inserting the projected row
    # leaves nothing out.
    columns = {c.name for c in inspect(model).columns} - NOT_LOGGED.get(model, set())
    assert all(set(row) == columns for row in projected.values())


@pytest.mark.parametrize(
    ("entry_type", "damage", "named"),
    [
        ("consent.granted", lambda d: d.pop("form"), "consent.granted data.form is missing"),
        (
            "organisation.registered",
            lambda d: d.update(kind=None),
            "organisation.registered data.kind must be a string",
        ),
        ("decision.made", lambda d: d.pop("reasons"), "decision.made data.reasons is missing"),
    ],
)
def test_rebuild_names_the_field_of_a_malformed_entry(
    ledger: Ledger, entry_type: str, damage: Any, named: str
) -> None:
    entry = next(e for e in map(decode_entry, LEAVES) if e["type"] == entry_type)
    damage(entry["data"])
    now = ledger.clock()
    with ledger.db.write() as session:
        (receipt,) = ledger.log_store.append(
            session, [make_entry(entry_type, now, entry["data"])], now
        )
    with ledger.db.read() as session, pytest.raises(rebuild.Unreplayable) as caught:
        rebuild.check(session, ledger.log_store.size(session))
    assert caught.value.index == receipt.index
    assert f"is not a well-formed entry: {named}" in str(caught.value)
