"""The log in the database: appends, proofs and the start-up consistency check.

Appends run inside a write transaction, which is one batch of the sequencer
(app.services.log.sequencer, through which every use case of the service writes): the first
append locks the log head and checks the tree (:meth:`LogStore.open`), each append assigns dense
indexes and computes the new perfect-subtree nodes in memory, and :meth:`LogStore.seal`, just
before the commit, signs one checkpoint over the new root and writes everything. Until the
commit nothing is visible, and a rollback leaves no gap because indexes come from the head row,
not a sequence.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from app.errors import FieldError as FE
from app.errors import InvalidArgument, NotFound
from app.ledger import merkle
from app.ledger.checkpoint import (
    Checkpoint,
    CheckpointSigner,
    CheckpointVerifier,
    KeyRing,
    ListedKey,
    sign_checkpoint,
)
from app.ledger.commitment import SALT_BYTES, commit
from app.ledger.entry import encode_entry
from app.ledger.errors import EntryError, VerificationError
from app.ledger.events import DecisionMade, DisclosureRecorded
from app.models import (
    LogCheckpoint,
    LogEntry,
    LogHead,
    LogNode,
    LogOpening,
    SigningKey,
    table,
)
from app.services.log import openings
from app.services.log.keys import KeyFileError

if TYPE_CHECKING:
    from app.services.log.published import PublishedRecord

logger = logging.getLogger(__name__)

ENTRY_FORMAT_VERSION = 1
MAX_INDEX = 2**63 - 1  # BIGINT


PUBLISHED = "published_checkpoint"


class LogInconsistent(Exception):
    """The stored tree contradicts the newest signed checkpoint (or is not there at all)."""


class RollbackDetected(LogInconsistent):
    """The database does not contain the newest checkpoint this instance published: it was
    restored from an older copy or swapped for another history."""


_RESTORE_OR_ACCEPT = (
    "Restore a copy that contains it (`consent-ledger restore`), or record the loss with "
    "`consent-ledger accept-rollback`"
)


def check_extends(published: Checkpoint, size: int, nodes: Mapping[merkle.NodeId, bytes]) -> None:
    """Raise :class:`RollbackDetected` unless the stored tree of ``size`` entries extends the
    ``published`` checkpoint (RFC 9162 section 2.1.4): the root of its first
    ``published.size`` leaves, from the stored perfect-subtree ``nodes``, is the published
    root."""
    if published.size > size:
        raise RollbackDetected(
            f"the database holds {size} entries but this service published a checkpoint for "
            f"size {published.size} (root {published.root_hash.hex()}): it looks restored "
            f"from an older copy. {_RESTORE_OR_ACCEPT}"
        )
    if published.size == 0:
        return
    try:
        root = merkle.tree_root(published.size, nodes)
    except KeyError:
        root = None
    if root != published.root_hash:
        raise RollbackDetected(
            f"the database's tree at size {published.size} differs from the checkpoint this "
            f"service published for that size (root {published.root_hash.hex()}): it is "
            f"another history. {_RESTORE_OR_ACCEPT}"
        )


@dataclass
class LockedHead:
    """The log head as this transaction holds it locked (kept current by its appends)."""

    size: int
    root_hash: bytes


@dataclass(frozen=True)
class Publication:
    """A checkpoint a write signed, to be recorded once its transaction commits.

    ``prefixes`` are (size, root) pairs of trees the write itself found inside the one it
    signed (the published checkpoint it checked against, the head it extended): a record that
    holds one of them needs no consistency proof to be advanced.
    """

    note: str
    checkpoint: Checkpoint
    prefixes: tuple[tuple[int, bytes], ...]
    # The keys the log listed when it was signed: the record's notes are checked under them.
    ring: KeyRing
    # Signed on purpose over a tree that does not contain the recorded checkpoint (an operator
    # accepted a rollback): it replaces the record instead of advancing it.
    declares_fork: bool = False


class Seal:
    """The checkpoint that will cover a transaction's appends: signed once, when the transaction
    is sealed (just before it commits), so every receipt of one batch shares it."""

    __slots__ = ("note",)

    def __init__(self) -> None:
        self.note: str | None = None


@dataclass(frozen=True)
class Receipt:
    index: int
    leaf_hash: bytes
    seal: Seal

    @property
    def checkpoint(self) -> str:
        """The signed checkpoint covering this entry (known once its transaction is sealed)."""
        if self.seal.note is None:
            raise RuntimeError("the receipt's checkpoint is signed when its batch is sealed")
        return self.seal.note

    @property
    def size(self) -> int:
        """The tree size of the checkpoint covering this entry."""
        return Checkpoint.from_body(self.checkpoint.split("\n\n", 1)[0].encode() + b"\n").size

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "leaf_hash": self.leaf_hash.hex(),
            "checkpoint": self.checkpoint,
            # The same receipt as a c2sp.org/tlog-proof, at this checkpoint's size, so that it
            # ends in the very checkpoint above (GET /v1/log/proof/receipt).
            "proof": f"/v1/log/proof/receipt?index={self.index}&size={self.size}",
        }


@dataclass(frozen=True)
class InclusionProof:
    index: int
    size: int
    leaf_hash: bytes
    root_hash: bytes
    hashes: list[bytes]


@dataclass(frozen=True)
class ConsistencyProof:
    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    hashes: list[bytes]


def make_entry(entry_type: str, time: datetime, data: Mapping[str, Any]) -> dict[str, Any]:
    """The envelope every leaf shares: format version, type, UTC time, and the payload."""
    return {
        "v": ENTRY_FORMAT_VERSION,
        "type": entry_type,
        "time": time.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "data": dict(data),
    }


# The append path's statements, built once: constructing them per call (coercing columns,
# computing cache keys) cost more than running them. Core statements on the tables, run on the
# session's connection, not through the ORM.
_INSERT_ENTRIES = insert(table(LogEntry))
_INSERT_OPENINGS = insert(table(LogOpening))
_INSERT_NODES = insert(table(LogNode))
_INSERT_CHECKPOINT = insert(table(LogCheckpoint))
_UPDATE_HEAD = (
    update(table(LogHead))
    .where(table(LogHead).c.id == 1)
    .values(
        size=bindparam("new_size"), root_hash=bindparam("new_root"), updated_at=bindparam("now")
    )
)
_LOCK_HEAD = (
    select(table(LogHead).c.size, table(LogHead).c.root_hash)
    .where(table(LogHead).c.id == 1)
    .with_for_update()
)
_CHECKPOINT_NOTE = select(table(LogCheckpoint).c.note).where(
    table(LogCheckpoint).c.tree_size == bindparam("size")
)
_HEAD_SIZE = "SELECT size FROM log_head WHERE id = 1"
_SIGNING_KEYS = select(
    table(SigningKey).c.generation,
    table(SigningKey).c.vkey,
    table(SigningKey).c.first_size,
    table(SigningKey).c.last_size,
).order_by(table(SigningKey).c.generation.desc())
# Positional placeholders of the DB-API drivers supported (sqlite3: qmark; psycopg: pyformat).
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
_NODE_SLOTS = 8
_NODE_QUERIES: dict[tuple[str, int], str] = {}


def _node_query(mark: str, slots: int) -> str:
    sql = _NODE_QUERIES.get((mark, slots))
    if sql is None:
        where = " OR ".join(f"(level = {mark} AND idx = {mark})" for _ in range(slots))
        sql = f"SELECT level, idx, hash FROM log_nodes WHERE {where}"  # noqa: S608 (placeholders)
        _NODE_QUERIES[(mark, slots)] = sql
    return sql


def fetch_nodes(session: Session, ids: Iterable[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
    """Fetch perfect-subtree hashes in one query: O(log n) index probes for a proof or append.

    An OR of (level, idx) pairs rather than a row-value IN, because SQLite plans the IN form as
    a full table scan, which would make every append and proof O(n). The pairs are padded (by
    repeating the last) to a multiple of eight, so a handful of statement texts serve every
    call and the driver's statement cache prepares each once. Sent as driver SQL with positional
    parameters: binding named parameters through SQLAlchemy cost more than the query itself
    (errors are still wrapped as SQLAlchemy's). No ORM execution, so no autoflush: these rows
    are only ever written by Core inserts.
    """
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    slots = -(-len(wanted) // _NODE_SLOTS) * _NODE_SLOTS
    wanted += [wanted[-1]] * (slots - len(wanted))
    connection = session.connection()
    mark = _PLACEHOLDERS[connection.dialect.paramstyle]
    flat = tuple(v for node in wanted for v in node)
    rows = connection.exec_driver_sql(_node_query(mark, slots), flat).all()
    return {(level, idx): bytes(h) for level, idx, h in rows}


_APPENDER = "log_appender"
# Entry types that record what was asked or done and change no consent or objection: a cache of
# a person's facts stays true across them (app.services.decisions.facts).
FACTS_UNCHANGED = frozenset({DecisionMade.TYPE, DisclosureRecorded.TYPE})
COMMITTED_TYPES = openings.COMMITTED_TYPES


class Appender:
    """A transaction's appends, held in memory until the transaction is sealed.

    Indexes, leaf hashes and the new perfect-subtree nodes are computed as entries arrive (a
    receipt is final at once); the rows are written, and one checkpoint signed, by
    :meth:`LogStore.seal`. Entries about a person are held as committed leaves (log format 2)
    with their openings beside them (``opening_rows``), written in the same seal.
    """

    def __init__(
        self,
        size: int,
        nodes: dict[merkle.NodeId, bytes],
        prefixes: tuple[tuple[int, bytes], ...],
        declares_fork: bool,
        keys: SigningKeys,
    ) -> None:
        self.start_size = size
        self.keys = keys
        self.nodes = nodes
        self.prefixes = prefixes
        self.declares_fork = declares_fork
        self.entry_rows: list[dict[str, Any]] = []
        self.opening_rows: list[dict[str, Any]] = []
        self.node_rows: list[dict[str, Any]] = []
        self.seal = Seal()
        # People whose consents or objections this transaction has changed (never forgotten on
        # a reset: treating a person as changed is always safe).
        self.changed_subjects: set[str] = set()

    @property
    def size(self) -> int:
        return self.start_size + len(self.entry_rows)

    def add(self, entries: Sequence[Mapping[str, Any]], now: datetime) -> list[Receipt]:
        if not entries:
            raise ValueError("nothing to append")
        receipts = []
        for entry in entries:
            index = self.size
            entry_type = str(entry["type"])
            if entry_type in COMMITTED_TYPES:
                # Log format 2: the leaf commits to the entry without holding it; the salt is
                # fresh per entry, so a guessed entry cannot be confirmed against the leaf.
                leaf, opening = commit(dict(entry), secrets.token_bytes(SALT_BYTES))
                self.opening_rows.append(
                    {
                        "idx": index,
                        "subject_ref": entry["data"]["subject_ref"],
                        "salt": opening.salt,
                        "entry": opening.entry,
                    }
                )
            else:
                leaf = encode_entry(entry)
            lh = merkle.leaf_hash(leaf)
            for (level, idx), h in merkle.nodes_after_append(index, lh, self.nodes):
                self.nodes[(level, idx)] = h
                self.node_rows.append({"level": level, "idx": idx, "hash": h})
            self.entry_rows.append(
                {
                    "idx": index,
                    "leaf": leaf,
                    "leaf_hash": lh,
                    "entry_type": entry_type,
                    "created_at": now,
                }
            )
            receipts.append(Receipt(index, lh, self.seal))
            if entry_type not in FACTS_UNCHANGED:
                subject_ref = entry["data"].get("subject_ref")
                if subject_ref is not None:
                    self.changed_subjects.add(subject_ref)
        return receipts


def has_appends(session: Session) -> bool:
    """Whether this transaction has opened the log for appending (and must be sealed)."""
    return _APPENDER in session.info


def changed_subjects(session: Session) -> set[str]:
    """The people whose consents or objections this transaction has changed so far."""
    appender = session.info.get(_APPENDER)
    return set() if appender is None else appender.changed_subjects


def subjects_appended_since(session: Session, count: int) -> set[str]:
    """The people named by the entries this transaction appended after its first ``count``."""
    appender = session.info.get(_APPENDER)
    if appender is None:
        return set()
    first = appender.start_size + count
    return {row["subject_ref"] for row in appender.opening_rows if row["idx"] >= first}


def appended_count(session: Session) -> int:
    """How many entries this transaction has appended so far."""
    appender = session.info.get(_APPENDER)
    return 0 if appender is None else len(appender.entry_rows)


@dataclass(frozen=True)
class SigningKeys:
    """The keys the log lists (``ring``, newest first, each with its period) and the private
    keys this process signs with: every listed key still signing that it holds, oldest first
    (the order of the signature lines)."""

    ring: KeyRing
    signers: tuple[CheckpointSigner, ...]
    generations: tuple[int, ...]
    """The generation of each listed key, in ``ring`` order."""


KeyRows = tuple[tuple[int, str, int, int | None], ...]


class LogStore:
    def __init__(
        self, load_keys: Callable[[], dict[int, CheckpointSigner]], published: PublishedRecord
    ) -> None:
        """``load_keys`` reads the signing keys this instance holds, by generation
        (app.services.log.keys.load_signing_keys); ``published`` is the instance's
        published-checkpoint record, which every append checks against before signing."""
        self._load_keys = load_keys
        self._held = load_keys()
        self._keys: tuple[KeyRows, SigningKeys] | None = None
        self.published = published
        self._last_signed: tuple[int, bytes] | None = None

    # -- keys ----------------------------------------------------------------------------------

    @property
    def signer(self) -> CheckpointSigner:
        """The newest signing key this process holds. Not necessarily one the log lists (a
        rotation cut short leaves an unlisted file): the key to publish is
        ``signing_keys.newest_vkey``."""
        if not self._held:
            self._held = self._load_keys()
        return self._held[max(self._held)]

    def keys(self, session: Session) -> SigningKeys:
        """The signing keys as the database lists them now (one small query), with the private
        keys this process holds for those still signing. A worker started before a rotation
        picks up the new key here, at its next write, without a restart; a retired key is
        never used again once its row says so, whatever the files say."""
        rows: KeyRows = tuple(
            (g, v, f, last) for g, v, f, last in session.connection().execute(_SIGNING_KEYS)
        )
        cached = self._keys
        if cached is not None and cached[0] == rows:
            return cached[1]
        keys, complete = self._build_keys(rows)
        if complete:  # one still missing is looked for again at the next write
            self._keys = (rows, keys)
        return keys

    def _build_keys(self, rows: KeyRows) -> tuple[SigningKeys, bool]:
        if not rows:
            # Never rotated: the one key of signing-key.pem signs every checkpoint.
            first = self._held.get(1)
            if first is None:
                self._held = self._load_keys()
                first = self._held.get(1)
            if first is None:
                raise KeyFileError(
                    "the database lists no signing keys and signing-key.pem is gone: a database "
                    "from before a rotation whose first key was since retired? Restore a copy "
                    "taken after the rotation (`keys rotate-signing`), or put the key back"
                )
            return SigningKeys(KeyRing([ListedKey(first.verifier(), 0)]), (first,), (1,)), True
        ring = KeyRing(
            [ListedKey(CheckpointVerifier.from_verifier_key(v), f, last) for _, v, f, last in rows]
        )
        active = [(g, v) for g, v, _, last in reversed(rows) if last is None]
        retired = {g for g, _, _, last in rows if last is not None}
        # A retired key's private half is dropped from memory too, not only from the folder.
        self._held = {g: s for g, s in self._held.items() if g not in retired}
        if any(self._held.get(g) is None for g, _ in active):
            self._held = {g: s for g, s in self._load_keys().items() if g not in retired}
        signers = []
        for generation, vkey in active:
            signer = self._held.get(generation)
            if signer is not None and signer.verifier_key() != vkey:
                raise KeyFileError(
                    f"the signing key file of generation {generation} is not the key the log "
                    f"lists for it ({vkey}): put the right file back"
                )
            if signer is not None:
                signers.append(signer)
        if not signers:
            raise KeyFileError(
                "this instance holds none of the log's current signing keys "
                f"({', '.join(v for _, v in active)}): copy the newest file of signing-keys/ "
                "from the host that rotated it"
            )
        complete = len(signers) == len(active)
        if not complete:
            logger.warning(
                "signing with %d of the log's %d current keys: copy the missing file of "
                "signing-keys/ to this host before `keys rotate-signing --retire-old`",
                len(signers),
                len(active),
            )
        return SigningKeys(ring, tuple(signers), tuple(g for g, _, _, _ in rows)), complete

    # -- writing -------------------------------------------------------------------------------

    def append(
        self,
        session: Session,
        entries: Sequence[Mapping[str, Any]],
        now: datetime,
        *,
        declare_fork: bool = False,
    ) -> list[Receipt]:
        """Append ``entries`` (already in envelope form) to this transaction's batch.

        The first append of a transaction opens the batch (:meth:`open`); the batch is signed
        once, by :meth:`seal`, just before the transaction commits, so the receipts' shared
        checkpoint is known once the transaction is sealed. ``declare_fork`` is for the one
        entry that records an operator's acceptance of a rollback (see :meth:`open`)."""
        return self.open(session, declare_fork=declare_fork).add(entries, now)

    def open(self, session: Session, *, declare_fork: bool = False) -> Appender:
        """Lock the log head and check the tree, once per transaction, before anything is
        appended: the head root is reproduced from the stored nodes, the tree must extend the
        newest checkpoint this instance published, and the head must be the tree its stored,
        signed note commits to.

        ``declare_fork`` skips the published-record check: the entry that records an
        operator's acceptance of a rollback is signed over a tree that does not contain the
        recorded checkpoint, and replaces the record once committed."""
        appender = session.info.get(_APPENDER)
        if appender is not None:
            assert isinstance(appender, Appender)
            if appender.declares_fork != declare_fork:
                raise RuntimeError("a declared fork is appended in a transaction of its own")
            return appender
        head = self.lock_head(session)
        size = head.size
        connection = session.connection()
        # Read with the head locked: a rotation (which writes alone, under the same lock)
        # changes them only between batches, so this batch signs with one set of keys.
        keys = self.keys(session)
        # The newest checkpoint this instance published, read now that the head is locked:
        # every note in the record was committed before it was recorded, so the locked tree
        # contains it unless the database was rolled back under the service.
        try:
            published = None if declare_fork else self.published.newest(keys.ring)
        except OSError as exc:
            # Fail closed: without the record, a rolled-back tree cannot be told apart.
            raise LogInconsistent(f"the published record cannot be read: {exc}") from None
        # Every future sibling is one of the current tree's root subtrees, so fetching those
        # is all an append needs, with the published tree's root subtrees in the same query.
        wanted = merkle.root_node_ids(size)
        if published is not None and published.size < size:
            wanted += merkle.root_node_ids(published.size)
        nodes = fetch_nodes(session, wanted)
        try:
            root = merkle.tree_root(size, nodes)
        except KeyError:
            raise LogInconsistent(f"stored tree nodes are missing at size {size}") from None
        if root != head.root_hash:
            raise LogInconsistent(f"stored nodes do not reproduce the head root at size {size}")
        # Never sign a checkpoint that does not extend the newest one published (RFC 9162
        # section 2.1.4): a tree rolled back under the running service is refused here, before
        # anything is signed, in whichever process writes next.
        if published is not None:
            check_extends(published, size, nodes)
        # Before extending the tree, check that it is the one the last *signed* note commits
        # to (its signature, not just the unsigned columns beside it). The tree this process
        # itself last signed needs no signature check: the nodes just reproduced the root it
        # signed. Any other head (another process wrote since, or our transaction rolled
        # back) is checked against its stored, signed note.
        if size and self._last_signed != (size, root):
            last = connection.execute(_CHECKPOINT_NOTE, {"size": size}).scalar()
            if last is None:
                raise LogInconsistent(f"log head at size {size} has no signed checkpoint")
            # Usually the note just read from the record too: verified once, not twice.
            signed = self.published.verify(last, keys.ring)
            if signed is None:
                raise LogInconsistent(f"the checkpoint for size {size} does not verify")
            if signed.size != size or signed.root_hash != root:
                raise LogInconsistent(f"the tree at size {size} differs from its signed checkpoint")
        # The trees this write found inside its own need no proof when the record is advanced.
        prefixes = [(size, root)]
        if published is not None:
            prefixes.append((published.size, published.root_hash))
        appender = Appender(size, nodes, tuple(prefixes), declare_fork, keys)
        session.info[_APPENDER] = appender
        return appender

    def seal(self, session: Session, now: datetime) -> None:
        """Sign one checkpoint over everything this transaction appended and write the batch:
        entries, new nodes, the checkpoint and the head, one statement each. Called just before
        the transaction commits; the checkpoint is recorded once it has (PUBLISHED)."""
        appender = session.info.pop(_APPENDER, None)
        if appender is None:
            return
        assert isinstance(appender, Appender)
        if not appender.entry_rows:
            return
        new_size = appender.size
        new_root = merkle.tree_root(new_size, appender.nodes)
        keys = appender.keys
        checkpoint = Checkpoint(keys.ring.name, new_size, new_root)
        # One line per key still signing: during a rotation's overlap, both.
        note = sign_checkpoint(checkpoint, keys.signers)
        self.published.remember(note, checkpoint, keys.ring)
        # Core statements, not ORM objects: an append is the hot path of every write, and the
        # unit of work's bookkeeping cost more than the statements themselves.
        connection = session.connection()
        connection.execute(_INSERT_ENTRIES, appender.entry_rows)
        if appender.opening_rows:
            connection.execute(_INSERT_OPENINGS, appender.opening_rows)
        connection.execute(_INSERT_NODES, appender.node_rows)
        connection.execute(
            _INSERT_CHECKPOINT,
            {"tree_size": new_size, "root_hash": new_root, "note": note, "created_at": now},
        )
        connection.execute(_UPDATE_HEAD, {"new_size": new_size, "new_root": new_root, "now": now})
        head = self.lock_head(session)
        head.size = new_size
        head.root_hash = new_root
        self._last_signed = (new_size, new_root)
        appender.seal.note = note
        # Recorded once the transaction commits (app.services.log.published), never before.
        session.info[PUBLISHED] = Publication(
            note, checkpoint, appender.prefixes, keys.ring, appender.declares_fork
        )

    def lock_head(self, session: Session) -> LockedHead:
        """Lock the log head for the rest of the transaction; every write use case starts here,
        so writes serialise before they read anything they will decide on. The lock lasts until
        the transaction ends, so later calls in it reuse the row instead of asking again."""
        head = session.info.get("log_head")
        if head is None:
            row = session.connection().execute(_LOCK_HEAD).first()
            if row is None:  # a restore half done (pg_restore --clean), or a wrong database
                raise LogInconsistent("the log head row is missing")
            head = LockedHead(*row)
            session.info["log_head"] = head
        assert isinstance(head, LockedHead)
        return head

    # -- reading -------------------------------------------------------------------------------

    def size(self, session: Session) -> int:
        # Driver SQL: every proof starts here, and an ORM select cost several times the query.
        size: int = session.connection().exec_driver_sql(_HEAD_SIZE).scalar_one()
        return size

    def latest_checkpoint(self, session: Session) -> LogCheckpoint | None:
        return session.execute(
            select(LogCheckpoint).order_by(LogCheckpoint.tree_size.desc()).limit(1)
        ).scalar_one_or_none()

    def entry(self, session: Session, index: int) -> openings.Read:
        """The stored entry with its opening, if it has one. An entry that cannot be read (a
        leaf not canonical, an opening missing or wrong: only tampering or loss produce them)
        comes back ``unreadable`` with its bytes, which are served as they are; ``verify``
        names it."""
        row = session.get(LogEntry, index) if index <= MAX_INDEX else None
        if row is None:
            size = self.size(session)
            raise NotFound(
                f"there is no entry {index}: the log holds entries 0 to {size - 1}"
                if size
                else "the log is empty"
            )
        try:
            return openings.read(session, index, row)
        except (EntryError, openings.UnreadableEntry):
            logger.error("log entry %d cannot be read: run consent-ledger verify", index)
            return openings.Read(index, row.leaf, row.leaf_hash, "unreadable", None, None)

    def _checked_size(self, session: Session, size: int | None, field: str) -> tuple[int, int]:
        current = self.size(session)
        if current == 0:
            raise InvalidArgument("the log is empty: there is nothing to prove")
        if size is None:
            return current, current
        if not 1 <= size <= current:
            raise InvalidArgument(
                f"{field} must be between 1 and the log size {current}",
                errors=[FE(field, f"{size} is outside 1..{current}", "query")],
            )
        return size, current

    def inclusion_proof(self, session: Session, index: int, size: int | None) -> InclusionProof:
        size, _ = self._checked_size(session, size, "size")
        if not 0 <= index < size:
            raise InvalidArgument(
                f"index must be below the tree size {size}",
                errors=[FE("index", f"{index} is outside 0..{size - 1}", "query")],
            )
        ranges = merkle.inclusion_proof_ranges(index, size)
        ids = merkle.node_ids_for_ranges(ranges) | set(merkle.root_node_ids(size)) | {(0, index)}
        nodes = fetch_nodes(session, ids)
        return InclusionProof(
            index=index,
            size=size,
            leaf_hash=nodes[(0, index)],
            root_hash=merkle.tree_root(size, nodes),
            hashes=merkle.inclusion_proof(index, size, nodes),
        )

    def consistency_proof(
        self, session: Session, old_size: int, new_size: int | None
    ) -> ConsistencyProof:
        new_size, _ = self._checked_size(session, new_size, "to")
        if not 1 <= old_size <= new_size:
            raise InvalidArgument(
                f"from must be between 1 and to ({new_size})",
                errors=[FE("from", f"{old_size} is outside 1..{new_size}", "query")],
            )
        ranges = merkle.consistency_proof_ranges(old_size, new_size)
        ids = (
            merkle.node_ids_for_ranges(ranges)
            | set(merkle.root_node_ids(old_size))
            | set(merkle.root_node_ids(new_size))
        )
        nodes = fetch_nodes(session, ids)
        return ConsistencyProof(
            old_size=old_size,
            new_size=new_size,
            old_root=merkle.tree_root(old_size, nodes),
            new_root=merkle.tree_root(new_size, nodes),
            hashes=merkle.consistency_proof(old_size, new_size, nodes),
        )

    # -- start-up check ------------------------------------------------------------------------

    def check_against_checkpoint(self, session: Session) -> int:
        """Fail unless the stored tree is the one the newest signed checkpoint commits to.

        O(log n): signature, sizes, the root recomputed from stored nodes, and the newest leaf
        re-hashed. The full re-hash of every leaf is ``consent-ledger verify``.
        """
        head = session.get(LogHead, 1)
        if head is None:
            raise LogInconsistent("the log head row is missing")
        # max() walks the primary key index; a count would scan the whole table at start-up.
        top = session.execute(select(func.max(LogEntry.idx))).scalar_one()
        stored = 0 if top is None else top + 1
        if stored != head.size:
            raise LogInconsistent(f"log head says {head.size} entries but {stored} are stored")
        latest = self.latest_checkpoint(session)
        if head.size == 0:
            if latest is not None:
                raise LogInconsistent("the log is empty but checkpoints are stored")
            return 0
        if latest is None:
            raise LogInconsistent(f"{head.size} entries are stored but no signed checkpoint")
        try:
            signed = self.keys(session).ring.verify(latest.note)
        except VerificationError:
            raise LogInconsistent(
                f"the newest checkpoint (size {latest.tree_size}) does not verify under this "
                "instance's signing key"
            ) from None
        if signed.size != head.size:
            raise LogInconsistent(
                f"the newest signed checkpoint is for size {signed.size} but the log holds "
                f"{head.size} entries"
            )
        nodes = fetch_nodes(session, merkle.root_node_ids(head.size))
        try:
            root = merkle.tree_root(head.size, nodes)
        except KeyError:
            raise LogInconsistent("stored tree nodes are missing") from None
        if root != signed.root_hash or root != head.root_hash:
            raise LogInconsistent(
                f"the stored tree's root at size {head.size} differs from the newest signed "
                "checkpoint's"
            )
        newest = session.get(LogEntry, head.size - 1)
        if newest is None or merkle.leaf_hash(newest.leaf) != newest.leaf_hash:
            raise LogInconsistent(f"entry {head.size - 1} does not match its leaf hash")
        return head.size
