"""Offline receipts in the c2sp.org/tlog-proof@v1 text format.

A proof is, line by line (LF only)::

    c2sp.org/tlog-proof@v1
    [extra <base64>]
    index <decimal, no leading zeros>
    <base64 SHA-256 hash>        (zero or more: the RFC 6962 inclusion path, leaf side first)
    <empty line>
    <the signed checkpoint note, verbatim>

It binds an entry's index to a signed checkpoint, so anyone holding the log's verifier key can
check it offline (the leaf hash comes from what the holder already has: the receipt's
fingerprint). :func:`verify` checks one: the note's signature under a key the holder trusts
(:mod:`app.ledger.checkpoint`), then the path from the fingerprint to the signed root
(:mod:`app.ledger.merkle`), in the order c2sp.org/tlog-proof "Verifying a tlog proof" gives.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.ledger import b64, merkle
from app.ledger.checkpoint import Checkpoint, CheckpointVerifier, KeyRing, ListedKey
from app.ledger.errors import LedgerError, VerificationError
from app.ledger.merkle import HASH_SIZE

__all__ = ["HEADER", "MAX_PATH", "TlogProof", "TlogProofError", "parse", "verify"]

HEADER = "c2sp.org/tlog-proof@v1"
MAX_PATH = 64
"""Longest inclusion path: a tree of at most 2**63 - 1 leaves has a path of at most 63 hashes;
a longer list is refused before any of it is decoded."""

_INDEX_RE = re.compile(r"index (0|[1-9][0-9]{0,18})")


class TlogProofError(LedgerError):
    """Text that is not a well-formed c2sp.org/tlog-proof@v1 proof."""


def _unb64(text: str, what: str) -> bytes:
    # Canonical standard base64 only (RFC 4648 section 4): one value, one spelling.
    try:
        return b64.decode_canonical(text)
    except ValueError as exc:
        raise TlogProofError(f"{what} is {exc}") from None


@dataclass(frozen=True)
class TlogProof:
    """An entry's index, its inclusion path and the signed checkpoint the path leads to."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise TlogProofError("index must be a non-negative integer")
        if len(self.hashes) > MAX_PATH or any(
            not isinstance(h, bytes) or len(h) != HASH_SIZE for h in self.hashes
        ):
            raise TlogProofError("each hash of the path must be 32 bytes")
        # The note is carried verbatim and must be the last thing in the proof; a note that
        # does not end in a newline could not be told apart from one cut short.
        if not self.checkpoint or not self.checkpoint.endswith("\n"):
            raise TlogProofError("the checkpoint must be a signed note ending in a newline")

    def encode(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append("extra " + b64.encode(self.extra))
        lines.append(f"index {self.index}")
        lines.extend(b64.encode(h) for h in self.hashes)
        return "\n".join(lines) + "\n\n" + self.checkpoint


def parse(text: str) -> TlogProof:
    """Parse a proof strictly; any defect raises :class:`TlogProofError` naming it.

    The checkpoint comes back as text, unchecked: the caller verifies it under the key it
    trusts (the proof itself is not trusted for that).
    """
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise TlogProofError("no empty line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise TlogProofError(f"the first line must be {HEADER}")
    rest = lines[1:]
    extra = None
    if rest and rest[0].startswith("extra "):
        extra = _unb64(rest[0][len("extra ") :], "the extra line")
        rest = rest[1:]
    if not rest:
        raise TlogProofError("no index line")
    match = _INDEX_RE.fullmatch(rest[0])
    if match is None:
        raise TlogProofError("the index line must be 'index ' and a decimal with no leading zeros")
    if len(rest) - 1 > MAX_PATH:
        raise TlogProofError(f"more than {MAX_PATH} hashes")
    hashes = []
    for n, line in enumerate(rest[1:], start=1):
        raw = _unb64(line, f"hash {n}")
        if len(raw) != HASH_SIZE:
            raise TlogProofError(f"hash {n} is not 32 bytes")
        hashes.append(raw)
    return TlogProof(int(match.group(1)), tuple(hashes), note, extra)


def verify(
    proof: TlogProof, verifiers: Sequence[CheckpointVerifier], leaf_hash: bytes
) -> tuple[Checkpoint, CheckpointVerifier]:
    """Check ``proof`` offline: its checkpoint must verify under one of ``verifiers`` (the log's
    keys the holder trusts; more than one across a key rotation; a line of any of them that does
    not verify rejects the note), and its path must lead from
    ``leaf_hash`` at its index to that checkpoint's root. Returns the checkpoint and the key
    that signed it; raises :class:`TlogProofError` saying which step failed."""
    try:
        checkpoint, signers = KeyRing([ListedKey(v, 0) for v in verifiers]).signed_by(
            proof.checkpoint
        )
    except ValueError:
        raise TlogProofError("the keys given are not all keys of one log (one origin)") from None
    except VerificationError:
        # A malformed note, another origin, or a line of a given key that does not verify:
        # a forged line beside a good one rejects the note, as signed-note says it should.
        raise TlogProofError("the checkpoint is not signed by the log's key") from None
    if not signers:
        raise TlogProofError("the checkpoint is not signed by the log's key")
    verifier = signers[0].verifier
    if not proof.index < checkpoint.size:
        raise TlogProofError(
            f"entry {proof.index} is not in the signed tree of {checkpoint.size} entries"
        )
    try:
        merkle.verify_inclusion(
            leaf_hash, proof.index, checkpoint.size, proof.hashes, checkpoint.root_hash
        )
    except VerificationError:
        raise TlogProofError(
            f"the proof does not lead from this fingerprint at index {proof.index} to the "
            "signed root: another entry, or a changed proof"
        ) from None
    return checkpoint, verifier
