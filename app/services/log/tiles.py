"""The log served as C2SP tlog-tiles: the checkpoint, hash tiles and entry bundles, publicly.

Everything here is public, so it is bounded by the newest signed checkpoint: a tile is served
only when that checkpoint's tree holds all of it, which is every full tile and every partial
tile (any width) up to that size, and 404 beyond. A hash tile is one range read of the stored
perfect nodes at its tree level (:mod:`app.ledger.tiles`); an entry bundle is one range read of
the leaves, refused whole if one of them is a leaf that must not be published.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import DomainError, NotFound
from app.ledger import tiles
from app.ledger.commitment import is_committed
from app.ledger.entry import decode_entry
from app.ledger.errors import EntryError
from app.models import LogEntry, LogNode, table
from app.services.container import Ledger
from app.services.log import witnesses
from app.services.log.log_store import LogInconsistent
from app.services.log.openings import COMMITTED_TYPES

_NODES = table(LogNode)
_ENTRIES = table(LogEntry)


class BundleWithheld(DomainError):
    """An entry bundle holding a leaf this service does not publish."""

    status = 403
    slug = "bundle-withheld"


def checkpoint(ledger: Ledger) -> str:
    """The checkpoint the log publishes, with its witnesses' cosignatures (the newest signed
    one without witnesses; :func:`app.services.log.witnesses.served_checkpoint`); NotFound
    while the log is empty."""
    return witnesses.served_checkpoint(ledger)


def read_tile(ledger: Ledger, tile: tiles.Tile) -> bytes:
    """The bytes of a hash tile or an entry bundle within the newest checkpoint's tree."""
    with ledger.db.read() as session:
        latest = ledger.log_store.latest_checkpoint(session)
        size = 0 if latest is None else latest.tree_size
        if tile.leaves_needed() > size:
            raise NotFound(
                f"the tile reaches beyond the newest checkpoint's tree of {size} entries"
            )
        if tile.is_bundle:
            return _bundle(session, tile)
        return _hashes(session, tile)


def _hashes(session: Session, tile: tiles.Tile) -> bytes:
    # One range read on the (level, idx) primary key: at most 256 rows.
    rows = session.execute(
        select(_NODES.c.idx, _NODES.c.hash)
        .where(_NODES.c.level == tile.tree_level)
        .where(_NODES.c.idx >= tile.first, _NODES.c.idx < tile.first + tile.width)
    ).all()
    nodes = {(tile.tree_level, idx): bytes(h) for idx, h in rows}
    try:
        return tiles.hash_tile(tile, nodes)
    except (KeyError, ValueError):
        raise LogInconsistent(
            f"stored tree nodes are missing or damaged in tile {tile.path()}"
        ) from None


def _bundle(session: Session, tile: tiles.Tile) -> bytes:
    rows = session.execute(
        select(_ENTRIES.c.idx, _ENTRIES.c.leaf)
        .where(_ENTRIES.c.idx >= tile.first, _ENTRIES.c.idx < tile.first + tile.width)
        .order_by(_ENTRIES.c.idx)
    ).all()
    if [idx for idx, _ in rows] != list(range(tile.first, tile.first + tile.width)):
        raise LogInconsistent(f"stored entries are missing in entry bundle {tile.path()}")
    leaves = [bytes(leaf) for _, leaf in rows]
    for idx, leaf in zip(range(tile.first, tile.first + tile.width), leaves, strict=True):
        reason = _withheld(leaf)
        if reason is not None:
            raise BundleWithheld(
                f"entry bundle {tile.path()} is not published: entry {idx} {reason}. The hash "
                "tiles covering it are served."
            )
    return tiles.encode_bundle(leaves)


def _withheld(leaf: bytes) -> str | None:
    """Why a leaf may not be served to anyone, or None if it may: it may if it is a commitment
    (log format 2) or an entry with nothing personal in it, and fits a bundle. A leaf that
    cannot be read is withheld (fail closed)."""
    if len(leaf) > tiles.MAX_BUNDLE_ENTRY:
        return f"is longer than an entry bundle can carry ({tiles.MAX_BUNDLE_ENTRY} bytes)"
    try:
        value = decode_entry(leaf)
    except EntryError:
        return "cannot be read (run consent-ledger verify)"
    if not is_committed(value) and value.get("type") in COMMITTED_TYPES:
        return (
            "was written before log format 2 and its leaf holds an entry about a person in the "
            "clear"
        )
    return None
