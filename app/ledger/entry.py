"""Log entries as leaf bytes: RFC 8785 (JSON Canonicalization Scheme) encoding.

A leaf is the exact UTF-8 bytes of an entry's JCS form, at most :data:`MAX_LEAF_BYTES`.
Leaves are stored as written and served verbatim; verifiers hash the served bytes, so the
encoding must be a function of the entry's *value*, which is what RFC 8785 provides.

We accept a strict subset of what JCS can express: objects with string keys, arrays,
strings, booleans, null, and integers within the I-JSON range (RFC 7493 §2.2,
RFC 8785 §3.2.2.3). Floats are refused even though JCS defines them: two systems that
round-trip a timestamp or a score through different float parsers can disagree about its
canonical form, and a consent record has no use for them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

import rfc8785

from app.ledger.errors import EntryError

__all__ = ["MAX_DEPTH", "MAX_LEAF_BYTES", "decode_entry", "encode_entry"]

MAX_LEAF_BYTES = 65535
"""Largest leaf, in bytes, the log accepts (design.md, "The log": at most 64 KiB): the largest
a C2SP tlog-tiles entry bundle can carry behind its big-endian uint16 length."""

MAX_DEPTH = 64
"""Deepest nesting of objects and arrays accepted, the top-level object being depth 1.

A bound far above any real entry, so that hostile input fails with :class:`EntryError`
rather than exhausting the interpreter's recursion limit.
"""

# I-JSON (RFC 7493 §2.2): integers whose magnitude an IEEE 754 double represents exactly.
_INT_MAX = 2**53 - 1
_INT_MIN = -(2**53 - 1)


def _checked_str(text: str, path: str) -> str:
    # Lone surrogates have no UTF-8 form (I-JSON, RFC 7493 §2.1); rfc8785 catches them in
    # values but not in keys, where its UTF-16 sort raises UnicodeEncodeError instead.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise EntryError(f"{path}: string is not valid Unicode (lone surrogate)") from None
    # A plain str of the same characters, whatever a subclass (StrEnum, ...) says in __str__.
    return str.__str__(text)


def _normalise(value: object, depth: int, path: str) -> object:
    """Return ``value`` as plain dict/list/scalars, or raise EntryError.

    Rebuilding (rather than only checking) means rfc8785 only ever sees dict and list,
    whatever Mapping or tuple the caller used.
    """
    # bool before int: bool is a subclass of int and must stay a JSON literal.
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _checked_str(value, path)
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise EntryError(f"{path}: integer outside the I-JSON range ±(2**53 - 1)")
        return int(value)
    if isinstance(value, float):
        raise EntryError(f"{path}: floats are not allowed in ledger entries")
    if depth > MAX_DEPTH:
        raise EntryError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise EntryError(f"{path}: object keys must be strings, not {type(key).__name__}")
            out[_checked_str(key, path)] = _normalise(item, depth + 1, f"{path}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [_normalise(item, depth + 1, f"{path}[{i}]") for i, item in enumerate(value)]
    raise EntryError(f"{path}: unsupported type {type(value).__name__}")


def encode_entry(entry: Mapping[str, object]) -> bytes:
    """Return the leaf bytes for ``entry``: its RFC 8785 canonical UTF-8 form.

    RFC 8785 §3.2 (serialisation: no whitespace, §3.2.2.2 string escaping, §3.2.3 members
    sorted by their UTF-16 code units). Raises :class:`EntryError` for values outside the
    accepted subset (see the module docstring), for strings that cannot be UTF-8 (lone
    surrogates, RFC 8785 §3.2.2.2 / I-JSON §2.1) and for results over
    :data:`MAX_LEAF_BYTES`.
    """
    if not isinstance(entry, Mapping):
        raise EntryError("a ledger entry must be a JSON object")
    plain = _normalise(entry, 1, "$")
    try:
        leaf = rfc8785.dumps(plain)  # type: ignore[arg-type]
    except rfc8785.CanonicalizationError as exc:
        raise EntryError(f"entry cannot be canonicalised: {exc}") from exc
    if len(leaf) > MAX_LEAF_BYTES:
        raise EntryError(f"entry is {len(leaf)} bytes; the limit is {MAX_LEAF_BYTES}")
    return leaf


def _reject_float(text: str) -> NoReturn:
    raise EntryError(f"floats are not allowed in ledger entries: {text[:32]}")


def _reject_constant(text: str) -> NoReturn:
    # json.loads would otherwise accept NaN, Infinity and -Infinity, which are not JSON.
    raise EntryError(f"{text} is not JSON")


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 8785 §3.1 requires unique member names; json.loads would silently keep the last.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise EntryError(f"duplicate member name {key!r}")
        out[key] = value
    return out


def decode_entry(leaf: bytes) -> dict[str, Any]:
    """Parse leaf bytes back into an entry, insisting they are canonical.

    The leaf must be strict UTF-8 JSON text for an object, within :data:`MAX_LEAF_BYTES`,
    and re-encoding the parsed value with :func:`encode_entry` must give back exactly the
    same bytes (RFC 8785 §3: the canonical form is unique). Anything else raises
    :class:`EntryError`: a non-canonical leaf would mean two different byte strings, and
    so two different leaf hashes, for one entry.
    """
    if not isinstance(leaf, bytes | bytearray | memoryview):
        raise EntryError("a leaf must be bytes")
    raw = bytes(leaf)
    if len(raw) > MAX_LEAF_BYTES:
        raise EntryError(f"leaf is {len(raw)} bytes; the limit is {MAX_LEAF_BYTES}")
    try:
        # Decode explicitly: json.loads(bytes) would also guess UTF-16 and UTF-32.
        text = raw.decode("utf-8")
        value = json.loads(
            text,
            parse_float=_reject_float,
            parse_constant=_reject_constant,
            object_pairs_hook=_object_without_duplicates,
        )
    except EntryError:
        raise
    except (ValueError, RecursionError) as exc:
        # ValueError covers UnicodeDecodeError, JSONDecodeError and over-long integers.
        raise EntryError(f"leaf is not UTF-8 JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise EntryError("a ledger entry must be a JSON object")
    if encode_entry(value) != raw:
        raise EntryError("leaf is not in RFC 8785 canonical form")
    return value
