"""A log's keys across a rotation (app/ledger/checkpoint.py ``KeyRing``): a checkpoint is
accepted only under a listed key whose period covers its tree size; a failing line of a listed
key rejects the note; lines of other keys are ignored (c2sp.org/signed-note). Notes signed by
two keys are also checked by tlog-scales, a verifier the project did not write."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tlog_scales.signing import Vkey
from tlog_scales.tlog import Checkpoint as OutsideCheckpoint

from app.ledger.checkpoint import (
    Checkpoint,
    CheckpointSigner,
    KeyRing,
    ListedKey,
    sign_checkpoint,
)
from app.ledger.errors import VerificationError

ORIGIN = "example.org/log"
OLD = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
NEW = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
STRANGER = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
WITNESS = CheckpointSigner("witness.example", Ed25519PrivateKey.generate())
# OLD signed sizes 1..10 and was retired; NEW signs from 8 (8..10 was the overlap).
RING = KeyRing([ListedKey(NEW.verifier(), 8), ListedKey(OLD.verifier(), 1, 10)])


def _cp(size: int) -> Checkpoint:
    return Checkpoint(ORIGIN, size, bytes([size]) * 32)


@pytest.mark.parametrize(
    ("size", "signers", "accepted"),
    [
        (5, [OLD], True),
        (5, [NEW], False),  # the new key before its period
        (9, [OLD, NEW], True),
        (9, [OLD], True),
        (9, [NEW], True),
        (10, [OLD], True),
        (11, [OLD], False),  # the retired key after its retirement
        (11, [NEW], True),
        (11, [STRANGER], False),  # never listed
        (11, [NEW, STRANGER], True),  # an unlisted line is ignored
        (11, [NEW, WITNESS], True),  # a cosignature under another name is ignored
        (0, [OLD], False),  # before the first period
    ],
)
def test_a_checkpoint_is_accepted_only_under_a_key_listed_for_its_size(
    size: int, signers: list[CheckpointSigner], accepted: bool
) -> None:
    note = sign_checkpoint(_cp(size), signers)
    if accepted:
        assert RING.verify(note) == _cp(size)
    else:
        with pytest.raises(VerificationError):
            RING.verify(note)


def test_a_failing_line_of_a_listed_key_rejects_the_note_even_beside_a_good_one() -> None:
    good = sign_checkpoint(_cp(9), [OLD, NEW])
    body, lines = good.split("\n\n")
    old_line, new_line = lines.splitlines()
    forged = sign_checkpoint(_cp(10), [NEW]).split("\n\n")[1].strip()  # NEW over another body
    with pytest.raises(VerificationError):
        RING.verify(f"{body}\n\n{old_line}\n{forged}\n")
    assert RING.verify(f"{body}\n\n{old_line}\n{new_line}\n") == _cp(9)


def test_a_note_signed_by_both_keys_verifies_under_each_with_an_outside_verifier() -> None:
    note = sign_checkpoint(_cp(9), [OLD, NEW])
    parsed = OutsideCheckpoint.from_text(note)
    assert len(parsed.signatures) == 2
    for signer in (OLD, NEW):
        parsed.verify(Vkey.from_string(signer.verifier_key()))  # raises if it does not verify
    with pytest.raises(Exception, match="no signature matched"):
        parsed.verify(Vkey.from_string(STRANGER.verifier_key()))


def test_a_ring_is_one_log() -> None:
    with pytest.raises(ValueError, match="origin"):
        KeyRing([ListedKey(NEW.verifier(), 1), ListedKey(WITNESS.verifier(), 1)])
    with pytest.raises(ValueError, match="at least one"):
        KeyRing([])
