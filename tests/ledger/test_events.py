"""Typed log events (app/ledger/events.py): every entry type round-trips, keeps the leaf bytes
main's writers produced, and a malformed payload is refused naming its field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.ledger.entry import decode_entry, encode_entry
from app.ledger.errors import EntryError
from app.ledger.events import (
    EVENT_TYPES,
    ConsentGranted,
    Event,
    UnknownEntryType,
    envelope,
    parse_entry,
    parse_event,
)
from app.services.log.log_store import make_entry

# Written by main's writers at 04cc6fc (before typed events), through the services: every entry
# type at least once, with and without optional values (a legal basis, evidence, a reason).
STORED_LOG = Path(__file__).parent / "fixtures" / "log-04cc6fc.jsonl"
# Entry types added since (issues 14, 15 and 16), as their writer (envelope and encode_entry) wrote
# them.
ADDED_SINCE = Path(__file__).parent / "fixtures" / "log-format2.jsonl"
LEAVES = STORED_LOG.read_bytes().splitlines() + ADDED_SINCE.read_bytes().splitlines()


def _first(entry_type: str) -> dict[str, Any]:
    return next(e for e in map(decode_entry, LEAVES) if e["type"] == entry_type)


def test_the_stored_log_holds_every_entry_type() -> None:
    assert {decode_entry(leaf)["type"] for leaf in LEAVES} == set(EVENT_TYPES)


@pytest.mark.parametrize("leaf", LEAVES, ids=lambda leaf: decode_entry(leaf)["type"])
def test_an_event_read_from_a_stored_leaf_writes_the_same_bytes(leaf: bytes) -> None:
    logged = parse_entry(decode_entry(leaf))
    assert encode_entry(envelope(logged.event, logged.time)) == leaf


@pytest.mark.parametrize("entry_type", sorted(EVENT_TYPES))
def test_every_entry_type_round_trips(entry_type: str) -> None:
    event = parse_event(_first(entry_type))
    assert type(event) is EVENT_TYPES[entry_type]
    assert entry_type == event.TYPE
    assert type(event).parse(event.data()) == event


@pytest.mark.parametrize("entry_type", sorted(EVENT_TYPES))
def test_envelope_is_the_log_stores_envelope(entry_type: str) -> None:
    event = parse_event(_first(entry_type))
    at = datetime(2026, 12, 3, 12, 0, 0, 5, tzinfo=UTC)
    assert envelope(event, at) == make_entry(entry_type, at, event.data())


def test_a_writer_built_event_has_the_bytes_of_the_stored_one() -> None:
    # Built from values as a writer holds them (datetimes, tuples), not from the payload.
    stored = _first("consent.granted")
    d = stored["data"]
    event = ConsentGranted(
        consent_id=d["consent_id"],
        subject_ref=d["subject_ref"],
        purpose=d["purpose"],
        recipients=tuple(d["recipients"]),
        data_categories=tuple(d["data_categories"]),
        form=d["form"],
        evidence_sha256=d["evidence_sha256"],
        valid_from=None,
        expires_at=None,
        recorded_by=d["recorded_by"],
        client_id=d["client_id"],
    )
    time = datetime.fromisoformat(stored["time"])
    assert encode_entry(envelope(event, time)) == encode_entry(stored)


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.pop(key)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.__setitem__(key, value)


@pytest.mark.parametrize(
    ("entry_type", "damage", "named"),
    [
        ("consent.granted", _drop("purpose"), "consent.granted data.purpose is missing"),
        ("consent.granted", _set("recipients", "tt-leeds"), "data.recipients must be an array"),
        ("consent.granted", _set("recipients", ["a", 7]), "data.recipients[1] must be a string"),
        ("consent.granted", _set("valid_from", "soon"), "data.valid_from must be an RFC 3339"),
        ("consent.granted", _set("expires_at", "2026-12-03T12:00:00"), "data.expires_at must"),
        ("consent.granted", _set("nhs_number", "x"), "data.nhs_number is not a field"),
        ("consent.withdrawn", _set("notify", [{"organisation": "a"}]), "data.notify[0].obligation"),
        ("decision.made", _drop("from"), "decision.made data.from is missing"),
        ("decision.made", _drop("basis"), "decision.made data.basis is missing"),
        ("decision.made", _set("legal_basis", {"type": 1}), "data.legal_basis.type must be a str"),
        ("decision.made", _set("reasons", [{"code": "x"}]), "data.reasons[0].rule is missing"),
        ("disclosure.recorded", _set("consents", None), "data.consents must be an array"),
        ("policy.published", _set("policy", []), "policy.published data.policy must be an object"),
        ("log.rollback_accepted", _set("database_size", True), "data.database_size must be an int"),
        ("client.revoked", _set("client_id", None), "client.revoked data.client_id must be a str"),
    ],
)
def test_a_malformed_payload_names_its_field(
    entry_type: str, damage: Callable[[dict[str, Any]], None], named: str
) -> None:
    entry = _first(entry_type)
    damage(entry["data"])
    with pytest.raises(EntryError) as caught:
        parse_event(entry)
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (_set("time", "yesterday"), "consent.granted time must be an RFC 3339"),
        (_drop("time"), "consent.granted time is missing"),
        (_drop("data"), "consent.granted data is missing"),
        (_set("data", [1]), "consent.granted data must be an object"),
        (_set("v", 2), "consent.granted v must be 1"),
        (_set("extra", 1), "consent.granted extra is not a field"),
    ],
)
def test_a_malformed_envelope_names_its_field(
    change: Callable[[dict[str, Any]], None], named: str
) -> None:
    entry = _first("consent.granted")
    change(entry)
    with pytest.raises(EntryError) as caught:
        parse_entry(entry)
    assert named in str(caught.value)


def test_an_unknown_type_is_told_apart() -> None:
    with pytest.raises(UnknownEntryType):
        parse_event({"v": 1, "type": "bulk", "time": "2026-01-01T00:00:00.000000Z", "data": {}})


def test_every_event_class_is_registered_under_its_type() -> None:
    assert all(issubclass(cls, Event) and t == cls.TYPE for t, cls in EVENT_TYPES.items())
    assert len(EVENT_TYPES) == 19


def test_given_at_is_absent_from_entries_made_before_it_and_round_trips_when_given() -> None:
    # Issue 17 item 2: an imported consent says when it was given; entries without the key
    # (every one written before it existed) still read, as given when recorded.
    stored = _first("consent.granted")
    assert "given_at" not in stored["data"]
    old = parse_event(stored)
    assert isinstance(old, ConsentGranted)
    assert old.given_at is None
    given = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    new = ConsentGranted.parse({**stored["data"], "given_at": "2024-03-01T09:30:00.000000Z"})
    assert new.given_at == given
    assert new.data()["given_at"] == "2024-03-01T09:30:00.000000Z"
    assert ConsentGranted.parse(new.data()) == new
    # One spelling of "not given": absent, so an entry's bytes cannot vary.
    with pytest.raises(EntryError, match="given_at must be left out rather than null"):
        ConsentGranted.parse({**stored["data"], "given_at": None})
