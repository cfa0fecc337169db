"""Independent transparency-log verifier, written from the specifications only.

This module exists so the project's tests can check the log against a second,
separately written implementation. It deliberately does not import anything
from ``app``; every rule below is taken from these texts:

* RFC 9162 (Certificate Transparency Version 2.0), section 2.1 "Merkle Trees":
  2.1.1 (Merkle Tree Hash, unchanged from RFC 6962 section 2.1),
  2.1.3.2 "Verifying an Inclusion Proof",
  2.1.4.2 "Verifying Consistency between Two Tree Heads".
* C2SP signed-note (https://c2sp.org/signed-note), sections "Format",
  "Signatures" and "Ed25519 signatures".
* C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint), sections
  "Note text" and "Signatures".
* The verifier-key text form ``<name>+<hash>+<keydata>`` is the one documented
  in golang.org/x/mod/sumdb/note (package doc, "Verifying Notes"), which C2SP
  signed-note inherits.

Fail-closed: every check that does not pass raises :class:`Invalid`; nothing
returns a boolean that a caller could forget to look at.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "Checkpoint",
    "Invalid",
    "VerifierKey",
    "leaf_hash",
    "node_hash",
    "parse_checkpoint",
    "parse_verifier_key",
    "root_from_leaves",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    "verify_note",
]

HASH_SIZE = 32
"""SHA-256 output size; RFC 9162 section 2.1 fixes HASH to SHA-256 here."""

MAX_TREE_SIZE = 2**64 - 1
"""RFC 9162 carries tree_size and leaf_index as uint64."""

MAX_SIGNATURES = 100
"""C2SP signed-note "Format": verifiers SHOULD cap the number of signatures and
MUST accept at least 16; golang.org/x/mod/sumdb/note suggests 100."""

EM_DASH_SPACE = "\u2014 "
"""C2SP signed-note "Format": a signature line starts with U+2014, U+0020."""

ED25519_SIGNATURE_TYPE = 0x01
"""C2SP signed-note "Signature types": 0x01 is Ed25519."""

_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class Invalid(Exception):
    """Raised by every failed check in this module."""


# --------------------------------------------------------------------------
# RFC 9162 section 2.1 -- hashing
# --------------------------------------------------------------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 9162 section 2.1.1: ``MTH({d(0)}) = HASH(0x00 || d(0))``."""
    return _sha256(b"\x00" + leaf)


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 section 2.1.1: interior node ``HASH(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right)


def root_from_leaves(leaves: list[bytes]) -> bytes:
    """Merkle Tree Hash of ``leaves``, straight from the recursive definition.

    RFC 6962 section 2.1 / RFC 9162 section 2.1.1:

    * ``MTH({}) = HASH()``, the hash of the empty string;
    * ``MTH({d(0)}) = HASH(0x00 || d(0))``;
    * for n > 1, with k the largest power of two smaller than n,
      ``MTH(D[n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))``.
    """
    n = len(leaves)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(root_from_leaves(leaves[:k]), root_from_leaves(leaves[k:]))


# --------------------------------------------------------------------------
# Input checks shared by the proof verifiers
# --------------------------------------------------------------------------


def _require_size(value: object, what: str) -> int:
    # bool is an int subclass; True must not pass for a tree size of 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(f"{what} must be an int")
    if not 0 <= value <= MAX_TREE_SIZE:
        raise Invalid(f"{what} out of range: {value}")
    return value


def _require_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise Invalid(f"{what} must be {HASH_SIZE} bytes")
    return value


def _require_path(proof: object, what: str) -> list[bytes]:
    if not isinstance(proof, list):
        raise Invalid(f"{what} must be a list of hashes")
    return [_require_hash(p, f"{what}[{i}]") for i, p in enumerate(proof)]


def _lsb(x: int) -> bool:
    """RFC 9162 section 2.1.3.2: LSB(x) is the least significant bit of x."""
    return x & 1 == 1


# --------------------------------------------------------------------------
# RFC 9162 section 2.1.3.2 -- Verifying an Inclusion Proof
# --------------------------------------------------------------------------


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree ``(size, root)``.

    The numbered steps are those of RFC 9162 section 2.1.3.2, with
    ``hash = leaf_hash``, ``leaf_index = index``, ``tree_size = size``,
    ``inclusion_path = proof`` and ``root_hash = root``.
    """
    hash_ = _require_hash(leaf_hash, "leaf_hash")
    leaf_index = _require_size(index, "index")
    tree_size = _require_size(size, "size")
    inclusion_path = _require_path(proof, "proof")
    root_hash = _require_hash(root, "root")

    # 1. If leaf_index is greater than or equal to tree_size, fail.
    if leaf_index >= tree_size:
        raise Invalid(f"leaf index {leaf_index} is not below tree size {tree_size}")
    # 2. Set fn to leaf_index and sn to tree_size - 1.
    fn, sn = leaf_index, tree_size - 1
    # 3. Set r to hash.
    r = hash_
    # 4. For each value p in the inclusion_path array:
    for p in inclusion_path:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            raise Invalid("inclusion proof is longer than the path to the root")
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if _lsb(fn) or fn == sn:
            # i. Set r to HASH(0x01 || p || r).
            r = node_hash(p, r)
            # ii. If LSB(fn) is not set, then right-shift both fn and sn
            #     equally until either LSB(fn) is set or fn is 0.
            while not _lsb(fn) and fn != 0:
                fn >>= 1
                sn >>= 1
        # Otherwise:
        else:
            # i. Set r to HASH(0x01 || r || p).
            r = node_hash(r, p)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 5. Compare sn to 0. Compare r against the root_hash. If sn is equal to 0
    #    and r and the root_hash are equal, then the log has proven the
    #    inclusion of hash. Otherwise, fail the proof verification.
    if sn != 0:
        raise Invalid("inclusion proof is shorter than the path to the root")
    if r != root_hash:
        raise Invalid("inclusion proof does not lead to the root hash")


# --------------------------------------------------------------------------
# RFC 9162 section 2.1.4.2 -- Verifying Consistency between Two Tree Heads
# --------------------------------------------------------------------------


def verify_consistency(
    first: int, second: int, proof: list[bytes], first_root: bytes, second_root: bytes
) -> None:
    """Check that tree ``(second, second_root)`` extends ``(first, first_root)``.

    RFC 9162 section 2.1.4.2 covers ``0 < first < second``. Beyond it, this
    verifier accepts ``first == second`` only with an empty proof and equal
    roots (a tree head is consistent with itself), and rejects ``first == 0``
    and ``first > second`` outright.
    """
    first = _require_size(first, "first")
    second = _require_size(second, "second")
    consistency_path = _require_path(proof, "proof")
    first_hash = _require_hash(first_root, "first_root")
    second_hash = _require_hash(second_root, "second_root")

    if first < 1:
        raise Invalid("first tree size must be at least 1")
    if first > second:
        raise Invalid(f"first size {first} is larger than second size {second}")
    if first == second:
        if consistency_path:
            raise Invalid("proof between equal tree sizes must be empty")
        if first_hash != second_hash:
            raise Invalid("equal tree sizes with different root hashes")
        return

    # 1. If consistency_path is an empty array, stop and fail the proof
    #    verification.
    if not consistency_path:
        raise Invalid("consistency proof is empty")
    # 2. If first is an exact power of 2, then prepend first_hash to the
    #    consistency_path array.
    if first & (first - 1) == 0:
        consistency_path = [first_hash, *consistency_path]
    # 3. Set fn to first - 1 and sn to second - 1.
    fn, sn = first - 1, second - 1
    # 4. If LSB(fn) is set, then right-shift both fn and sn equally until
    #    LSB(fn) is not set.
    while _lsb(fn):
        fn >>= 1
        sn >>= 1
    # 5. Set both fr and sr to the first value in the consistency_path array.
    fr = sr = consistency_path[0]
    # 6. For each subsequent value c in the consistency_path array:
    for c in consistency_path[1:]:
        # a. If sn is 0, then stop the iteration and fail the proof
        #    verification.
        if sn == 0:
            raise Invalid("consistency proof is longer than needed")
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if _lsb(fn) or fn == sn:
            # i. Set fr to HASH(0x01 || c || fr).
            fr = node_hash(c, fr)
            # ii. Set sr to HASH(0x01 || c || sr).
            sr = node_hash(c, sr)
            # iii. If LSB(fn) is not set, then right-shift both fn and sn
            #      equally until either LSB(fn) is set or fn is 0.
            while not _lsb(fn) and fn != 0:
                fn >>= 1
                sn >>= 1
        # Otherwise:
        else:
            # i. Set sr to HASH(0x01 || sr || c).
            sr = node_hash(sr, c)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 7. After completing iterating through the consistency_path array as
    #    described above, verify that the fr calculated is equal to the
    #    first_hash supplied, that the sr calculated is equal to the
    #    second_hash supplied, and that sn is 0.
    if sn != 0:
        raise Invalid("consistency proof is shorter than needed")
    if fr != first_hash:
        raise Invalid("consistency proof does not reproduce the first root")
    if sr != second_hash:
        raise Invalid("consistency proof does not reproduce the second root")


# --------------------------------------------------------------------------
# C2SP signed-note
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifierKey:
    """An Ed25519 note verifier key: key name, 4-byte key ID, public key."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey


def _b64decode(text: str, what: str) -> bytes:
    """Standard base64 (RFC 4648 section 4), strict and canonical only."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise Invalid(f"{what} is not valid base64") from exc
    # Reject non-zero padding bits and other alternative spellings, so one
    # value has exactly one accepted text form.
    if base64.b64encode(raw).decode("ascii") != text:
        raise Invalid(f"{what} is not canonical base64")
    return raw


def _check_note_characters(text: str, what: str) -> None:
    """C2SP signed-note "Format": valid UTF-8, no control characters but newline."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise Invalid(f"{what} is not valid UTF-8") from exc
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise Invalid(f"{what} contains an ASCII control character")


def _check_key_name(name: str) -> None:
    """C2SP signed-note "Format": non-empty, no Unicode spaces, no '+'."""
    if not name:
        raise Invalid("key name is empty")
    if "+" in name or any(ch.isspace() for ch in name):
        raise Invalid(f"key name {name!r} contains a space or '+'")
    _check_note_characters(name, "key name")


def _key_id(name: str, typed_public_key: bytes) -> bytes:
    """C2SP signed-note "Signatures":
    ``key ID = SHA-256(key name || 0x0A || signature type || public key)[:4]``."""
    return _sha256(name.encode("utf-8") + b"\n" + typed_public_key)[:4]


def parse_verifier_key(vkey: str) -> VerifierKey:
    """Parse ``<name>+<8 hex digit key ID>+<base64(0x01 || Ed25519 public key)>``.

    The key ID must equal the one C2SP signed-note ("Ed25519 signatures")
    derives from the name and the key, so a key cannot be relabelled.
    """
    if not isinstance(vkey, str):
        raise Invalid("verifier key must be a str")
    # The name cannot contain '+', the key ID is hex; only the base64 part
    # may contain further '+' characters.
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise Invalid("verifier key must have the form <name>+<id>+<key>")
    name, id_hex, key_b64 = parts
    _check_key_name(name)
    if not re.fullmatch(r"[0-9a-f]{8}", id_hex):
        raise Invalid("verifier key ID must be 8 lowercase hex digits")
    typed_key = _b64decode(key_b64, "verifier key data")
    if len(typed_key) != 1 + 32 or typed_key[0] != ED25519_SIGNATURE_TYPE:
        raise Invalid("verifier key is not 0x01 followed by a 32-byte Ed25519 key")
    key_id = bytes.fromhex(id_hex)
    if _key_id(name, typed_key) != key_id:
        raise Invalid("verifier key ID does not match the name and key")
    try:
        public_key = Ed25519PublicKey.from_public_bytes(typed_key[1:])
    except ValueError as exc:
        raise Invalid("verifier key is not an Ed25519 public key") from exc
    return VerifierKey(name=name, key_id=key_id, public_key=public_key)


def verify_note(note: str, vkey: VerifierKey) -> str:
    """Return the text of ``note`` if ``vkey`` signed it, else raise Invalid.

    C2SP signed-note "Format": the note is a text ending in a newline, a blank
    line, then one or more lines ``\u2014 <key name> <base64(key ID || sig)>``.
    The text (which is what is signed) runs up to and including the newline
    before the *last* blank line.

    C2SP signed-note "Signatures": lines from other keys (name or ID differ)
    are ignored; every line whose name *and* ID match ``vkey`` must verify
    (this verifier takes the spec's option to reject the whole note when one
    does not); at least one must verify.
    """
    if not isinstance(note, str):
        raise Invalid("note must be a str")
    _check_note_characters(note, "note")
    split = note.rfind("\n\n")
    if split < 0:
        raise Invalid("note has no blank line before its signatures")
    text = note[: split + 1]
    signature_block = note[split + 2 :]
    if not signature_block.endswith("\n"):
        raise Invalid("note signature block must end with a newline")
    lines = signature_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise Invalid(f"note has more than {MAX_SIGNATURES} signatures")

    message = text.encode("utf-8")
    verified = False
    for line in lines:
        if not line.startswith(EM_DASH_SPACE):
            raise Invalid(f"malformed signature line {line!r}")
        fields = line[len(EM_DASH_SPACE) :].split(" ")
        if len(fields) != 2:
            raise Invalid(f"malformed signature line {line!r}")
        name, sig_b64 = fields
        _check_key_name(name)
        blob = _b64decode(sig_b64, "signature")
        if len(blob) < 5:
            raise Invalid("signature is shorter than a key ID plus one byte")
        if name != vkey.name or blob[:4] != vkey.key_id:
            continue  # someone else's key: MUST be ignored
        if len(blob) != 4 + 64:
            raise Invalid("Ed25519 signature must be 64 bytes")
        try:
            vkey.public_key.verify(blob[4:], message)
        except InvalidSignature as exc:
            raise Invalid(f"bad signature from {vkey.name}") from exc
        verified = True
    if not verified:
        raise Invalid(f"note carries no signature from {vkey.name}+{vkey.key_id.hex()}")
    return text


# --------------------------------------------------------------------------
# C2SP tlog-checkpoint
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """The note text of a C2SP tlog-checkpoint."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse checkpoint note text (C2SP tlog-checkpoint, "Note text").

    At least three non-empty lines, each ending in a newline: the origin; the
    tree size in ASCII decimal without leading zeroes (``0`` for the empty
    tree); the base64 root hash (32 bytes for SHA-256); then optional,
    non-empty extension lines.
    """
    if not isinstance(body, str):
        raise Invalid("checkpoint body must be a str")
    _check_note_characters(body, "checkpoint body")
    if not body.endswith("\n"):
        raise Invalid("checkpoint body must end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise Invalid("checkpoint body needs origin, size and root hash lines")
    if any(line == "" for line in lines):
        raise Invalid("checkpoint lines must be non-empty")
    origin, size_text, root_text, *extensions = lines
    if not _DECIMAL.fullmatch(size_text):
        raise Invalid(f"checkpoint size {size_text!r} is not canonical decimal")
    size = int(size_text)
    if size > MAX_TREE_SIZE:
        raise Invalid("checkpoint size does not fit in uint64")
    root_hash = _b64decode(root_text, "checkpoint root hash")
    if len(root_hash) != HASH_SIZE:
        raise Invalid(f"checkpoint root hash must be {HASH_SIZE} bytes")
    return Checkpoint(origin=origin, size=size, root_hash=root_hash, extensions=tuple(extensions))


def verify_checkpoint(note: str, vkey_str: str) -> Checkpoint:
    """Verify a signed checkpoint against the log's verifier key.

    Parses the key, verifies the note signature, parses the checkpoint text
    and requires ``origin == key name``. C2SP tlog-checkpoint "Signatures" only
    says the key name SHOULD match the origin; this project always names its
    key after its origin, so a mismatch is rejected here.
    """
    vkey = parse_verifier_key(vkey_str)
    checkpoint = parse_checkpoint(verify_note(note, vkey))
    if checkpoint.origin != vkey.name:
        raise Invalid(f"checkpoint origin {checkpoint.origin!r} is not the key name {vkey.name!r}")
    return checkpoint
