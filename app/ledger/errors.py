"""Errors raised by the ledger core.

Verification failures are deliberately collapsed into one opaque
:class:`VerificationError` (the approach of pyca/cryptography's Fernet, which raises
``InvalidToken`` for every failed check): a caller that could tell "wrong root" from
"wrong signature" from "malformed proof" would be tempted to treat some of them as
recoverable, and an attacker probing a verifier would learn which byte to change next.
"""

from __future__ import annotations

__all__ = [
    "CheckpointFormatError",
    "EntryError",
    "LedgerError",
    "VerificationError",
    "VerifierKeyError",
]


class LedgerError(Exception):
    """Root of every error the ledger core raises on purpose."""


class EntryError(LedgerError):
    """An entry cannot be turned into a leaf, or a leaf is not a canonical entry.

    Raised for values outside the JSON subset we accept (floats, non-string keys,
    integers outside the I-JSON range, bytes, ...), for leaves over the size limit,
    and for leaf bytes that are not the RFC 8785 canonical form of a JSON object.
    """


class VerificationError(LedgerError):
    """A proof, signature or checkpoint did not verify.

    This is the only error the verification functions raise, whatever the cause, and its
    message never says which check failed.
    """

    def __init__(self, message: str = "verification failed") -> None:
        super().__init__(message)


class CheckpointFormatError(LedgerError):
    """Checkpoint text or fields that do not follow C2SP tlog-checkpoint.

    Only raised when building or parsing checkpoints from trusted inputs; a verifier
    turns it into :class:`VerificationError`.
    """


class VerifierKeyError(LedgerError):
    """A verifier key (``<name>+<key id>+<base64 key>``) that is not well formed.

    Unlike :class:`VerificationError` its message says what is wrong: the key is the
    operator's own input (``verify --key``), a trust anchor they must correct, not a proof an
    attacker could probe for which byte to change next.
    """
