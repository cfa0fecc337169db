"""Log format 2's committed leaves (issue 14, item 1, the pure part): a leaf about a person holds
its type and a commitment only, and the opening (salt, canonical entry) re-computes the
commitment with SHA-256 alone.

The canonical bytes and the digest are recomputed here with the ``rfc8785`` package and
``hashlib`` directly, not through our code; properties with hypothesis.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from app.ledger.commitment import (
    LABEL,
    SALT_BYTES,
    Opening,
    commit,
    commitment,
    committed_leaf,
    parse_committed_leaf,
)
from app.ledger.entry import encode_entry
from app.ledger.errors import EntryError
from app.ledger.events import EVENT_TYPES, ConsentGranted, envelope

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), _text)
_payloads = st.dictionaries(_text, _scalars, max_size=6)
_salts = st.binary(min_size=SALT_BYTES, max_size=SALT_BYTES)


def _entry(data: dict[str, object], entry_type: str = "consent.granted") -> dict[str, object]:
    return {"v": 1, "type": entry_type, "time": "2026-12-03T12:00:00.000000Z", "data": data}


def _consent() -> dict[str, object]:
    event = ConsentGranted(
        consent_id="cns_1",
        subject_ref="sub_0123456789abcdef0123456789abcdef",
        purpose="referral",
        recipients=("ea-tt-leeds",),
        data_categories=("identity", "service_status"),
        form="verbal",
        evidence_sha256=None,
        valid_from=None,
        expires_at=None,
        recorded_by="tt-leeds",
        client_id="cl_1",
    )
    return envelope(event, NOW)


@given(_payloads, _salts)
def test_the_commitment_is_sha256_of_label_salt_and_the_canonical_entry(
    data: dict[str, object], salt: bytes
) -> None:
    entry = _entry(data)
    leaf, opening = commit(entry, salt)
    canonical = rfc8785.dumps(entry)
    assert opening == Opening(salt, canonical)
    expected = hashlib.sha256(LABEL + salt + canonical).hexdigest()
    assert json.loads(leaf) == {"v": 2, "type": "consent.granted", "commitment": expected}
    assert leaf == rfc8785.dumps(json.loads(leaf))  # the leaf is canonical itself
    parsed = parse_committed_leaf(leaf)
    assert parsed.opened_by(opening)
    assert parsed.open(opening) == json.loads(canonical)


@given(_payloads, _salts, st.integers(0, 10_000), st.integers(1, 255))
def test_any_change_to_the_opening_fails_to_open_the_leaf(
    data: dict[str, object], salt: bytes, position: int, flip: int
) -> None:
    leaf, opening = commit(_entry(data), salt)
    parsed = parse_committed_leaf(leaf)
    salt_changed = bytearray(opening.salt)
    salt_changed[position % SALT_BYTES] ^= flip
    entry_changed = bytearray(opening.entry)
    entry_changed[position % len(entry_changed)] ^= flip
    for wrong in (
        Opening(bytes(salt_changed), opening.entry),
        Opening(opening.salt, bytes(entry_changed)),
    ):
        assert not parsed.opened_by(wrong)
        with pytest.raises(EntryError):
            parsed.open(wrong)


def test_a_leaf_about_a_person_holds_nothing_of_the_entry() -> None:
    entry = _consent()
    leaf, opening = commit(entry, bytes(SALT_BYTES))
    text = leaf.decode()
    data = entry["data"]
    assert isinstance(data, dict)
    for value in ("sub_0123", "referral", "ea-tt-leeds", "identity", "tt-leeds", "cl_1"):
        assert value in opening.entry.decode()
        assert value not in text
    assert set(json.loads(leaf)) == {"v", "type", "commitment"}


def test_the_same_entry_under_two_salts_gives_unlinkable_leaves() -> None:
    entry = _consent()
    one, _ = commit(entry, bytes(SALT_BYTES))
    two, _ = commit(entry, b"\x01" * SALT_BYTES)
    assert json.loads(one)["commitment"] != json.loads(two)["commitment"]


def test_an_opening_of_another_type_is_refused_even_if_its_digest_matches() -> None:
    entry = _entry({"n": 1}, "objection.recorded")
    _, opening = commit(entry, bytes(SALT_BYTES))
    # A leaf that claims another type for the same commitment.
    leaf = committed_leaf("consent.granted", commitment(opening))
    with pytest.raises(EntryError, match=r"objection\.recorded"):
        parse_committed_leaf(leaf).open(opening)


@pytest.mark.parametrize(
    ("leaf", "problem"),
    [
        ({"v": 2, "type": "consent.granted"}, "missing: commitment"),
        ({"v": 2, "type": "consent.granted", "commitment": "ab" * 32, "x": 1}, "extra: x"),
        ({"v": 1, "type": "consent.granted", "commitment": "ab" * 32}, "v 2"),
        ({"v": 2, "type": "", "commitment": "ab" * 32}, "non-empty string"),
        ({"v": 2, "type": "consent.granted", "commitment": "AB" * 32}, "lowercase hex"),
        ({"v": 2, "type": "consent.granted", "commitment": "ab" * 31}, "64 lowercase"),
        ({"v": 2, "type": "consent.granted", "commitment": 5}, "64 lowercase"),
    ],
    ids=["missing", "extra", "version", "type", "uppercase", "short", "not-text"],
)
def test_a_malformed_committed_leaf_is_refused_naming_why(
    leaf: dict[str, object], problem: str
) -> None:
    with pytest.raises(EntryError, match=problem):
        parse_committed_leaf(encode_entry(leaf))


def test_a_non_canonical_committed_leaf_is_refused() -> None:
    spaced = b'{"commitment": "' + b"ab" * 32 + b'", "type": "consent.granted", "v": 2}'
    with pytest.raises(EntryError, match="canonical"):
        parse_committed_leaf(spaced)


def test_an_opening_never_shows_its_contents_in_a_repr() -> None:
    _, opening = commit(_consent(), bytes(SALT_BYTES))
    assert "sub_" not in repr(opening)
    assert "referral" not in repr(opening)
    with pytest.raises(EntryError, match="32 bytes"):
        Opening(b"short", opening.entry)


def test_every_entry_type_naming_a_person_is_committed_and_no_other() -> None:
    """Whether an entry type is PERSONAL (committed in format 2) follows from its fields:
    the ones naming a subject_ref are, organisations, clients, policies and the log's own
    entries are not."""
    for entry_type, cls in EVENT_TYPES.items():
        names_a_person = "subject_ref" in {f.name for f in dataclasses.fields(cls)}
        assert names_a_person == cls.PERSONAL, entry_type


@given(
    entry_type=st.one_of(st.sampled_from(sorted(EVENT_TYPES)), st.text(min_size=1, max_size=70)),
    digest=st.binary(min_size=32, max_size=32),
)
def test_a_committed_leaf_is_the_rfc8785_form_of_its_three_members(
    entry_type: str, digest: bytes
) -> None:
    # The service's own types are spelled out without the encoder: the bytes must be the same.
    expected = rfc8785.dumps({"v": 2, "type": entry_type, "commitment": digest.hex()})
    assert committed_leaf(entry_type, digest) == expected
