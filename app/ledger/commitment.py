"""Log format 2: a leaf about a person commits to its entry without containing it.

A committed leaf is the RFC 8785 form of ``{"v": 2, "type": T, "commitment": C}``, where ``C``
is the lowercase hex of::

    SHA-256(LABEL || salt || entry)

``LABEL`` is a fixed domain-separation string (so a commitment is never also a leaf hash, a
node hash or any other SHA-256 this service computes), ``salt`` is 32 random bytes, and
``entry`` is the entry's canonical bytes, exactly the leaf format 1 would have written
(:func:`app.ledger.entry.encode_entry`). The label and the salt have fixed lengths, so the
concatenation has one reading. ``(salt, entry)`` is the *opening*: it is stored apart from the
tree, served only to readers entitled to the entry, and deleted when the person is erased.
Deleting it leaves every leaf, and so every checkpoint, proof and receipt, as it was; without
it the leaf says only that an entry of type ``T`` was logged (the salt keeps a guessed entry
from being confirmed against ``C``).

Checking an opening needs SHA-256 and nothing else: no key, no trust in the service
(design.md, "Log format 2"). Pure, like the rest of the ledger: the salt is the caller's
(``secrets.token_bytes(SALT_BYTES)``), so everything here is a function of its inputs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.ledger.entry import decode_entry, encode_entry
from app.ledger.errors import EntryError

__all__ = [
    "COMMITTED_VERSION",
    "LABEL",
    "SALT_BYTES",
    "CommittedLeaf",
    "Opening",
    "commit",
    "commitment",
    "committed_leaf",
    "is_committed",
    "parse_committed_leaf",
    "read_committed_leaf",
]

COMMITTED_VERSION = 2
"""The ``v`` of a committed leaf (format 1 leaves are the whole entry, ``v`` 1)."""

LABEL = b"consent-ledger entry commitment v2\x00"
"""The domain-separation label every commitment starts with (NUL-terminated, fixed)."""

SALT_BYTES = 32

_KEYS = frozenset({"v", "type", "commitment"})
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Opening:
    """What a committed leaf commits to: the salt and the entry's canonical bytes."""

    salt: bytes
    entry: bytes

    def __post_init__(self) -> None:
        if len(self.salt) != SALT_BYTES:
            raise EntryError(f"a salt is {SALT_BYTES} bytes, not {len(self.salt)}")

    def __repr__(self) -> str:  # an opening is personal data: never in a log line by accident
        return f"Opening(salt=<{len(self.salt)} bytes>, entry=<{len(self.entry)} bytes>)"


@dataclass(frozen=True, slots=True)
class CommittedLeaf:
    """A committed leaf, parsed: its entry type and its commitment."""

    entry_type: str
    commitment: bytes

    def opened_by(self, opening: Opening) -> bool:
        """Whether ``opening`` is what this leaf commits to (constant time in the digest)."""
        return hmac.compare_digest(commitment(opening), self.commitment)

    def open(
        self, opening: Opening, decode: Callable[[bytes], dict[str, Any]] = decode_entry
    ) -> dict[str, Any]:
        """The entry ``opening`` holds, once it is shown to be this leaf's and of its type;
        :class:`EntryError` otherwise. ``decode`` may skip the canonical-form check where the
        caller has made it another way."""
        if not self.opened_by(opening):
            raise EntryError("the opening does not match the leaf's commitment")
        entry = decode(opening.entry)
        if entry.get("type") != self.entry_type:
            raise EntryError(
                f"the opening is of type {entry.get('type')!r}, the leaf says {self.entry_type!r}"
            )
        return entry


def commitment(opening: Opening) -> bytes:
    """SHA-256(LABEL || salt || entry)."""
    return hashlib.sha256(LABEL + opening.salt + opening.entry).digest()


# An entry type that RFC 8785 writes as it is between quotes (the service's own types): the
# leaf is then spelled out directly, members in RFC 8785's order, instead of encoded.
_PLAIN_TYPE = re.compile(r"[a-z][a-z0-9_.]{0,63}")


def committed_leaf(entry_type: str, digest: bytes) -> bytes:
    """The leaf bytes committing to an entry of ``entry_type`` with ``digest``."""
    if len(digest) != hashlib.sha256().digest_size:
        raise EntryError(f"a commitment is 32 bytes, not {len(digest)}")
    if _PLAIN_TYPE.fullmatch(entry_type):
        return b'{"commitment":"%s","type":"%s","v":%d}' % (
            digest.hex().encode(),
            entry_type.encode(),
            COMMITTED_VERSION,
        )
    return encode_entry({"v": COMMITTED_VERSION, "type": entry_type, "commitment": digest.hex()})


def commit(entry: dict[str, object], salt: bytes) -> tuple[bytes, Opening]:
    """The committed leaf for ``entry`` (an envelope, as format 1 writes it) and its opening."""
    opening = Opening(salt, encode_entry(entry))
    entry_type = entry.get("type")
    if not isinstance(entry_type, str):
        raise EntryError("an entry's type must be a string")
    return committed_leaf(entry_type, commitment(opening)), opening


def is_committed(value: Mapping[str, object]) -> bool:
    """Whether a decoded leaf is of format 2 (a commitment, not the entry itself)."""
    return value.get("v") == COMMITTED_VERSION


def parse_committed_leaf(leaf: bytes) -> CommittedLeaf:
    """A committed leaf's type and commitment. The leaf must be canonical, hold exactly
    ``v`` (2), ``type`` and ``commitment`` (64 lowercase hex digits), and nothing else:
    :class:`EntryError` names what is wrong otherwise."""
    return read_committed_leaf(decode_entry(leaf))


def read_committed_leaf(value: Mapping[str, object]) -> CommittedLeaf:
    """:func:`parse_committed_leaf` for a leaf already decoded (by a caller that has checked its
    canonical form another way)."""
    if set(value) != _KEYS:
        extra = sorted(set(value) - _KEYS)
        missing = sorted(_KEYS - set(value))
        raise EntryError(
            "a committed leaf holds v, type and commitment only"
            + (f"; extra: {', '.join(extra)}" if extra else "")
            + (f"; missing: {', '.join(missing)}" if missing else "")
        )
    if value["v"] != COMMITTED_VERSION:
        raise EntryError(f"a committed leaf has v {COMMITTED_VERSION}, not {value['v']!r}")
    entry_type, digest = value["type"], value["commitment"]
    if not isinstance(entry_type, str) or not entry_type:
        raise EntryError("a committed leaf's type must be a non-empty string")
    if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _HEX:
        raise EntryError("a committed leaf's commitment must be 64 lowercase hex digits")
    return CommittedLeaf(entry_type, bytes.fromhex(digest))
