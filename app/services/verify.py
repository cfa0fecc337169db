"""Offline verification of the whole stored log (``consent-ledger verify``).

Streams the entries in index order and, for each one, re-hashes the stored leaf (RFC 9162
§2.1.1), checks that it is canonical JSON and that indexes are dense, and rebuilds the tree with
a compact range, comparing every perfect-subtree node it creates with the stored one (the
nodes proofs are served from). Every stored checkpoint's signature is verified, and its root
must equal the rebuilt root at its size. Because every checkpoint's root is recomputed from the
one leaf sequence, consecutive checkpoints are consistent exactly when each matches; the newest
must also describe the whole stored tree. Memory is O(log n) plus one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from app.ledger import merkle
from app.ledger.checkpoint import CheckpointVerifier
from app.ledger.entry import decode_entry
from app.ledger.errors import EntryError, VerificationError
from app.models import LogCheckpoint, LogEntry, LogHead, LogNode

BATCH = 5_000
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    size: int
    checkpoints: int
    problem: str | None = None
    first_bad_index: int | None = None


class _Bad(Exception):
    def __init__(self, message: str, index: int | None) -> None:
        super().__init__(message)
        self.index = index


def _stored_nodes(session: Session, start: int, end: int) -> dict[merkle.NodeId, bytes]:
    """Nodes created while appending leaves [start, end): node (l, i) completes at leaf
    (i + 1) * 2**l - 1, so per level i runs from start >> l to (end >> l) - 1."""
    clauses = []
    for level in range(end.bit_length()):
        lo, hi = start >> level, (end >> level) - 1
        if lo <= hi:
            clauses.append(and_(LogNode.level == level, LogNode.idx.between(lo, hi)))
    if not clauses:
        return {}
    rows = session.execute(select(LogNode.level, LogNode.idx, LogNode.hash).where(or_(*clauses)))
    return {(lv, i): h for lv, i, h in rows}


def _checkpoints(session: Session, size: int) -> Iterator[LogCheckpoint]:
    yield from session.execute(
        select(LogCheckpoint)
        .where(LogCheckpoint.tree_size <= size)
        .order_by(LogCheckpoint.tree_size)
        .execution_options(yield_per=1000)
    ).scalars()


def verify_log(
    session: Session, verifier: CheckpointVerifier, progress: Progress | None = None
) -> VerifyResult:
    head = session.get(LogHead, 1)
    size = head.size if head else 0
    checked = 0
    try:
        if head is None:
            raise _Bad("the log head row is missing", None)
        tree = merkle.CompactRange()
        checkpoints = _checkpoints(session, size)
        pending = next(checkpoints, None)
        good_through = 0
        start = 0
        while True:
            rows = list(
                session.execute(
                    select(LogEntry.idx, LogEntry.leaf, LogEntry.leaf_hash)
                    # Bounded by the head read above: on a live database, rows appended
                    # since belong to a tree this verification did not start from.
                    .where(LogEntry.idx >= start, LogEntry.idx < size)
                    .order_by(LogEntry.idx)
                    .limit(BATCH)
                )
            )
            if not rows:
                break
            end = start + len(rows)
            stored = _stored_nodes(session, start, end)
            for idx, leaf, recorded in rows:
                if idx != tree.size:
                    raise _Bad(
                        f"entry {tree.size} is missing (next stored index is {idx})", tree.size
                    )
                computed = merkle.leaf_hash(leaf)
                if computed != recorded:
                    raise _Bad(
                        f"entry {idx}: the stored leaf does not hash to its recorded leaf hash", idx
                    )
                try:
                    decode_entry(leaf)
                except EntryError:
                    raise _Bad(f"entry {idx}: the leaf is not canonical JSON", idx) from None
                for node_id, h in tree.append_hash(computed):
                    if stored.get(node_id) != h:
                        raise _Bad(
                            f"entry {idx}: stored tree node {node_id} differs from the "
                            "one rebuilt from the leaves",
                            idx,
                        )
                while pending is not None and pending.tree_size == tree.size:
                    _check_checkpoint(verifier, pending, tree.root(), good_through)
                    checked += 1
                    good_through = tree.size
                    pending = next(checkpoints, None)
                if pending is not None and pending.tree_size < tree.size:
                    raise _Bad(
                        f"a checkpoint is stored for size {pending.tree_size}, which "
                        "is out of order",
                        None,
                    )
            start = end
            if progress:
                progress(tree.size, size)
        if pending is not None:
            raise _Bad(
                f"a checkpoint is signed for size {pending.tree_size} but only "
                f"{tree.size} entries are stored",
                tree.size,
            )
        if tree.size != size:
            raise _Bad(
                f"the log head says {size} entries but {tree.size} are stored", min(size, tree.size)
            )
        beyond = session.execute(
            select(LogEntry.idx).where(LogEntry.idx >= size).limit(1)
        ).scalar_one_or_none()
        if beyond is not None:
            raise _Bad(f"entry {beyond} is stored beyond the log head's size {size}", beyond)
        later = session.execute(
            select(LogCheckpoint.tree_size).where(LogCheckpoint.tree_size > size).limit(1)
        ).scalar_one_or_none()
        if later is not None:
            raise _Bad(f"a checkpoint is stored for size {later}, beyond the log head", size)
        if size and good_through != size:
            raise _Bad(
                f"no signed checkpoint covers entries {good_through} to {size - 1}", good_through
            )
        if head.root_hash != tree.root():
            raise _Bad("the log head's root differs from the rebuilt tree's", None)
    except _Bad as bad:
        return VerifyResult(False, size, checked, str(bad), bad.index)
    return VerifyResult(True, size, checked)


def _check_checkpoint(
    verifier: CheckpointVerifier, row: LogCheckpoint, root: bytes, good_through: int
) -> None:
    try:
        signed = verifier.verify(row.note)
    except VerificationError:
        raise _Bad(
            f"the checkpoint for size {row.tree_size} has no valid signature from the log's key",
            None,
        ) from None
    if signed.size != row.tree_size or signed.root_hash != row.root_hash:
        raise _Bad(
            f"the checkpoint row for size {row.tree_size} disagrees with its signed note", None
        )
    if signed.root_hash != root:
        where = (
            f"entry {good_through}"
            if row.tree_size - good_through == 1
            else f"entries {good_through} to {row.tree_size - 1}"
        )
        raise _Bad(
            f"{where}: the tree rebuilt from the stored leaves does not match the "
            f"signed checkpoint for size {row.tree_size}",
            good_through,
        )
