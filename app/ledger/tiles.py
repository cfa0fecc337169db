"""The log as C2SP tlog-tiles (https://c2sp.org/tlog-tiles): paths, tile contents, bundles.

A *hash tile* at tile level ``L``, index ``N`` holds, for ``i`` from 0 to 255, the Merkle Tree
Hash of the ``256**L`` leaves starting at ``(N * 256 + i) * 256**L``. Such a range is a perfect
subtree of ``2**(8L)`` leaves, which the store already keeps as node ``(8L, N * 256 + i)``
(:data:`app.ledger.merkle.NodeId`), so a tile is a run of stored nodes at one tree level, not
a second copy of the tree. A *partial* tile holds the first ``W`` (1-255) of them; an *entry
bundle* holds the leaves that level 0 tile ``N`` hashes, each with a big-endian uint16 length.

Paths are the spec's, and only its canonical form is accepted, so each resource has exactly
one URL (what a cache and a static mirror key on): ``L`` in 0-63 without leading zeroes; ``N``
in 3-digit groups, every group but the last prefixed ``x``, with no leading ``x000`` group
(index 1234067 is ``x001/x234/067``); ``.p/<W>`` with ``W`` in 1-255 without leading zeroes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from app.ledger.merkle import HASH_SIZE, NodeId

__all__ = [
    "HEIGHT",
    "MAX_BUNDLE_ENTRY",
    "MAX_LEVEL",
    "WIDTH",
    "Tile",
    "TilePathError",
    "decode_bundle",
    "encode_bundle",
    "format_index",
    "hash_tile",
    "parse_tile_path",
    "partial_width",
]

HEIGHT = 8
"""Tree levels a tile spans: tile level ``L`` holds tree level ``8 * L``."""
WIDTH = 1 << HEIGHT
"""Hashes (or entries) in a full tile: 256."""
MAX_LEVEL = 63
"""Largest tile level a path may name (the spec: 0 to 63)."""
MAX_BUNDLE_ENTRY = 0xFFFF
"""Largest entry a bundle can carry: its length prefix is a uint16."""

_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_GROUP = re.compile(r"[0-9]{3}")
ENTRIES = "entries"


class TilePathError(ValueError):
    """A tile path that is not in the spec's canonical form; ``part`` names the element at
    fault (``L``, ``N`` or ``W``) and the message says why."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(f"{part}: {message}")
        self.part = part
        self.message = message


@dataclass(frozen=True, slots=True)
class Tile:
    """A hash tile (``level`` 0-63) or an entry bundle (``level`` ``None``) at ``index``, with
    ``width`` hashes or entries: :data:`WIDTH` for a full tile, 1-255 for a partial one."""

    level: int | None
    index: int
    width: int = WIDTH

    @property
    def is_bundle(self) -> bool:
        return self.level is None

    @property
    def is_partial(self) -> bool:
        return self.width < WIDTH

    @property
    def tree_level(self) -> int:
        """The tree level of the stored nodes the tile holds (0 for a bundle's leaves)."""
        return HEIGHT * (self.level or 0)

    @property
    def first(self) -> int:
        """Index, at :attr:`tree_level`, of the tile's first node (or leaf)."""
        return self.index * WIDTH

    def node_ids(self) -> list[NodeId]:
        """The stored perfect nodes the tile holds, in order: ``(8L, N * 256 + i)`` for i in
        ``range(width)``. For a bundle, the leaf hashes of its entries."""
        return [(self.tree_level, self.first + i) for i in range(self.width)]

    def leaves_needed(self) -> int:
        """The smallest tree size that holds the whole tile: its last hash covers leaves up to
        ``(N * 256 + W) * 256**L``."""
        return (self.first + self.width) << self.tree_level

    def path(self) -> str:
        """The tile's path below ``<prefix>/tile/``, in the spec's canonical form."""
        head = ENTRIES if self.level is None else str(self.level)
        tail = f".p/{self.width}" if self.is_partial else ""
        return f"{head}/{format_index(self.index)}{tail}"


def format_index(index: int) -> str:
    """``N`` as the spec writes it: 3-digit groups, all but the last prefixed ``x``."""
    if index < 0:
        raise ValueError("a tile index is non-negative")
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


def _parse_index(groups: Sequence[str]) -> int:
    if not groups:
        raise TilePathError("N", "the tile index is missing")
    index = 0
    for position, group in enumerate(groups):
        last = position == len(groups) - 1
        digits = group if last else group.removeprefix("x")
        if not last and digits == group:
            raise TilePathError("N", f"{group!r}: every group but the last starts with 'x'")
        if not _GROUP.fullmatch(digits):
            raise TilePathError("N", f"{group!r} is not three ASCII digits")
        if position == 0 and not last and digits == "000":
            raise TilePathError("N", "the index has a leading x000 group")
        index = index * 1000 + int(digits)
    return index


def parse_tile_path(path: str) -> Tile:
    """The tile named by ``path``, the part after ``<prefix>/tile/``: ``<L>/<N>[.p/<W>]`` or
    ``entries/<N>[.p/<W>]``. :class:`TilePathError` for anything not in canonical form."""
    parts = path.split("/")
    head, rest = parts[0], parts[1:]
    level: int | None
    if head == ENTRIES:
        level = None
    elif _LEVEL.fullmatch(head) and int(head) <= MAX_LEVEL:
        level = int(head)
    else:
        raise TilePathError("L", f"{head!r} is not 'entries' or a level from 0 to 63")
    width = WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        text = rest[-1]
        if not (_WIDTH.fullmatch(text) and int(text) < WIDTH):
            raise TilePathError("W", f"{text!r} is not a partial width from 1 to 255")
        width = int(text)
        rest = [*rest[:-2], rest[-2].removesuffix(".p")]
    return Tile(level, _parse_index(rest), width)


def partial_width(size: int, level: int) -> int:
    """Width of the partial tile at tile level ``level`` of a tree of ``size`` leaves (0: that
    level has no partial tile): ``floor(size / 256**level) mod 256``."""
    return (size >> (HEIGHT * level)) % WIDTH


def hash_tile(tile: Tile, nodes: Mapping[NodeId, bytes]) -> bytes:
    """The tile's bytes: its nodes' hashes, concatenated. KeyError if one is missing."""
    if tile.is_bundle:
        raise ValueError("an entry bundle holds entries, not hashes")
    out = b"".join(nodes[node_id] for node_id in tile.node_ids())
    if len(out) != HASH_SIZE * tile.width:
        raise ValueError("a tile node is not a 32-byte hash")
    return out


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    """An entry bundle: each entry after its length as a big-endian uint16. ValueError for an
    entry longer than :data:`MAX_BUNDLE_ENTRY` bytes, which a bundle cannot carry."""
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_BUNDLE_ENTRY:
            raise ValueError(f"an entry of {len(entry)} bytes does not fit an entry bundle")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def decode_bundle(data: bytes) -> list[bytes]:
    """The entries of a bundle, in order. ValueError for a truncated one."""
    entries = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise ValueError("entry bundle ends inside a length prefix")
        length = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if pos + length > len(data):
            raise ValueError("entry bundle ends inside an entry")
        entries.append(data[pos : pos + length])
        pos += length
    return entries
