"""Witness cosignatures (c2sp.org/tlog-cosignature): made, checked, counted, refused.

Interoperability with a witness we did not write is shown in tests/server/test_witnesses.py
(aics-witness); these tests pin our own reading of the format.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.ledger.checkpoint import Checkpoint, CheckpointSigner, split_note
from app.ledger.cosignature import (
    CosignatureSigner,
    CosignatureVerifier,
    cosigned_message,
    cosigners,
    with_cosignatures,
)
from app.ledger.errors import VerificationError, VerifierKeyError

ORIGIN = "example.org/consent-ledger"


def _note(size: int = 5, root: bytes = b"\x11" * 32) -> str:
    signer = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
    return signer.sign(Checkpoint(ORIGIN, size, root))


def _witness(name: str = "witness.example/w1") -> CosignatureSigner:
    return CosignatureSigner(name, Ed25519PrivateKey.generate())


def test_a_cosignature_signs_the_label_the_time_and_the_whole_note_text() -> None:
    body = b"origin\n5\nAAAA\n"
    assert cosigned_message(body, 1700000000) == b"cosignature/v1\ntime 1700000000\n" + body


def test_a_cosigned_note_verifies_under_the_witness_key_and_says_when() -> None:
    witness = _witness()
    note = _note()
    body, _ = split_note(note)
    cosigned = with_cosignatures(note, [witness.cosign(body, 1_800_000_000)])
    verifier = CosignatureVerifier.from_verifier_key(witness.verifier().verifier_key())
    found = verifier.verify(cosigned)
    assert (found.witness, found.timestamp) == ("witness.example/w1", 1_800_000_000)
    assert found.line in cosigned


def test_a_cosignature_moved_to_another_checkpoint_does_not_verify() -> None:
    witness = _witness()
    note, other = _note(size=5), _note(size=6)
    line = witness.cosign(split_note(note)[0], 1_800_000_000)
    with pytest.raises(VerificationError):
        witness.verifier().verify(with_cosignatures(other, [line]))


def test_a_changed_timestamp_breaks_the_cosignature() -> None:
    witness = _witness()
    note = _note()
    line = witness.cosign(split_note(note)[0], 1_800_000_000)
    name, blob = line[2:].split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[4 + 7] ^= 1  # the timestamp's last byte
    forged = f"— {name} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(VerificationError):
        witness.verifier().verify(note + forged)


def test_cosigners_counts_each_known_witness_once_and_ignores_strangers() -> None:
    w1, w2, stranger = _witness("w1.example"), _witness("w2.example"), _witness("w3.example")
    note = _note()
    body, _ = split_note(note)
    cosigned = with_cosignatures(
        note, [w1.cosign(body, 1), w1.cosign(body, 1), stranger.cosign(body, 2)]
    )
    found = cosigners(cosigned, [w1.verifier(), w2.verifier()])
    assert [c.witness for c in found] == ["w1.example"]


def test_a_forged_line_from_a_known_witness_rejects_the_note() -> None:
    w1 = _witness("w1.example")
    impostor = CosignatureSigner("w1.example", Ed25519PrivateKey.generate())
    note = _note()
    body, _ = split_note(note)
    good = w1.cosign(body, 1)
    # Same name and key id as w1, another key's signature: a forgery, not noise.
    bad_sig = base64.b64decode(impostor.cosign(body, 1).split(" ")[2])[4:]
    key_id = base64.b64decode(good.split(" ")[2])[:4]
    forged = f"— w1.example {base64.b64encode(key_id + bad_sig).decode()}\n"
    with pytest.raises(VerificationError):
        cosigners(note + forged, [w1.verifier()])


def _with_algorithm(vkey: str, algorithm: bytes) -> str:
    name, id_hex, key = vkey.split("+", 2)
    raw = algorithm + base64.b64decode(key)[1:]
    return f"{name}+{id_hex}+{base64.b64encode(raw).decode()}"


@pytest.mark.parametrize(
    ("mangle", "why"),
    [
        (lambda v: _with_algorithm(v, b"\x01"), "algorithm byte is 0x01"),
        (lambda v: "x" + v, "key id mismatch"),
        (lambda v: "+".join(v.split("+", 2)[:2]), "three parts"),
    ],
)
def test_a_witness_key_that_is_almost_right_is_refused_with_the_reason(mangle, why) -> None:
    vkey = _witness().verifier().verifier_key()
    CosignatureVerifier.from_verifier_key(vkey)  # the unmangled key is fine
    with pytest.raises(VerifierKeyError, match=why):
        CosignatureVerifier.from_verifier_key(mangle(vkey))


def test_a_log_key_is_not_a_witness_key() -> None:
    log_vkey = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate()).verifier_key()
    with pytest.raises(VerifierKeyError, match="algorithm byte is 0x01"):
        CosignatureVerifier.from_verifier_key(log_vkey)


def test_with_cosignatures_keeps_the_log_signature_and_adds_each_line_once() -> None:
    witness = _witness()
    note = _note()
    line = witness.cosign(split_note(note)[0], 7)
    once = with_cosignatures(note, [line])
    assert with_cosignatures(once, [line]) == once
    assert once.startswith(note)
    assert once.count("\n— ") == 2


def test_one_witness_key_under_two_names_counts_once() -> None:
    # A key id hashes the name with the key: one key holder can sign under any name.
    key = Ed25519PrivateKey.generate()
    one, alias = CosignatureSigner("w1.example", key), CosignatureSigner("w2.example", key)
    note = _note()
    body, _ = split_note(note)
    cosigned = with_cosignatures(note, [one.cosign(body, 1), alias.cosign(body, 1)])
    assert len(cosigners(cosigned, [one.verifier(), alias.verifier()])) == 1
