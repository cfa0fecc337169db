"""Independent check of log format 2's committed leaves, written from the specification only.

Like :mod:`tests.support.rfc9162_verifier`, this module imports nothing from ``app``: it is a
second reading of the format, from design.md ("Log format 2: commitments, not contents") and
the API's description of ``GET /v1/log/entries/{i}``:

* a committed leaf is the RFC 8785 (JCS) form of ``{"v": 2, "type": T, "commitment": C}``;
* ``C`` is the lowercase hex of SHA-256 over the label ``consent-ledger entry commitment v2``
  followed by one NUL byte, then the 32-byte salt, then the entry's canonical bytes;
* the opening is served as ``{"salt": hex, "entry": base64}``.

The canonical form is checked with the ``rfc8785`` package from PyPI (Trail of Bits' JCS
implementation), not with the service's own entry code. Fail-closed: :class:`Invalid` for
anything that does not check out.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import rfc8785

LABEL = b"consent-ledger entry commitment v2\x00"


class Invalid(Exception):
    pass


def read_leaf(leaf: bytes) -> dict[str, Any]:
    """The committed leaf's members; :class:`Invalid` unless it is exactly v, type and
    commitment, in canonical form."""
    try:
        value = json.loads(leaf)
    except ValueError as exc:
        raise Invalid(f"the leaf is not JSON: {exc}") from None
    if not isinstance(value, dict) or rfc8785.dumps(value) != leaf:
        raise Invalid("the leaf is not canonical JSON (RFC 8785)")
    if set(value) != {"v", "type", "commitment"} or value["v"] != 2:
        raise Invalid(f"not a committed leaf: members {sorted(value)}")
    digest = value["commitment"]
    if not isinstance(digest, str) or len(digest) != 64 or digest != digest.lower():
        raise Invalid("the commitment is not 64 lowercase hex digits")
    return value


def open_leaf(leaf: bytes, opening: dict[str, str]) -> dict[str, Any]:
    """The entry the opening holds, once SHA-256 shows it is what ``leaf`` commits to and of
    the leaf's type."""
    committed = read_leaf(leaf)
    salt = bytes.fromhex(opening["salt"])
    if len(salt) != 32:
        raise Invalid(f"the salt is {len(salt)} bytes, not 32")
    entry_bytes = base64.b64decode(opening["entry"], validate=True)
    if hashlib.sha256(LABEL + salt + entry_bytes).hexdigest() != committed["commitment"]:
        raise Invalid("the opening does not match the commitment")
    entry = json.loads(entry_bytes)
    if rfc8785.dumps(entry) != entry_bytes:
        raise Invalid("the opened entry is not canonical JSON (RFC 8785)")
    if entry.get("type") != committed["type"]:
        raise Invalid(f"the opening is a {entry.get('type')} entry, the leaf a {committed['type']}")
    return entry  # type: ignore[no-any-return]
