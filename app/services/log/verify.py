"""Offline verification of the whole stored log (``consent-ledger verify``).

Streams the entries in index order and, for each one, re-hashes the stored leaf (RFC 9162
§2.1.1), checks that it is canonical JSON and that indexes are dense, and rebuilds the tree with
a compact range, comparing every perfect-subtree node it creates with the stored one (the
nodes proofs are served from). Every stored checkpoint's signature is verified, and its root
must equal the rebuilt root at its size. Because every checkpoint's root is recomputed from the
one leaf sequence, consecutive checkpoints are consistent exactly when each matches; the newest
must also describe the whole stored tree. Memory is O(log n) plus one batch.

Each batch is checked in bulk first: leaves hashed in a list, the tree rebuilt level by level
(:meth:`~app.ledger.merkle.CompactRange.extend`) and each level compared with the stored
level as one list, the canonical form confirmed by the standard library's C JSON codec where
that is provably the RFC 8785 form (see :func:`_surely_canonical`). Every batch the bulk check
passes, the entry-by-entry check passes too. Any other batch, whatever the reason, is checked
again entry by entry (:func:`_check_batch_by_entry`, the reference algorithm), which names the
first bad entry; so a damaged log gets the same report either way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import and_, or_, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.ledger import merkle
from app.ledger.checkpoint import CheckpointVerifier, KeyRing
from app.ledger.entry import MAX_DEPTH, MAX_LEAF_BYTES, decode_entry
from app.ledger.errors import EntryError, VerificationError
from app.models import LogCheckpoint, LogEntry, LogHead, LogNode
from app.services.container import Ledger
from app.services.decisions import dashboard
from app.services.log import openings, rebuild
from app.services.log.log_store import RollbackDetected
from app.services.log.published import check_contains_published
from app.services.log.replay import AnswerAudit, Unfounded

BATCH = 5_000
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    size: int
    checkpoints: int
    problem: str | None = None
    first_bad_index: int | None = None
    # Committed leaves whose openings an erasure deleted (a subject.erased entry lists each).
    erased: int = 0


class _Bad(Exception):
    def __init__(self, message: str, index: int | None) -> None:
        super().__init__(message)
        self.index = index


class _StoredCheckpoint(NamedTuple):
    tree_size: int
    root_hash: bytes
    note: str


# -- canonical JSON, fast where provably equal to RFC 8785 ------------------------------------

_I_JSON_MAX = 2**53 - 1


class _Undecided(ValueError):
    """Not provably canonical by the fast check: :func:`decode_entry` decides."""


def _undecided(_: str) -> Any:
    raise _Undecided


def _i_json_int(digits: str) -> int:
    if len(digits) > 17:
        raise _Undecided
    value = int(digits)
    if not -_I_JSON_MAX <= value <= _I_JSON_MAX:
        raise _Undecided
    return value


# Built once: json.loads/json.dumps with keyword arguments build a new codec per call.
_DECODER = json.JSONDecoder(
    parse_float=_undecided, parse_int=_i_json_int, parse_constant=_undecided
)
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, check_circular=False, allow_nan=False, sort_keys=True,
    separators=(",", ":"),
)  # fmt: skip
_NOT_BMP = re.compile(rb"[\xf0-\xff]")  # lead bytes of 4-byte UTF-8 (and invalid bytes)


def _surely_canonical(leaf: object) -> bool:
    """True only if :func:`decode_entry` accepts ``leaf``; False means "ask it".

    The leaf is parsed and re-serialised by the C ``json`` codec (members sorted, no
    whitespace, UTF-8 kept literal) and must come back byte for byte. That serialisation is
    RFC 8785's for every value that can get here: ``json`` and ``rfc8785`` escape strings the
    same way (``\\" \\\\ \\b \\f \\n \\r \\t``, other controls ``\\u00xx``, nothing else),
    both write integers in decimal, and code-point order (``sort_keys``) equals RFC 8785's
    UTF-16 order when no character lies outside the BMP, which a leaf without 4-byte UTF-8
    sequences guarantees (it must contain every character literally to match). What
    :func:`decode_entry` refuses beyond that is refused here first: floats, NaN and
    Infinity, integers outside I-JSON (``parse_int``), nesting deeper than ``MAX_DEPTH``
    (bounded by the number of brackets), oversize leaves, non-objects, lone surrogates (they
    cannot be encoded to UTF-8) and duplicate members (the re-serialisation drops one, so
    the bytes differ). Anything unusual, and any non-bytes value, is left to ``decode_entry``.
    """
    if type(leaf) is not bytes or len(leaf) > MAX_LEAF_BYTES:
        return False
    if leaf.count(b"{") + leaf.count(b"[") > MAX_DEPTH:
        return False
    if not leaf.isascii() and _NOT_BMP.search(leaf):
        return False
    try:
        value = _DECODER.decode(leaf.decode("utf-8"))
        if type(value) is not dict:
            return False
        return _ENCODER.encode(value).encode("utf-8") == leaf
    except (ValueError, RecursionError):  # _Undecided, JSONDecodeError, UnicodeError
        return False


# -- reading ----------------------------------------------------------------------------------

_ENTRIES = text(
    "SELECT idx, leaf, leaf_hash FROM log_entries WHERE idx >= :start AND idx < :end ORDER BY idx"
)
_LEVEL = text(
    "SELECT idx, hash FROM log_nodes WHERE level = :level AND idx >= :first AND idx <= :last "
    "ORDER BY idx"
)


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


class _Checkpoints:
    """The stored checkpoints up to the head's size, in size order, with look-ahead."""

    def __init__(self, session: Session, size: int) -> None:
        table = LogCheckpoint.__table__
        rows = session.connection().execute(
            select(table.c.tree_size, table.c.root_hash, table.c.note)
            .where(table.c.tree_size <= size)
            .order_by(table.c.tree_size)
            .execution_options(yield_per=1000)
        )
        self._rows: Iterator[Any] = iter(rows)
        self._ahead: deque[_StoredCheckpoint] = deque()

    def _pull(self) -> bool:
        row = next(self._rows, None)
        if row is None:
            return False
        self._ahead.append(_StoredCheckpoint(row.tree_size, row.root_hash, row.note))
        return True

    def peek(self) -> _StoredCheckpoint | None:
        if not self._ahead and not self._pull():
            return None
        return self._ahead[0]

    def pop(self) -> None:
        self._ahead.popleft()

    def through(self, size: int) -> list[_StoredCheckpoint]:
        """The next checkpoints for sizes up to ``size``, without taking them."""
        while (not self._ahead or self._ahead[-1].tree_size <= size) and self._pull():
            pass
        out = []
        for row in self._ahead:
            if row.tree_size > size:
                break
            out.append(row)
        return out


@dataclass
class _Walk:
    ring: KeyRing
    checkpoints: _Checkpoints
    tree: merkle.CompactRange
    good_through: int = 0
    checked: int = 0


# -- the check --------------------------------------------------------------------------------


def verify_log(
    session: Session,
    ring: KeyRing,
    progress: Progress | None = None,
    progress_opened: Progress | None = None,
) -> VerifyResult:
    head = session.get(LogHead, 1)
    size = head.size if head else 0
    walk: _Walk | None = None
    try:
        if head is None:
            raise _Bad("the log head row is missing", None)
        walk = _Walk(ring, _Checkpoints(session, size), merkle.CompactRange())
        connection = session.connection()
        while walk.tree.size < size:
            start = walk.tree.size
            end = min(start + BATCH, size)
            # Bounded by the head read above: on a live database, rows appended since belong
            # to a tree this verification did not start from.
            ran_out = False
            if not _check_batch_in_bulk(connection, walk, start, end):
                if not _check_batch_by_entry(session, walk, start, size):
                    break  # no entry stored at or after start (below the head's size)
                ran_out = walk.tree.size < end  # the stored entries end early
            if progress:
                progress(walk.tree.size, size)
            if ran_out:
                break
        tree = walk.tree
        pending = walk.checkpoints.peek()
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
        if size and walk.good_through != size:
            raise _Bad(
                f"no signed checkpoint covers entries {walk.good_through} to {size - 1}",
                walk.good_through,
            )
        if head.root_hash != tree.root():
            raise _Bad("the log head's root differs from the rebuilt tree's", None)
        erased = _check_openings(session, size, progress_opened)
    except _Bad as bad:
        return VerifyResult(False, size, walk.checked if walk else 0, str(bad), bad.index)
    return VerifyResult(True, size, walk.checked, erased=erased)


def _check_batch_in_bulk(connection: Connection, walk: _Walk, start: int, end: int) -> bool:
    """Check entries [start, end) in bulk; True if all of them, their nodes and the
    checkpoints up to ``end`` are good. False, with nothing taken or changed, sends the batch
    to the entry-by-entry check; a bad checkpoint raises here exactly as it would there,
    because every entry before it has been found good by then."""
    rows = connection.execute(_ENTRIES, {"start": start, "end": end}).all()
    if len(rows) != end - start:
        return False
    indexes, leaves, recorded = zip(*rows, strict=True)
    if list(indexes) != list(range(start, end)):
        return False
    for leaf in leaves:
        if not _surely_canonical(leaf):
            if type(leaf) is not bytes:
                return False
            try:
                decode_entry(leaf)
            except EntryError:
                return False
    sha256 = hashlib.sha256
    computed = [sha256(b"\x00" + leaf).digest() for leaf in leaves]
    if computed != list(recorded):
        return False
    tree = walk.tree.copy()
    created = tree.extend(computed)
    for level, first, hashes in created:
        last = first + len(hashes) - 1
        stored = connection.execute(_LEVEL, {"level": level, "first": first, "last": last}).all()
        if len(stored) != len(hashes):
            return False
        stored_indexes, stored_hashes = zip(*stored, strict=True)
        if list(stored_hashes) != hashes or list(stored_indexes) != list(range(first, last + 1)):
            return False
    checkpoints = walk.checkpoints.through(end)
    if checkpoints and checkpoints[0].tree_size <= start:
        return False  # out of order: the entry-by-entry check says so where it would
    if checkpoints:
        nodes = dict(walk.tree.root_nodes())
        for level, first, hashes in created:
            nodes.update(
                zip([(level, i) for i in range(first, first + len(hashes))], hashes, strict=True)
            )
        for row in checkpoints:
            _check_checkpoint(
                walk.ring, row, merkle.tree_root(row.tree_size, nodes), walk.good_through
            )
            walk.checkpoints.pop()
            walk.checked += 1
            walk.good_through = row.tree_size
    walk.tree = tree
    return True


def _check_batch_by_entry(session: Session, walk: _Walk, start: int, size: int) -> int:
    """The reference check: up to BATCH entries from ``start``, one at a time, raising
    :class:`_Bad` at the first problem. Returns how many entries were read."""
    tree = walk.tree
    rows = list(
        session.execute(
            select(LogEntry.idx, LogEntry.leaf, LogEntry.leaf_hash)
            .where(LogEntry.idx >= start, LogEntry.idx < size)
            .order_by(LogEntry.idx)
            .limit(BATCH)
        )
    )
    if not rows:
        return 0
    stored = _stored_nodes(session, start, start + len(rows))
    for idx, leaf, recorded in rows:
        if idx != tree.size:
            raise _Bad(f"entry {tree.size} is missing (next stored index is {idx})", tree.size)
        computed = merkle.leaf_hash(leaf)
        if computed != recorded:
            raise _Bad(f"entry {idx}: the stored leaf does not hash to its recorded leaf hash", idx)
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
        pending = walk.checkpoints.peek()
        while pending is not None and pending.tree_size == tree.size:
            _check_checkpoint(walk.ring, pending, tree.root(), walk.good_through)
            walk.checked += 1
            walk.good_through = tree.size
            walk.checkpoints.pop()
            pending = walk.checkpoints.peek()
        if pending is not None and pending.tree_size < tree.size:
            raise _Bad(
                f"a checkpoint is stored for size {pending.tree_size}, which is out of order",
                None,
            )
    return len(rows)


_OPENINGS = text(
    "SELECT e.idx, e.leaf, o.idx, o.subject_ref, o.salt, o.entry FROM log_entries e "
    "FULL OUTER JOIN log_openings o ON o.idx = e.idx ORDER BY coalesce(e.idx, o.idx)"
)


def _check_openings(session: Session, size: int, progress: Progress | None = None) -> int:
    """Every committed leaf (log format 2) opens to an entry of its type about the person its
    opening row is filed under, or was erased (a ``subject.erased`` entry, later in the log,
    lists it); every opening belongs to a committed leaf. Returns how many entries are erased.

    Run after the tree is proved: the leaves are the ones the checkpoints sign, and only
    SHA-256 is needed to check an opening against its leaf."""
    try:
        erased_by = openings.erased_indexes(session)
    except openings.UnreadableEntry as exc:
        raise _Bad(str(exc), exc.index) from None
    for index, by in erased_by.items():
        # Listed entries come before the erasure that lists them, so they are all in the log.
        if not 0 <= index < by:
            raise _Bad(
                f"the subject.erased entry {by} lists entry {index}, which is not before it", by
            )
    erased = 0
    rows = session.connection().execute(_OPENINGS).yield_per(BATCH)
    for idx, leaf, opening_idx, subject_ref, salt, entry in rows:
        if idx is None:
            raise _Bad(
                f"an opening is stored for entry {opening_idx}, which the log does not hold",
                opening_idx,
            )
        if idx >= size:
            break  # appended since this verification began
        if salt is not None and idx in erased_by:
            raise _Bad(
                f"entry {idx} was erased (subject.erased entry {erased_by[idx]}) but its opening "
                "is still stored",
                idx,
            )
        stored = None if salt is None else (subject_ref, salt, entry)
        try:
            state, _, _ = openings.open_stored(idx, leaf, stored, erased_by, json.loads)
        except EntryError as exc:
            raise _Bad(f"entry {idx}: {exc}", idx) from None
        if state == "erased":
            erased += 1
        if progress is not None and (idx + 1) % BATCH == 0:
            progress(idx + 1, size)
    if progress is not None and size:
        progress(size, size)
    return erased


def _check_checkpoint(
    ring: KeyRing, row: _StoredCheckpoint, root: bytes, good_through: int
) -> None:
    try:
        # Under a key the log lists whose period covers this size, and no other: a note
        # re-signed by a key never listed, or by a retired key after its retirement, fails.
        signed = ring.verify(row.note)
    except VerificationError:
        raise _Bad(
            f"the checkpoint for size {row.tree_size} has no valid signature from a key the "
            "log lists for that size",
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


# -- every logged answer follows from the log, and the projections match it ---------------------


@dataclass(frozen=True)
class AnswersResult:
    """What :func:`verify_answers` found: the first logged decisions and disclosures that do not
    follow from the log (up to a few, with the full count) and the projection differences."""

    decisions: int
    disclosures: int
    unfounded: list[Unfounded]
    unfounded_count: int
    differences: list[str]

    @property
    def ok(self) -> bool:
        return not self.unfounded_count and not self.differences

    @property
    def problem(self) -> str | None:
        """One line naming the first failure of each kind."""
        parts = []
        if self.unfounded:
            parts.append(f"{self.unfounded[0]}")
        if self.differences:
            parts.append(f"projections differ from the log: {self.differences[0]}")
        return "; ".join(parts) or None


def verify_answers(session: Session, size: int, progress: Progress | None = None) -> AnswersResult:
    """Re-evaluate every logged decision and disclosure against the facts the log states just
    before it, under the policy the log had in force there, and compare the projection tables
    with the log (``rebuild --check``'s comparison), in one pass over the log.

    The projections are what the service decides from, and no trigger guards them: an edited
    row yields answers that the log's own facts do not support. Run on a log
    :func:`verify_log` has passed, in the same read transaction (one snapshot). Memory is
    that of ``rebuild --check``, every projection row the log implies (BENCHMARKS.md)."""
    audit = AnswerAudit()
    try:
        # verify_log has just proved every leaf canonical JSON in this snapshot; checking it
        # again (re-encoding each leaf to RFC 8785) was two thirds of this pass.
        expected = rebuild.replay(session, size, progress, also=audit.see, decode=json.loads)
    except rebuild.Unreplayable as exc:
        # The pass stops here. The audit has seen this entry too and names it, unless only a
        # projection needed what is missing (a client's row, say).
        unfounded, count = audit.unfounded, audit.unfounded_count
        if not any(u.index == exc.index for u in unfounded):
            unfounded, count = [*unfounded, Unfounded(exc.index, "entry", exc.reason)], count + 1
        return AnswersResult(audit.decisions, audit.disclosures, unfounded, count, [])
    return AnswersResult(
        audit.decisions,
        audit.disclosures,
        audit.unfounded,
        audit.unfounded_count,
        rebuild.differences(session, expected),
    )


@dataclass(frozen=True)
class InstanceVerified:
    """What ``consent-ledger verify`` found: the log's bytes, then (only if they are sound)
    the answers and projections."""

    log: VerifyResult
    answers: AnswersResult | None
    recorded: bool = True
    """Whether the outcome was recorded for the IG dashboard (only for the log's own key)."""

    @property
    def problem(self) -> str | None:
        return self.answers.problem if self.answers is not None else self.log.problem


def verify_instance(
    ledger: Ledger,
    key: CheckpointVerifier | None = None,
    progress_verified: Progress | None = None,
    progress_replayed: Progress | None = None,
    progress_opened: Progress | None = None,
) -> InstanceVerified:
    """Verify an instance's whole log: the bytes (:func:`verify_log`), that the log contains
    the newest checkpoint the instance published (the published-checkpoint record), then every
    logged answer and the projections (:func:`verify_answers`), all in one read snapshot.

    Signatures are checked under the keys the log lists, each for its own period, or under
    ``key`` alone (an auditor's ``--key``) for every checkpoint. The outcome is recorded for
    the IG dashboard only when the log's own keys were used: a check against any other key
    says nothing about this log, so it must not change the log's status there (a mistyped
    ``--key`` would otherwise mark a sound log "Failed")."""
    listed = ledger.keyring()
    ring = listed if key is None else KeyRing.single(key)
    # The record is read before the snapshot (see check_database_against_record) and judged
    # after the log's bytes, so a bad entry is still named first.
    record_problem: RollbackDetected | None = None
    try:
        ledger.published.refuse_if_fork_detected()
        recorded = ledger.published.read(ring)
    except RollbackDetected as exc:
        recorded, record_problem = None, exc
    answers: AnswersResult | None = None
    with ledger.db.read() as session:
        result = verify_log(session, ring, progress_verified, progress_opened)
        if result.ok and recorded is not None:
            try:
                check_contains_published(session, recorded.checkpoint, result.size)
            except RollbackDetected as exc:
                record_problem = exc
        if result.ok and record_problem is not None:
            result = dataclasses.replace(result, ok=False, problem=str(record_problem))
        # In the same snapshot, and only on a log whose bytes are sound.
        if result.ok:
            answers = verify_answers(session, result.size, progress_replayed)
    # A --key naming the log's one key (never rotated) is a check under the log's own key.
    own_key = ring.fingerprint == listed.fingerprint
    verified = InstanceVerified(result, answers, recorded=own_key)
    if own_key:
        dashboard.record_verification(
            ledger, verified.problem is None, result.size, result.checkpoints, verified.problem
        )
    return verified
