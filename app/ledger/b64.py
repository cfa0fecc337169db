"""Standard base64 (RFC 4648 section 4) as the C2SP formats spell it: one value, one spelling."""

from __future__ import annotations

import base64
import binascii

__all__ = ["decode_canonical", "encode"]


def encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def decode_canonical(text: str) -> bytes:
    """Strict standard base64: padded, no stray characters, canonical.

    Requiring the decoded bytes to re-encode to the same text rejects the alternative
    encodings that lenient decoders accept (non-zero padding bits), so one value has one
    spelling. Raises ValueError ("not base64" or "not canonical base64").
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError("not base64") from exc
    if encode(raw) != text:
        raise ValueError("not canonical base64")
    return raw
