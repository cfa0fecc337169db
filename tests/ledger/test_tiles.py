"""C2SP tlog-tiles paths and contents, checked against the spec's own definitions.

A tile's hashes are checked against MTH over plain lists of leaf hashes
(``root_from_leaf_hashes``, pinned to the RFC 6962 vectors), by the spec's formula
``MTH(D[(n * 256 + i) * 256**l : (n * 256 + i + 1) * 256**l])``, not by the node arithmetic
under test.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.ledger.entry import MAX_LEAF_BYTES, encode_entry
from app.ledger.errors import EntryError
from app.ledger.merkle import MemoryTree, leaf_hash, root_from_leaf_hashes
from app.ledger.tiles import (
    Tile,
    TilePathError,
    decode_bundle,
    encode_bundle,
    format_index,
    hash_tile,
    parse_tile_path,
    partial_width,
)

# Level 1 needs 256 * 256 leaves for one full hash; a tree of 70,000 (the spec's example) has
# full and partial tiles at levels 0 and 1 and a partial one at level 2.
N = 70_000
LEAF_HASHES = [leaf_hash(i.to_bytes(4, "big")) for i in range(N)]
TREE = MemoryTree()
for _h in LEAF_HASHES:
    TREE.append_hash(_h)


@pytest.mark.parametrize(
    ("index", "text"),
    [
        (0, "000"),
        (7, "007"),
        (999, "999"),
        (1000, "x001/000"),
        (1234067, "x001/x234/067"),
        (10**9, "x001/x000/x000/000"),
    ],
)
def test_index_encoding_is_the_specs(index: int, text: str) -> None:
    assert format_index(index) == text
    assert parse_tile_path(f"0/{text}") == Tile(0, index)


levels = st.one_of(st.none(), st.integers(0, 63))
widths = st.one_of(st.just(256), st.integers(1, 255))


@given(levels, st.integers(0, 2**64), widths)
def test_paths_round_trip(level: int | None, index: int, width: int) -> None:
    tile = Tile(level, index, width)
    assert parse_tile_path(tile.path()) == tile


@pytest.mark.parametrize(
    ("path", "part"),
    [
        ("00/000", "L"),  # leading zero
        ("64/000", "L"),  # above 63
        ("-1/000", "L"),
        ("+1/000", "L"),
        ("a/000", "L"),
        ("data/000", "L"),  # the Go sumdb's name, not this spec's
        ("", "L"),
        ("\u0661/000", "L"),  # an Arabic-Indic one
        ("0", "N"),
        ("0/", "N"),
        ("0/1", "N"),
        ("0/0000", "N"),
        ("0/x000", "N"),  # the last group has no x
        ("0/001/000", "N"),  # a group before the last without x
        ("0/x000/001", "N"),  # not canonical: a leading x000 group
        ("0/x1/000", "N"),
        ("0/00a", "N"),
        ("0/\u0660\u0660\u0660", "N"),
        ("0/000/", "N"),
        ("0/000.p", "N"),
        ("0/.p/5", "N"),
        ("0/000.p/5/6", "N"),
        ("0/000.p/0", "W"),
        ("0/000.p/256", "W"),
        ("0/000.p/01", "W"),
        ("0/000.p/", "W"),
        ("0/000.p/+5", "W"),
        ("entries/x000", "N"),
        ("entries/000.p/256", "W"),
        ("entries", "N"),
    ],
)
def test_paths_the_spec_forbids_are_refused(path: str, part: str) -> None:
    with pytest.raises(TilePathError) as refused:
        parse_tile_path(path)
    assert refused.value.part == part


def _spec_tile(level: int, index: int, width: int) -> bytes:
    span = 256**level
    return b"".join(
        root_from_leaf_hashes(LEAF_HASHES[(index * 256 + i) * span : (index * 256 + i + 1) * span])
        for i in range(width)
    )


@pytest.mark.parametrize(
    ("size", "level", "width"),
    # The spec's example: 70,000 leaves are 273 full level-0 tiles and one of width 112, one
    # full level-1 tile and one of width 17, and a level-2 tile of width 1; 256 leaves are
    # one full level-0 tile and a level-1 tile of width 1.
    [(70_000, 0, 112), (70_000, 1, 17), (70_000, 2, 1), (256, 0, 0), (256, 1, 1)],
)
def test_partial_widths_are_the_specs(size: int, level: int, width: int) -> None:
    assert partial_width(size, level) == width


@given(st.integers(0, 2), st.data())
def test_tiles_from_stored_nodes_are_the_specs_hashes(level: int, data: st.DataObject) -> None:
    full_tiles = N // 256 ** (level + 1)
    index = data.draw(st.integers(0, full_tiles))
    most = 256 if index < full_tiles else partial_width(N, level)
    width = data.draw(st.integers(1, most))
    tile = Tile(level, index, width)
    assert tile.leaves_needed() <= N
    assert hash_tile(tile, TREE.nodes) == _spec_tile(level, index, width)


def test_a_tile_beyond_the_tree_needs_more_leaves() -> None:
    assert Tile(0, 273, 112).leaves_needed() == N
    assert Tile(0, 273, 113).leaves_needed() == N + 1
    assert Tile(1, 1, 17).leaves_needed() == 69_888
    with pytest.raises(KeyError):
        hash_tile(Tile(0, 273, 113), TREE.nodes)


@given(st.lists(st.binary(max_size=300), max_size=256))
def test_bundles_round_trip_with_uint16_prefixes(entries: list[bytes]) -> None:
    bundle = encode_bundle(entries)
    assert len(bundle) == sum(2 + len(e) for e in entries)
    assert decode_bundle(bundle) == entries


def test_bundle_encoding_is_big_endian() -> None:
    assert encode_bundle([b"ab", b"x" * 258]) == b"\x00\x02ab\x01\x02" + b"x" * 258


def test_an_entry_too_long_for_a_bundle_is_refused() -> None:
    assert decode_bundle(encode_bundle([b"x" * 0xFFFF])) == [b"x" * 0xFFFF]
    with pytest.raises(ValueError, match="does not fit"):
        encode_bundle([b"x" * 0x10000])
    with pytest.raises(ValueError, match="ends inside"):
        decode_bundle(b"\x00\x05abc")


def test_the_largest_leaf_the_log_accepts_fits_an_entry_bundle() -> None:
    overhead = len(b'{"s":""}')
    largest = encode_entry({"s": "x" * (MAX_LEAF_BYTES - overhead)})
    assert decode_bundle(encode_bundle([largest])) == [largest]
    with pytest.raises(EntryError, match="limit"):
        encode_entry({"s": "x" * (0x10000 - overhead)})
