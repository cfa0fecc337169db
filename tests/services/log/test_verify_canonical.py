"""The verifier's fast canonical-JSON check never accepts what ``decode_entry`` refuses.

``verify`` confirms most leaves canonical with the C ``json`` codec and asks ``decode_entry``
(the RFC 8785 reference) about the rest. The fast answer "canonical" must imply the reference
accepts the leaf; the other way round it may only cost time. Checked on values and byte
strings built to sit on every edge the fast check reasons about: control characters and
escapes, surrogates, characters outside the BMP (where code-point and UTF-16 key orders
differ), integers at the I-JSON bounds, floats, depth, duplicate members, whitespace and
arbitrary byte edits.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.ledger.entry import MAX_DEPTH, decode_entry
from app.ledger.errors import EntryError
from app.services.log.verify import _surely_canonical

TRICKY = [
    "\x00", "\x08", "\x0c", "\x1f", "\x7f", '"', "\\", "/", "\u2028", "\ud7ff", "\ue000",
    "\uffff", "\U00010000", "\U0001f600", "\ud800", "\udfff", "é", "a", "b", "A",
]  # fmt: skip

chars = st.one_of(st.sampled_from(TRICKY), st.characters(codec=None, categories=None))
strings = st.text(alphabet=chars, max_size=6)
ints = st.one_of(
    st.integers(-(2**53) - 2, -(2**53) + 3),
    st.integers(2**53 - 3, 2**53 + 2),
    st.integers(-1000, 1000),
)
scalars = st.one_of(st.none(), st.booleans(), ints, strings, st.floats(allow_nan=True))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(strings, inner, max_size=4)
    ),
    max_leaves=20,
)


def _reference_accepts(leaf: bytes) -> bool:
    try:
        decode_entry(leaf)
    except EntryError:
        return False
    return True


def _spellings(value: Any) -> list[bytes]:
    """Canonical and near-canonical byte strings for ``value``."""
    out: list[bytes] = []
    with contextlib.suppress(rfc8785.CanonicalizationError, TypeError, ValueError):
        out.append(rfc8785.dumps(value))
    for kwargs in (
        {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": False},
        {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": True},
        {"sort_keys": False, "separators": (",", ":"), "ensure_ascii": False},
        {"sort_keys": True, "ensure_ascii": False},
    ):
        with contextlib.suppress(TypeError, ValueError):
            out.append(json.dumps(value, **kwargs).encode("utf-8", "surrogatepass"))
    return out


def _check(leaf: bytes) -> None:
    fast = _surely_canonical(leaf)
    if fast:
        assert _reference_accepts(leaf), leaf
    elif (
        _reference_accepts(leaf)
        and not any(b >= 0xF0 for b in leaf)
        and leaf.count(b"{") + leaf.count(b"[") <= MAX_DEPTH
    ):
        raise AssertionError(f"the fast check should confirm this canonical leaf: {leaf!r}")


@settings(max_examples=400)
@given(st.dictionaries(strings, values, max_size=6))
@example({"\ue000": 1, "\U00010000": 2})  # code-point and UTF-16 orders disagree
@example({"a": 2**53 - 1, "b": -(2**53) + 1})
@example({"a": 2**53, "b": 1})
@example({"a": 1.0})
@example({"a": "\ud800"})
@example({"a": "\x1f\x7f\u2028"})
def test_fast_check_agrees_with_the_reference(value: dict[str, Any]) -> None:
    for leaf in _spellings(value):
        _check(leaf)


@settings(max_examples=400)
@given(
    st.dictionaries(strings, values, min_size=1, max_size=6),
    st.lists(st.tuples(st.integers(0, 10_000), st.binary(max_size=3)), min_size=1, max_size=3),
)
def test_fast_check_never_accepts_an_edited_leaf_the_reference_refuses(
    value: dict[str, Any], edits: list[tuple[int, bytes]]
) -> None:
    for leaf in _spellings(value):
        edited = bytearray(leaf)
        for position, replacement in edits:
            at = position % (len(edited) + 1)
            edited[at : at + len(replacement) // 2] = replacement
        _check(bytes(edited))


def test_edge_leaves() -> None:
    deep = b'{"a":' + b"[" * 63 + b"]" * 63 + b"}"
    deeper = b'{"a":' + b"[" * 64 + b"]" * 64 + b"}"
    for leaf in [
        b'{"a":1,"a":1}',  # duplicate member
        b'{"a":-0}',
        b'{"a":1e2}',
        b'{"a":NaN}',
        b' {"a":1}',
        b'{"a":1} ',
        b'{"a":"\\u0041"}',
        b'{"a":"\\u001F"}',
        b'{"a":"\\u001f"}',
        b'{"a":"\\/"}',
        b'{"a":"\\ud800"}',
        b'{"a":"\\ud83d\\ude00"}',
        '{"a":"\U0001f600"}'.encode(),
        '{"\ue000":1,"\U00010000":2}'.encode(),
        '{"\U00010000":2,"\ue000":1}'.encode(),
        b'{"a":9007199254740991}',
        b'{"a":9007199254740992}',
        b"[]",
        b'"a"',
        b"\xff",
        deep,
        deeper,
    ]:
        _check(leaf)
    assert _surely_canonical(b'{"a":[1,"x",null,true,{}]}')
    assert not _surely_canonical(b'{"a":1,"a":1}')
    assert not _surely_canonical(deeper)
