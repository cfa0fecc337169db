"""Witness cosignatures on checkpoints (c2sp.org/tlog-cosignature, Ed25519 ``cosignature/v1``).

A cosignature is a witness's statement that it saw a checkpoint and checked that it extends
every earlier checkpoint of the log it saw: the defence against a log showing different
histories to different people (a split view). It is one more signature line on the checkpoint's
signed note::

    — <witness name> base64(key id || 8-byte big-endian timestamp || Ed25519 signature)

The key id is ``SHA-256(name || 0x0A || 0x04 || public key)[:4]`` and the witness's verifier
key is ``<name>+<hex key id>+<base64(0x04 || public key)>``. The signature is over::

    cosignature/v1
    time <timestamp, decimal seconds>
    <the checkpoint's note text, every line of it>

Pure: no clock is read; whoever checks freshness passes the time in.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from app.ledger import b64
from app.ledger.checkpoint import (
    NoteSignature,
    key_id,
    parse_verifier_key,
    signature_line,
    split_note,
)
from app.ledger.errors import VerificationError

__all__ = [
    "ALG_COSIGNATURE_V1",
    "Cosignature",
    "CosignatureSigner",
    "CosignatureVerifier",
    "cosigned_message",
    "cosigners",
    "with_cosignatures",
]

ALG_COSIGNATURE_V1 = b"\x04"
_LABEL = b"cosignature/v1\n"
_TIMESTAMP = struct.Struct(">Q")
_SIGNATURE_SIZE = 64
_MAX_TIMESTAMP = 2**64 - 1


def cosigned_message(body: bytes, timestamp: int) -> bytes:
    """The bytes a ``cosignature/v1`` signs: the label, the time line, then the note text."""
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise ValueError("a cosignature timestamp is an unsigned 64-bit number of seconds")
    return _LABEL + b"time %d\n" % timestamp + body


@dataclass(frozen=True)
class Cosignature:
    """A verified cosignature: which witness, over which note text, at what time (POSIX s)."""

    witness: str
    key_id: bytes
    timestamp: int
    line: str


class CosignatureVerifier:
    """Checks the cosignatures of one witness, known by its verifier key (type 0x04)."""

    def __init__(self, name: str, public_key: bytes) -> None:
        self._name = name
        self._public_key = bytes(public_key)
        self._key = Ed25519PublicKey.from_public_bytes(self._public_key)
        self._key_id = key_id(name, self._public_key, ALG_COSIGNATURE_V1)

    @classmethod
    def from_verifier_key(cls, vkey: str) -> CosignatureVerifier:
        """Parse a witness verifier key; any defect raises
        :class:`~app.ledger.errors.VerifierKeyError` naming it."""
        return cls(*parse_verifier_key(vkey, ALG_COSIGNATURE_V1))

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    @property
    def public_key(self) -> bytes:
        return self._public_key

    def verifier_key(self) -> str:
        key = b64.encode(ALG_COSIGNATURE_V1 + self._public_key)
        return f"{self._name}+{self._key_id.hex()}+{key}"

    def is_mine(self, line: NoteSignature) -> bool:
        """Whether a signature line claims to be this witness's (name and key id)."""
        return line.name == self._name and line.key_id == self._key_id

    def verify_line(self, body: bytes, line: NoteSignature) -> Cosignature:
        """Check one of this witness's lines over ``body``; raises
        :class:`~app.ledger.errors.VerificationError` unless it verifies."""
        if not self.is_mine(line) or len(line.signature) != _TIMESTAMP.size + _SIGNATURE_SIZE:
            raise VerificationError
        (timestamp,) = _TIMESTAMP.unpack(line.signature[: _TIMESTAMP.size])
        try:
            self._key.verify(line.signature[_TIMESTAMP.size :], cosigned_message(body, timestamp))
        except InvalidSignature:
            raise VerificationError from None
        text = signature_line(line.name, line.key_id, line.signature)
        return Cosignature(self._name, self._key_id, timestamp, text)

    def verify(self, note: str | bytes) -> Cosignature:
        """This witness's cosignature on a signed note (a checkpoint with its log signature,
        or the bare lines a witness answers ``add-checkpoint`` with, appended to the
        checkpoint's text). Raises :class:`~app.ledger.errors.VerificationError` if the note
        carries none, or one that does not verify."""
        body, lines = split_note(note)
        found = None
        for line in lines:
            if self.is_mine(line):
                # As for the log's own key: a failing line from a known key rejects the note.
                found = self.verify_line(body, line)
        if found is None:
            raise VerificationError
        return found


def cosigners(note: str | bytes, witnesses: Iterable[CosignatureVerifier]) -> list[Cosignature]:
    """The cosignatures on ``note`` that verify, one per witness in ``witnesses``.

    A witness's line that does not verify raises
    :class:`~app.ledger.errors.VerificationError` (a forged cosignature is evidence, not
    noise); a witness with no line is simply absent from the answer. The caller decides
    whether the count reaches its quorum. One public key counts once, whatever names it is
    listed under: a key id hashes the name with the key, so whoever holds one witness key can
    sign under any name.
    """
    body, lines = split_note(note)
    found: dict[bytes, Cosignature] = {}
    for witness in witnesses:
        for line in lines:
            if witness.is_mine(line):
                cosignature = witness.verify_line(body, line)
                found.setdefault(witness.public_key, cosignature)
    return list(found.values())


def with_cosignatures(note: str, lines: Iterable[str]) -> str:
    """``note`` with extra signature lines appended (each ``— name base64\\n``), skipping any
    it already carries. The lines must be well formed: the result is checked as a note."""
    _, present = split_note(note)
    have = {signature_line(s.name, s.key_id, s.signature) for s in present}
    result = note + "".join(line for line in dict.fromkeys(lines) if line not in have)
    split_note(result)
    return result


class CosignatureSigner:
    """Makes ``cosignature/v1`` lines: what a witness does. Used by tests to stand in for a
    second, forged witness, and to check :class:`CosignatureVerifier` against itself."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._name = name
        self._private_key = private_key
        public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._verifier = CosignatureVerifier(name, public)

    def verifier(self) -> CosignatureVerifier:
        return self._verifier

    def cosign(self, body: bytes, timestamp: int) -> str:
        """The signature line (with its newline) cosigning note text ``body`` at ``timestamp``."""
        signature = self._private_key.sign(cosigned_message(body, timestamp))
        return signature_line(
            self._name, self._verifier.key_id, _TIMESTAMP.pack(timestamp) + signature
        )
