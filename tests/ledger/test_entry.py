"""Entry encoding: RFC 8785 known answers, the accepted subset, and strict decoding."""

from __future__ import annotations

import datetime
import decimal
import enum
import json
from collections import OrderedDict
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.ledger.entry import MAX_DEPTH, MAX_LEAF_BYTES, decode_entry, encode_entry
from app.ledger.errors import EntryError, LedgerError
from tests.ledger import vectors

# --- RFC 8785 known answers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(
            vectors.RFC8785_SORTING_INPUT, vectors.RFC8785_SORTING_OUTPUT, id="rfc8785-3.2.3"
        ),
        pytest.param(
            vectors.RFC8785_STRINGS_INPUT, vectors.RFC8785_STRINGS_OUTPUT, id="rfc8785-3.2.2"
        ),
        pytest.param(
            vectors.CYBERPHONE_WEIRD_INPUT, vectors.CYBERPHONE_WEIRD_OUTPUT, id="cyberphone-weird"
        ),
        pytest.param(
            vectors.CYBERPHONE_UNICODE_INPUT,
            vectors.CYBERPHONE_UNICODE_OUTPUT,
            id="cyberphone-unicode",
        ),
    ],
)
def test_published_canonical_forms(source: str, expected: bytes) -> None:
    entry = json.loads(source)
    assert encode_entry(entry) == expected
    assert decode_entry(expected) == entry


def test_keys_sort_by_utf16_code_units_not_code_points() -> None:
    # U+1F600 is D83D DE00 in UTF-16, so it sorts before U+FB33; by code point it is after.
    leaf = encode_entry({"\ufb33": 1, "\U0001f600": 2})
    assert leaf == '{"\U0001f600":2,"\ufb33":1}'.encode()


def test_string_escaping() -> None:
    entry = {"s": '\x00\x08\t\n\x0c\r\x1f\x7f"\\/\u2028'}
    # RFC 8785 §3.2.2.2: the short escapes, \u00XX (lowercase) for other controls; DEL,
    # solidus and U+2028 are written as themselves.
    assert (
        encode_entry(entry) == ('{"s":"\\u0000\\b\\t\\n\\f\\r\\u001f\x7f\\"\\\\/\u2028"}').encode()
    )


def test_nested_members_sorted_at_every_level() -> None:
    entry = {"b": [{"z": 1, "a": 2}], "a": {"d": True, "c": None}}
    assert encode_entry(entry) == b'{"a":{"c":null,"d":true},"b":[{"a":2,"z":1}]}'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, b"0"),
        (-1, b"-1"),
        (2**53 - 1, b"9007199254740991"),
        (-(2**53 - 1), b"-9007199254740991"),
    ],
)
def test_integers_in_the_i_json_range(value: int, text: bytes) -> None:
    assert encode_entry({"n": value}) == b'{"n":' + text + b"}"


def test_any_mapping_and_tuples_are_accepted() -> None:
    entry: Mapping[str, object] = MappingProxyType(
        {"t": (1, "x"), "o": OrderedDict([("b", 1), ("a", 2)])}
    )
    assert encode_entry(entry) == b'{"o":{"a":2,"b":1},"t":[1,"x"]}'


def test_booleans_stay_literals() -> None:
    assert encode_entry({"t": True, "f": False}) == b'{"f":false,"t":true}'


# --- rejected values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param({"x": 1.0}, id="float"),
        pytest.param({"x": 0.5}, id="fraction"),
        pytest.param({"x": float("nan")}, id="nan"),
        pytest.param({"x": float("inf")}, id="inf"),
        pytest.param({"x": [1, 2, 3.0]}, id="float-in-list"),
        pytest.param({"x": {"y": -0.0}}, id="nested-float"),
        pytest.param({"x": 2**53}, id="int-too-large"),
        pytest.param({"x": -(2**53)}, id="int-too-small"),
        pytest.param({"x": b"bytes"}, id="bytes"),
        pytest.param({"x": {1, 2}}, id="set"),
        pytest.param({"x": decimal.Decimal("1")}, id="decimal"),
        pytest.param({"x": datetime.date(2024, 1, 1)}, id="date"),
        pytest.param({1: "int key"}, id="int-key"),
        pytest.param({"x": {("a",): 1}}, id="tuple-key"),
        pytest.param({"x": {None: 1}}, id="none-key"),
        pytest.param({"x": "\ud800"}, id="lone-surrogate"),
        pytest.param({"\udc00": 1}, id="lone-surrogate-key"),
    ],
)
def test_values_outside_the_subset_are_refused(entry: Any) -> None:
    with pytest.raises(EntryError):
        encode_entry(entry)


@pytest.mark.parametrize("entry", [[1, 2], "text", 1, None])
def test_top_level_must_be_an_object(entry: Any) -> None:
    with pytest.raises(EntryError):
        encode_entry(entry)


def test_entry_error_is_a_ledger_error() -> None:
    with pytest.raises(LedgerError):
        encode_entry({"x": 1.5})


def test_size_limit_is_inclusive() -> None:
    overhead = len(b'{"s":""}')
    largest = encode_entry({"s": "x" * (MAX_LEAF_BYTES - overhead)})
    assert len(largest) == MAX_LEAF_BYTES
    assert decode_entry(largest) == {"s": "x" * (MAX_LEAF_BYTES - overhead)}
    with pytest.raises(EntryError, match="limit"):
        encode_entry({"s": "x" * (MAX_LEAF_BYTES - overhead + 1)})


def test_size_limit_counts_utf8_bytes() -> None:
    overhead = len(b'{"s":""}')
    # U+20AC is three bytes in UTF-8.
    with pytest.raises(EntryError):
        encode_entry({"s": "\u20ac" * ((MAX_LEAF_BYTES - overhead) // 3 + 1)})


def _nest(depth: int) -> dict[str, object]:
    entry: dict[str, object] = {}
    for _ in range(depth - 1):
        entry = {"a": entry}
    return entry


def test_depth_limit() -> None:
    leaf = encode_entry(_nest(MAX_DEPTH))
    assert decode_entry(leaf) == _nest(MAX_DEPTH)
    with pytest.raises(EntryError, match="deeper"):
        encode_entry(_nest(MAX_DEPTH + 1))


# --- decoding --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "leaf",
    [
        pytest.param(b'{"a": 1}', id="whitespace"),
        pytest.param(b'{"b":1,"a":2}', id="unsorted"),
        pytest.param(b'{"a":"\\u0041"}', id="needless-escape"),
        pytest.param(b'{"a":"\\/"}', id="escaped-solidus"),
        pytest.param(b'{"a":"\\u001F"}', id="uppercase-hex-escape"),
        pytest.param(b'{"a":1.0}', id="float"),
        pytest.param(b'{"a":1e2}', id="exponent"),
        pytest.param(b'{"a":-0}', id="negative-zero"),
        pytest.param(b'{"a":01}', id="leading-zero"),
        pytest.param(b'{"a":NaN}', id="nan"),
        pytest.param(b'{"a":Infinity}', id="infinity"),
        pytest.param(b'{"a":1,"a":1}', id="duplicate-key"),
        pytest.param(b"[1]", id="array"),
        pytest.param(b'"x"', id="string"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"a":1}\n', id="trailing-newline"),
        pytest.param(b'\xef\xbb\xbf{"a":1}', id="bom"),
        pytest.param(b'{"a":"\xff"}', id="invalid-utf8"),
        pytest.param(b'{"a":"\xed\xa0\x80"}', id="utf8-encoded-surrogate"),
        pytest.param('{"a":1}'.encode("utf-16"), id="utf16"),
        pytest.param(b'{"a":"\\ud800"}', id="lone-surrogate-escape"),
        pytest.param(b'{"a":9007199254740992}', id="int-out-of-range"),
        pytest.param(b'{"a":' + b"9" * 5000 + b"}", id="huge-int"),
        pytest.param(b'{"a":' + b"[" * 20000 + b"]" * 20000 + b"}", id="deep-nesting"),
        pytest.param(b'{"s":"' + b"x" * MAX_LEAF_BYTES + b'"}', id="oversize"),
    ],
)
def test_decode_refuses_non_canonical_or_invalid_leaves(leaf: bytes) -> None:
    with pytest.raises(EntryError):
        decode_entry(leaf)


def test_decode_returns_plain_json_values() -> None:
    assert decode_entry(b'{"a":[1,"x",null,true,{}]}') == {"a": [1, "x", None, True, {}]}


def test_decode_accepts_bytes_like() -> None:
    assert decode_entry(cast(bytes, bytearray(b'{"a":1}'))) == {"a": 1}
    assert decode_entry(cast(bytes, memoryview(b'{"a":1}'))) == {"a": 1}


# --- properties ------------------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
    | st.text(max_size=12)
)
_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)
_entries = st.dictionaries(st.text(max_size=6), _values, max_size=6)


def _oracle(value: object) -> object:
    """Order every object's members by UTF-16 code units, as RFC 8785 §3.2.3 requires."""
    if isinstance(value, dict):
        return {
            k: _oracle(value[k]) for k in sorted(value, key=lambda key: key.encode("utf-16-be"))
        }
    if isinstance(value, list):
        return [_oracle(v) for v in value]
    return value


@given(_entries)
def test_encoding_matches_an_independent_serialiser(entry: dict[str, object]) -> None:
    # Without floats, JCS is json.dumps with no whitespace, no ASCII escaping and members
    # in UTF-16 order: an oracle that shares no code with rfc8785.
    expected = json.dumps(_oracle(entry), ensure_ascii=False, separators=(",", ":"))
    assert encode_entry(entry) == expected.encode("utf-8")


@given(_entries)
def test_decode_inverts_encode(entry: dict[str, object]) -> None:
    leaf = encode_entry(entry)
    assert decode_entry(leaf) == entry
    assert encode_entry(decode_entry(leaf)) == leaf


@given(_entries, st.sampled_from([b" ", b"\n", b"\t"]))
def test_any_inserted_whitespace_is_refused(entry: dict[str, object], space: bytes) -> None:
    leaf = encode_entry(entry)
    with pytest.raises(EntryError):
        decode_entry(space + leaf)
    with pytest.raises(EntryError):
        decode_entry(leaf + space)


def test_str_and_int_subclasses_encode_as_their_values() -> None:
    class Purpose(enum.StrEnum):
        DIRECT_CARE = "direct_care"

    class Level(enum.IntEnum):
        HIGH = 3

    assert encode_entry({Purpose.DIRECT_CARE: Purpose.DIRECT_CARE, "l": Level.HIGH}) == (
        b'{"direct_care":"direct_care","l":3}'
    )
