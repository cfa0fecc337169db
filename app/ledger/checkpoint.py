"""Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed-note envelopes, Ed25519.

A checkpoint body (c2sp.org/tlog-checkpoint, "Note text")::

    <origin>\\n<tree size, decimal>\\n<base64 root hash>\\n[<extension line>\\n ...]

A signed note (c2sp.org/signed-note, "Format") is the body, a blank line, then one or more
signature lines ``— <key name> <base64(4-byte key id || signature)>\\n`` (U+2014, space).
The Ed25519 signature is over the body bytes, final newline included. In this project the
key name is the log's origin.

Verification is fail-closed: :meth:`CheckpointVerifier.verify` returns a
:class:`Checkpoint` only if a signature line carrying *our* key name and key id verifies
over the exact body, no line claiming our key fails, the envelope is well formed, and the
body parses as a checkpoint for our origin. Every other outcome is one opaque
:class:`~app.ledger.errors.VerificationError`. Lines from other keys (witness
co-signatures, a rotated key) are ignored, as signed-note requires.

A log whose key was rotated has several keys under its one name (the origin), each valid for
the checkpoints of its own period: :class:`KeyRing` verifies against all of them at once, and a
checkpoint is accepted only under a key whose period covers its tree size.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from app.ledger import b64
from app.ledger.errors import (
    CheckpointFormatError,
    LedgerError,
    VerificationError,
    VerifierKeyError,
)
from app.ledger.merkle import HASH_SIZE

__all__ = [
    "MAX_SIGNATURES",
    "MAX_TREE_SIZE",
    "Checkpoint",
    "CheckpointSigner",
    "CheckpointVerifier",
    "KeyRing",
    "ListedKey",
    "NoteSignature",
    "key_id",
    "load_private_key_pem",
    "note_signers",
    "parse_verifier_key",
    "private_key_pem",
    "sign_checkpoint",
    "signature_line",
    "split_note",
    "verify_note",
]

MAX_SIGNATURES = 100
"""Most signature lines a note may carry (signed-note: verifiers SHOULD set a limit and
MUST accept at least 16; golang.org/x/mod/sumdb/note uses 100)."""

MAX_TREE_SIZE = 2**63 - 1
"""Largest tree size a checkpoint may state; fits a signed 64-bit database column."""

_ALG_ED25519 = b"\x01"
_SIG_PREFIX = "\u2014 "  # em dash, space
_ED25519_KEY_SIZE = 32
_ED25519_SIG_SIZE = 64
_KEY_ID_SIZE = 4
_SIZE_RE = re.compile(r"0|[1-9][0-9]*")
_HEX8_RE = re.compile(r"[0-9a-f]{8}")


def _is_valid_key_name(name: str) -> bool:
    """signed-note: key names are non-empty, with no Unicode spaces and no plus (U+002B)."""
    return bool(name) and "+" not in name and not any(ch.isspace() or ord(ch) < 0x20 for ch in name)


_CONTROL_RE = re.compile(r"[\x00-\x1f]")


def _has_control(text: str) -> bool:
    # signed-note forbids ASCII control characters other than newline anywhere in a note.
    # A regex, not a per-character loop: `verify` checks every stored checkpoint.
    return _CONTROL_RE.search(text) is not None


def key_id(name: str, public_key: bytes, algorithm: bytes = _ALG_ED25519) -> bytes:
    """The 4-byte signed-note key id of an Ed25519 key (c2sp.org/signed-note, "Ed25519").

    ``SHA-256(key name || 0x0A || algorithm || 32-byte Ed25519 public key)[:4]``; the
    algorithm byte is 0x01 for note signatures, 0x04 for cosignature/v1 (tlog-cosignature).
    """
    if len(public_key) != _ED25519_KEY_SIZE:
        raise ValueError("an Ed25519 public key is 32 bytes")
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + algorithm + public_key).digest()
    return digest[:_KEY_ID_SIZE]


def parse_verifier_key(vkey: str, algorithm: bytes = _ALG_ED25519) -> tuple[str, bytes]:
    """Parse ``<name>+<8 lowercase hex key id>+<base64(algorithm || public key)>`` and return
    the key name and the raw 32-byte Ed25519 public key.

    The key id must be the one the name and key hash to, the algorithm byte must be
    ``algorithm`` (0x01 for a log's note key, 0x04 for a witness's cosignature key) and the
    key 32 bytes of a valid Ed25519 public key. Any defect raises
    :class:`~app.ledger.errors.VerifierKeyError` naming it: a verifier key is a trust anchor,
    and one that is almost right must not be half-accepted.
    """
    if not isinstance(vkey, str):
        raise VerifierKeyError("a verifier key is text")
    parts = vkey.split("+", 2)  # the base64 key may itself contain '+'
    if len(parts) != 3:
        raise VerifierKeyError(
            "a verifier key has three parts joined by '+': <name>+<key id>+<base64 key>"
        )
    name, id_hex, key_b64 = parts
    if not _is_valid_key_name(name):
        raise VerifierKeyError(
            f"the key name {name!r} is not a signed-note key name "
            "(non-empty, with no spaces or control characters)"
        )
    if not _HEX8_RE.fullmatch(id_hex):
        raise VerifierKeyError(f"the key id {id_hex!r} is not 8 lowercase hex digits")
    try:
        raw = b64.decode_canonical(key_b64)
    except ValueError as exc:
        raise VerifierKeyError(f"the key is {exc} (RFC 4648 standard, padded)") from None
    if len(raw) != 1 + _ED25519_KEY_SIZE:
        raise VerifierKeyError(
            f"the key holds {len(raw)} bytes; an Ed25519 verifier key holds "
            f"{1 + _ED25519_KEY_SIZE}: the algorithm byte 0x{algorithm[0]:02x}, then the "
            "public key"
        )
    if raw[:1] != algorithm:
        raise VerifierKeyError(
            f"the algorithm byte is 0x{raw[0]:02x}; only 0x{algorithm[0]:02x} (Ed25519) is "
            "supported"
        )
    public_key = raw[1:]
    try:
        Ed25519PublicKey.from_public_bytes(public_key)
    except (ValueError, UnsupportedAlgorithm):
        raise VerifierKeyError("the key is not an Ed25519 public key") from None
    expected = key_id(name, public_key, algorithm)
    if expected.hex() != id_hex:
        raise VerifierKeyError(
            f"key id mismatch: the name and key hash to {expected.hex()}, "
            f"not {id_hex}; the name, the id or the key was changed"
        )
    return name, public_key


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the origin, the tree size and the root hash (c2sp.org/tlog-checkpoint).

    Construction validates the fields so that :meth:`body` always produces text that
    :meth:`from_body` parses back to an equal value; invalid fields raise
    :class:`~app.ledger.errors.CheckpointFormatError`.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin or _has_control(self.origin):
            raise CheckpointFormatError("origin must be a non-empty line of text")
        if (
            not isinstance(self.size, int)
            or isinstance(self.size, bool)
            or not 0 <= self.size <= MAX_TREE_SIZE
        ):
            raise CheckpointFormatError("tree size must be an integer in [0, 2**63 - 1]")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise CheckpointFormatError("root hash must be 32 bytes")
        if not isinstance(self.extensions, tuple) or not all(
            isinstance(line, str) and line and not _has_control(line) for line in self.extensions
        ):
            raise CheckpointFormatError("extension lines must be non-empty lines of text")

    def body(self) -> bytes:
        """The note text: origin, size, base64 root, extension lines, each ending in LF."""
        lines = [self.origin, str(self.size), b64.encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines).encode("utf-8")

    @classmethod
    def from_body(cls, body: bytes) -> Checkpoint:
        """Parse note text strictly (c2sp.org/tlog-checkpoint, "Note text").

        At least three non-empty lines, each ending in LF; a non-empty origin; a decimal
        size with no sign and no leading zeros (``0`` excepted); a canonical base64 root
        of exactly 32 bytes; non-empty extension lines. No control characters other than
        the line feeds. Raises :class:`~app.ledger.errors.CheckpointFormatError`.
        """
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointFormatError("checkpoint is not UTF-8") from exc
        if not text.endswith("\n"):
            raise CheckpointFormatError("checkpoint must end with a newline")
        # split("\n"), not splitlines(): only LF separates lines in a note.
        lines = text[:-1].split("\n")
        if len(lines) < 3 or any(not line or _has_control(line) for line in lines):
            raise CheckpointFormatError("checkpoint needs three or more non-empty lines")
        origin, size_text, root_text, *extensions = lines
        # A regex over [0-9], not int(): int() also accepts "+1", " 1", "1_0" and
        # non-ASCII digits.
        if not _SIZE_RE.fullmatch(size_text) or len(size_text) > 19:
            raise CheckpointFormatError("tree size must be a decimal without leading zeros")
        try:
            root = b64.decode_canonical(root_text)
        except ValueError as exc:
            raise CheckpointFormatError("root hash must be canonical base64") from exc
        return cls(origin, int(size_text), root, tuple(extensions))


class CheckpointVerifier:
    """Verifies notes signed by one Ed25519 key (c2sp.org/signed-note).

    Build it from the published verifier key with :meth:`from_verifier_key`.
    """

    def __init__(self, name: str, public_key: bytes) -> None:
        if not _is_valid_key_name(name):
            raise ValueError("invalid signed-note key name")
        if len(public_key) != _ED25519_KEY_SIZE:
            raise ValueError("an Ed25519 public key is 32 bytes")
        self._name = name
        self._public_key = bytes(public_key)
        self._key = Ed25519PublicKey.from_public_bytes(self._public_key)
        self._key_id = key_id(name, self._public_key)

    @classmethod
    def from_verifier_key(cls, vkey: str) -> CheckpointVerifier:
        """Parse ``<name>+<8 lowercase hex key id>+<base64(0x01 || public key)>``
        (:func:`parse_verifier_key`)."""
        name, public_key = parse_verifier_key(vkey)
        verifier = cls(name, public_key)
        return verifier

    @property
    def name(self) -> str:
        """The key name (for our log, its origin)."""
        return self._name

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id."""
        return self._key_id

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return self._public_key

    def verifier_key(self) -> str:
        """The verifier key string this verifier was, or could have been, built from."""
        return f"{self._name}+{self._key_id.hex()}+{b64.encode(_ALG_ED25519 + self._public_key)}"

    def verify_signature(self, body: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature over ``body`` (RFC 8032)."""
        if len(signature) != _ED25519_SIG_SIZE:
            return False
        try:
            self._key.verify(signature, body)
        except InvalidSignature:
            return False
        return True

    def verify(self, note: str | bytes) -> Checkpoint:
        """Verify a signed checkpoint from this log and return it.

        Raises :class:`~app.ledger.errors.VerificationError` unless the note verifies
        under :func:`verify_note` and its body is a well-formed checkpoint whose origin
        is this key's name.
        """
        body = verify_note(note, self)
        try:
            checkpoint = Checkpoint.from_body(body)
        except CheckpointFormatError:
            raise VerificationError from None
        if checkpoint.origin != self._name:
            raise VerificationError
        return checkpoint


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a signed note: the key name, the 4-byte key id and what follows
    it (for Ed25519 note keys the signature; for a witness's cosignature the timestamp and the
    signature, c2sp.org/tlog-cosignature)."""

    name: str
    key_id: bytes
    signature: bytes


def split_note(note: str | bytes) -> tuple[bytes, list[NoteSignature]]:
    """Split a signed note into its text (the signed body) and its signature lines, checking
    only the envelope (c2sp.org/signed-note): valid UTF-8 with no control characters but LF;
    text, then a blank line (the *last* one in the note), then 1 to :data:`MAX_SIGNATURES`
    lines of ``— <valid key name> <canonical base64 of at least 5 bytes>``. No signature is
    checked here. Anything else raises :class:`~app.ledger.errors.VerificationError`.
    """
    try:
        text = note.encode("utf-8").decode("utf-8") if isinstance(note, str) else note.decode()
    except (UnicodeError, AttributeError):
        # str.encode fails on lone surrogates; bytes.decode on invalid UTF-8.
        raise VerificationError from None
    if _has_control(text.replace("\n", "")):
        raise VerificationError
    split = text.rfind("\n\n")
    if split < 0:
        raise VerificationError
    body, sig_block = text[: split + 1], text[split + 2 :]
    if not sig_block.endswith("\n"):
        raise VerificationError
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise VerificationError
    signatures = []
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise VerificationError
        name, sep, sig_b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not _is_valid_key_name(name):
            raise VerificationError
        try:
            raw = b64.decode_canonical(sig_b64)
        except ValueError:
            raise VerificationError from None
        if len(raw) < _KEY_ID_SIZE + 1:
            raise VerificationError
        signatures.append(NoteSignature(name, raw[:_KEY_ID_SIZE], raw[_KEY_ID_SIZE:]))
    return body.encode("utf-8"), signatures


def signature_line(name: str, key_id: bytes, signature: bytes) -> str:
    """One signature line, ``— <name> <base64(key id || signature)>``, with its newline."""
    return f"{_SIG_PREFIX}{name} {b64.encode(key_id + signature)}\n"


def verify_note(note: str | bytes, verifier: CheckpointVerifier) -> bytes:
    """Verify a signed note against one key and return its text (the signed body).

    The envelope must be well formed (:func:`split_note`). Lines whose (name, key id) pair is
    not ``verifier``'s are ignored. Every line that is ``verifier``'s must verify, and at
    least one must be present. Anything else raises
    :class:`~app.ledger.errors.VerificationError`.
    """
    body, signed = note_signers(note, (verifier,))
    if not signed:
        raise VerificationError
    return body


def note_signers(
    note: str | bytes, verifiers: Sequence[CheckpointVerifier]
) -> tuple[bytes, frozenset[int]]:
    """Verify a signed note against several keys at once: its text, and the positions in
    ``verifiers`` of the keys whose signature lines verify (possibly none).

    The envelope rules are :func:`split_note`'s. A line of any of ``verifiers`` that does not
    verify rejects the whole note (VerificationError), so that one good line cannot vouch for
    a note that also carries a forged one (signed-note: a failing signature from a known key
    SHOULD reject the note); lines of other keys are ignored.
    """
    body, lines = split_note(note)
    known = {(v.name, v.key_id): i for i, v in enumerate(verifiers)}
    signed: set[int] = set()
    for line in lines:
        position = known.get((line.name, line.key_id))
        if position is None:
            continue
        if not verifiers[position].verify_signature(body, line.signature):
            raise VerificationError
        signed.add(position)
    return body, frozenset(signed)


@dataclass(frozen=True)
class ListedKey:
    """A key a log lists as its own, with the checkpoints it may sign: tree sizes from
    ``first_size`` to ``last_size`` (``None``: still signing)."""

    verifier: CheckpointVerifier
    first_size: int
    last_size: int | None = None

    def covers(self, size: int) -> bool:
        return self.first_size <= size and (self.last_size is None or size <= self.last_size)


class KeyRing:
    """The keys a log has signed its checkpoints with (c2sp.org/signed-note allows several
    lines under one key name with different key ids), each valid for its own period.

    :meth:`verify` accepts a checkpoint of this log only if a listed key whose period covers
    its tree size signed it, and no listed key's line on it fails. A key outside its period
    (a retired key after its retirement, a new key before it was listed) vouches for nothing.
    """

    def __init__(self, keys: Sequence[ListedKey]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        names = {k.verifier.name for k in keys}
        if len(names) != 1:
            raise ValueError("every key of a log carries the log's origin as its name")
        self._keys = tuple(keys)
        self._verifiers = tuple(k.verifier for k in keys)
        self._name = names.pop()
        self.fingerprint = tuple(
            (k.verifier.key_id, k.verifier.public_key, k.first_size, k.last_size) for k in keys
        )
        """Equal for rings that accept exactly the same notes (a cache key)."""

    @classmethod
    def single(cls, verifier: CheckpointVerifier) -> KeyRing:
        """One key, for every tree size (a key an operator names on the command line)."""
        return cls([ListedKey(verifier, 0)])

    @property
    def keys(self) -> tuple[ListedKey, ...]:
        return self._keys

    @property
    def name(self) -> str:
        return self._name

    def signed_by(self, note: str | bytes) -> tuple[Checkpoint, tuple[ListedKey, ...]]:
        """The checkpoint of this log the note holds and the listed keys whose lines verify on
        it (whatever their periods). Raises VerificationError for a malformed note, another
        origin, or a failing line of a listed key."""
        body, signed = note_signers(note, self._verifiers)
        try:
            checkpoint = Checkpoint.from_body(body)
        except CheckpointFormatError:
            raise VerificationError from None
        if checkpoint.origin != self._name:
            raise VerificationError
        return checkpoint, tuple(self._keys[i] for i in sorted(signed))

    def verify(self, note: str | bytes) -> Checkpoint:
        """The note's checkpoint if a listed key whose period covers it signed it; otherwise
        VerificationError."""
        checkpoint, keys = self.signed_by(note)
        if not any(k.covers(checkpoint.size) for k in keys):
            raise VerificationError
        return checkpoint


class CheckpointSigner:
    """Signs checkpoints as a C2SP signed note with an Ed25519 key named after the log."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not _is_valid_key_name(name):
            raise ValueError(
                "key name must be non-empty, without spaces, plus signs or control characters"
            )
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError("private_key must be an Ed25519PrivateKey")
        self._name = name
        self._private_key = private_key
        self._public_key = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._key_id = key_id(name, self._public_key)

    @property
    def name(self) -> str:
        """The key name, which is the origin of every checkpoint this signer signs."""
        return self._name

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id."""
        return self._key_id

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return self._public_key

    def verifier_key(self) -> str:
        """``<name>+<hex key id>+<base64(0x01 || public key)>``, for publication."""
        return f"{self._name}+{self._key_id.hex()}+{b64.encode(_ALG_ED25519 + self._public_key)}"

    def verifier(self) -> CheckpointVerifier:
        """A verifier for this signer's key."""
        return CheckpointVerifier(self._name, self._public_key)

    def sign_note(self, body: bytes) -> str:
        """Sign arbitrary note text (c2sp.org/signed-note) and return the signed note.

        The text must be UTF-8 ending in a newline, with no control characters but LF.
        Exposed for the known-answer test against the Go implementation's published
        example; checkpoints go through :meth:`sign`.
        """
        text = bytes(body).decode("utf-8")
        if not text.endswith("\n") or _has_control(text.replace("\n", "")):
            raise ValueError("note text must end with a newline and contain no control chars")
        return f"{text}\n{self.signature_line(body)}"

    def signature_line(self, body: bytes) -> str:
        """This key's signature line over note text ``body``, newline included."""
        signature = self._private_key.sign(bytes(body))
        return signature_line(self._name, self._key_id, signature)

    def sign(self, checkpoint: Checkpoint) -> str:
        """Return ``checkpoint`` as a signed note.

        Refuses (ValueError) a checkpoint whose origin is not this key's name: a log
        signs only its own tree heads.
        """
        if checkpoint.origin != self._name:
            raise ValueError("checkpoint origin does not match the signing key name")
        return self.sign_note(checkpoint.body())


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[CheckpointSigner]) -> str:
    """``checkpoint`` as one signed note with a line from each of ``signers``, in order (a log
    between two keys signs with both: c2sp.org/signed-note allows several lines per name)."""
    if not signers:
        raise ValueError("a checkpoint needs at least one signer")
    note = signers[0].sign(checkpoint)
    body = checkpoint.body()
    return note + "".join(signer.signature_line(body) for signer in signers[1:])


def load_private_key_pem(data: bytes) -> Ed25519PrivateKey:
    """Load an unencrypted PKCS#8 PEM private key, which must be Ed25519.

    Raises :class:`~app.ledger.errors.LedgerError` for anything else.
    """
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise LedgerError("not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerError("the signing key must be Ed25519")
    return key


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """Serialise an Ed25519 private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
