"""The newest checkpoint this instance has published, kept outside the database.

Every signed checkpoint the service hands out is a promise: the log will only ever grow from
it. A database restored from an older copy (or swapped for another) breaks that promise
silently, because the copy is internally consistent: its tree matches its own newest
checkpoint. So the checkpoint each write publishes is also kept in the *published-checkpoint
record*, ``<instance>/newest-checkpoint``, which only ever advances along a consistent
extension (RFC 9162 section 2.1.4). Two checks read it:

- before signing, every write of every process (worker or CLI) checks that the tree it is
  about to extend contains the newest checkpoint in the record, or the newest this process has
  seen, whichever is larger (``LogStore.append``); a database rolled back under a running
  service is refused there, before anything is signed;
- at start-up and on every health check, the database must contain the recorded checkpoint
  (:func:`check_database_against_record`), or the service refuses to serve until an operator
  acts (``consent-ledger restore`` with a newer copy, or ``consent-ledger accept-rollback``,
  which logs the loss).

The file holds only signed notes (origin, size, root, signature): nothing personal. It is no
defence against someone who can rewrite the instance folder as well as the database; the
checkpoints that auditors and case systems keep outside the service are (see SECURITY.md).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from app.ledger import merkle
from app.ledger.checkpoint import Checkpoint, KeyRing
from app.ledger.errors import VerificationError
from app.services.log.log_store import (
    LogStore,
    Publication,
    RollbackDetected,
    check_extends,
    fetch_nodes,
)

__all__ = [
    "FORK_FILE",
    "RECORD_FILE",
    "SLOT",
    "Publication",
    "PublishedRecord",
    "RecordedCheckpoint",
    "RollbackDetected",
    "check_database_against_record",
]

logger = logging.getLogger("consent_ledger.published")

RECORD_FILE = "newest-checkpoint"
# Two signed checkpoints that do not extend one another, kept when the record meets them.
FORK_FILE = "fork-detected"
# Verified notes remembered per process: the record's two slots and the few notes this process
# signed since; a note is verified once, not on every write that reads the record.
_KNOWN_NOTES = 16

# Proves that the tree of ``old`` entries is a prefix of the tree of ``new`` entries (a
# consistency proof, RFC 9162 section 2.1.4.1), from the database.
Prover = Callable[[int, int], Sequence[bytes]]


@dataclass(frozen=True)
class RecordedCheckpoint:
    note: str
    checkpoint: Checkpoint


class PublishedRecord:
    """The record: two fixed slots of ``SLOT`` bytes, each a signed note padded with NULs.

    Each advance overwrites the slot that does not verify, else the one holding the older
    note, and then ``fdatasync``s: no new file, no rename and no change of size, which costs
    less than half of writing a temporary file and renaming it (``bench/bench_record.py``). A
    write torn by a crash spoils only the slot being written, whose note then fails to verify;
    the other slot still holds the note before it, so the record goes back by one write at
    most. The next read finds the spoilt slot, logs a warning and overwrites it with the good
    note. The notes stay plain text (``tr -d '\\0' < newest-checkpoint``), and a file of the
    earlier single-note form is read as its first slot.

    A writer holds the record (an exclusive ``flock``) from just before its transaction commits
    until its checkpoint is recorded (:meth:`publishing`), and every writer reads it under a
    shared lock after locking the log head: so the next writer, which can lock the head only
    after the commit, always reads the checkpoint just published, even if the database is
    rolled back in between. Each process also remembers the newest checkpoint it has read or
    recorded (:attr:`seen`), so a record put back on disk does not lower what it checks
    against either. If two checkpoints that do not extend one another ever meet here, both
    are kept as evidence (``fork-detected``) and the instance refuses to write or serve until
    an operator runs ``consent-ledger accept-rollback``.
    """

    def __init__(self, instance_path: Path) -> None:
        self.path = instance_path / RECORD_FILE
        self.fork_path = instance_path / FORK_FILE
        self._lock_path = instance_path / (RECORD_FILE + ".lock")
        # (the keys' fingerprint, note): verified under them
        self._known: dict[tuple[object, str], Checkpoint] = {}
        self._seen: Checkpoint | None = None
        self._seen_lock = threading.Lock()  # threads of one worker never lower what it saw
        self._holder = threading.local()  # whether this thread holds the record (publishing)

    # -- locking ---------------------------------------------------------------------------

    @contextmanager
    def _locked(self, *, shared: bool = False) -> Iterator[None]:
        if getattr(self._holder, "held", False):
            yield  # this thread holds it exclusively already (publishing)
            return
        # os-level calls, not a file object: every write takes this lock twice.
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    @contextmanager
    def publishing(self) -> Iterator[None]:
        """Hold the record exclusively, from just before a write commits until its checkpoint
        is recorded. Nobody holding it waits for the log head, so there is no lock cycle."""
        with self._locked():
            self._holder.held = True
            try:
                yield
            finally:
                self._holder.held = False

    # -- reading ---------------------------------------------------------------------------

    def notes(self) -> list[str]:
        """The notes in the slots, as stored (unverified; empty if there is no record)."""
        with self._locked(shared=True):
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return []
            try:
                data = os.pread(fd, 2 * SLOT, 0)
            finally:
                os.close(fd)
        return _notes(data)

    @property
    def seen(self) -> Checkpoint | None:
        """The newest checkpoint this process has read from the record or recorded."""
        return self._seen

    def remember(self, note: str, checkpoint: Checkpoint, ring: KeyRing) -> None:
        """A note known to verify under ``ring`` (this process signed it, or checked it): it
        is not verified again when read back."""
        if len(self._known) >= _KNOWN_NOTES:
            self._known.clear()
        self._known[(ring.fingerprint, note)] = checkpoint

    def verify(self, note: str, ring: KeyRing) -> Checkpoint | None:
        """``note``'s checkpoint if it verifies under ``ring`` (a key the log lists, within
        its period; each note is verified once per process), else ``None``."""
        checkpoint = self._known.get((ring.fingerprint, note))
        if checkpoint is None and note:
            try:
                checkpoint = ring.verify(note)
            except VerificationError:
                return None  # a torn write, or not ours: the other slot decides
            self.remember(note, checkpoint, ring)
        return checkpoint

    def _see(self, checkpoint: Checkpoint) -> None:
        with self._seen_lock:
            seen = self._seen
            if seen and seen.size == checkpoint.size and seen.root_hash != checkpoint.root_hash:
                raise RollbackDetected(
                    f"the published-checkpoint record now holds another root for size "
                    f"{seen.size} than this process saw published before: refusing to sign"
                )
            if seen is None or checkpoint.size > seen.size:
                self._seen = checkpoint

    def refuse_if_fork_detected(self) -> None:
        if self.fork_path.exists():
            raise RollbackDetected(
                f"{self.fork_path} holds two signed checkpoints that do not extend one "
                "another: find out how the database changed under the service, then run "
                "`consent-ledger accept-rollback`"
            )

    def newest(self, ring: KeyRing) -> Checkpoint | None:
        """The newest checkpoint this instance is known to have published: the newest in the
        record, or the newest this process saw, whichever is larger. Every write checks
        against it before signing; only the newest slot's note is verified."""
        self.refuse_if_fork_detected()
        notes = self.notes()
        for note in sorted(notes, key=_unverified_size, reverse=True):
            checkpoint = self.verify(note, ring)
            if checkpoint is not None:
                self._see(checkpoint)
                break
        else:
            if notes:
                raise RollbackDetected(
                    f"{self.path} does not hold a checkpoint signed by this instance's keys"
                )
        return self._seen

    def read(self, ring: KeyRing) -> RecordedCheckpoint | None:
        """The newest note in the record that verifies, repairing a slot that does not; a
        record none of whose notes verifies is refused."""
        notes = self.notes()
        if not notes:
            return None
        verified = [
            RecordedCheckpoint(note, checkpoint)
            for note in notes
            if (checkpoint := self.verify(note, ring)) is not None
        ]
        if not verified:
            raise RollbackDetected(
                f"{self.path} does not hold a checkpoint signed by this instance's keys"
            )
        newest = max(verified, key=lambda r: r.checkpoint.size)
        if len(verified) < len(notes):
            self._repair(newest, ring)
        self._see(newest.checkpoint)
        return newest

    # -- writing ---------------------------------------------------------------------------

    def _repair(self, newest: RecordedCheckpoint, ring: KeyRing) -> None:
        """Overwrite a slot that does not verify (a write cut short by a crash, or an edit)
        with the newest note that does."""
        logger.warning(
            "%s: a slot does not hold a checkpoint signed by this instance's keys (a write cut "
            "short?); keeping the newest that does (size %d)",
            self.path,
            newest.checkpoint.size,
        )
        with self._slots() as (fd, stored):
            for i, note in enumerate(stored):
                if note and self.verify(note, ring) is None:
                    os.pwrite(fd, _slot(newest.note), i * SLOT)
            _sync(fd)

    def start(self, note: str, ring: KeyRing) -> None:
        """Begin an empty record with ``note`` (trust on first use); a record that holds a
        note already is left as it is."""
        with self._slots() as (fd, stored):
            if any(stored):
                return
            os.pwrite(fd, _slot(note), 0)
            _sync(fd)
        if (checkpoint := self.verify(note, ring)) is not None:
            self._see(checkpoint)

    def advance(self, publication: Publication, ring: KeyRing, prove: Prover) -> None:
        """Record ``publication`` if it is newer than the recorded checkpoint and a consistent
        extension of it; otherwise keep both as evidence and raise :class:`RollbackDetected`.

        The writer checked, before signing, that its tree contains the checkpoint recorded
        then. Unless the recorded one is a tree the writer saw inside its own, a consistency
        proof from the database decides.
        """
        new = publication.checkpoint
        with self._slots() as (fd, stored):
            self.refuse_if_fork_detected()
            recorded = max(
                (cp for note in stored if (cp := self.verify(note, ring)) is not None),
                key=lambda cp: cp.size,
                default=None,
            )
            try:
                if recorded is not None and recorded.size >= new.size:
                    # Older than what another writer recorded since: it must be a prefix of it.
                    _check_consistent(new, recorded, (), prove)
                    self._see(recorded)
                    return
                if recorded is not None:
                    _check_consistent(recorded, new, publication.prefixes, prove)
            except RollbackDetected:
                self._keep_evidence([n for n in stored if n], publication.note)
                raise
            # Overwrite an empty or spoilt slot, else the one holding the older note.
            sizes = [cp.size if (cp := self.verify(n, ring)) else None for n in stored]
            unused = [i for i, s in enumerate(sizes) if s is None]
            slot = unused[0] if unused else min((0, 1), key=lambda i: sizes[i] or 0)
            os.pwrite(fd, _slot(publication.note), slot * SLOT)
            _sync(fd)
        self._see(new)

    def _keep_evidence(self, recorded: list[str], new: str) -> None:
        logger.error(
            "two signed checkpoints that do not extend one another: both kept in %s; the "
            "instance refuses to write until `consent-ledger accept-rollback`",
            self.fork_path,
        )
        _write_new_file(self.fork_path, "\n".join([*recorded, new]).encode("utf-8"))

    @contextmanager
    def _slots(self) -> Iterator[tuple[int, list[str]]]:
        """The record open for writing, under the lock, with the notes of both slots (an
        empty string for an empty slot)."""
        with self._locked():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                yield fd, _notes(os.pread(fd, 2 * SLOT, 0), keep_empty=True)
            finally:
                os.close(fd)

    def reset(self, note: str, ring: KeyRing) -> None:
        """Record ``note`` whatever was there (an operator accepted a rollback): a new file
        with that note alone, put in place by rename so no older note survives beside it. The
        evidence of a fork goes, and this process forgets what it saw before."""
        checkpoint = ring.verify(note)
        with self._locked():
            _write_new_file(self.path, _slot(note))
            self.fork_path.unlink(missing_ok=True)
        with self._seen_lock:
            self._seen = checkpoint


def _write_new_file(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` by writing a temporary file, syncing it and renaming it."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _unverified_size(note: str) -> int:
    # Only to choose which slot to verify first; what is used is always verified.
    lines = note.split("\n")
    try:
        return int(lines[1]) if len(lines) > 1 and lines[1].isdigit() else -1
    except ValueError:
        return -1


def _check_consistent(
    old: Checkpoint, new: Checkpoint, prefixes: Collection[tuple[int, bytes]], prove: Prover
) -> None:
    """Raise :class:`RollbackDetected` unless the tree of ``new`` extends that of ``old``."""
    if old.size == 0 or (old.size, old.root_hash) in prefixes:
        return
    if old.size == new.size:
        consistent = old.root_hash == new.root_hash
    else:
        try:
            merkle.verify_consistency(
                old.size, new.size, prove(old.size, new.size), old.root_hash, new.root_hash
            )
            consistent = True
        except VerificationError:
            consistent = False
    if not consistent:
        raise RollbackDetected(
            f"the checkpoint for size {new.size} is not a consistent extension of the one "
            f"published for size {old.size}: two histories were signed (was the database "
            "restored while the service ran?)"
        )


# Data only (the size of a record with both slots never changes); fsync where there is no
# fdatasync (macOS).
_sync = getattr(os, "fdatasync", os.fsync)


# A note is origin, size, root and signature lines: a few hundred bytes. A slot is one page.
SLOT = 4096


def _slot(note: str) -> bytes:
    data = note.encode("utf-8")
    if b"\0" in data or len(data) > SLOT:
        raise ValueError("a checkpoint note must be at most 4096 bytes, without NULs")
    return data + b"\0" * (SLOT - len(data))


def _notes(data: bytes, *, keep_empty: bool = False) -> list[str]:
    notes = []
    for start in (0, SLOT):
        text = data[start : start + SLOT].split(b"\0", 1)[0]
        if text or keep_empty:
            notes.append(text.decode("utf-8", errors="replace"))
    return notes


def check_database_against_record(
    session: Session,
    store: LogStore,
    record: PublishedRecord,
    recorded: RecordedCheckpoint | None,
    size: int,
) -> None:
    """Raise :class:`RollbackDetected` unless the database (of ``size`` entries, already
    checked against its own newest checkpoint) contains ``recorded`` and the newest checkpoint
    this process has seen published, and no fork was detected.

    ``recorded`` must be read *before* the session's snapshot is taken: other processes keep
    writing, and a record read afterwards may be newer than the snapshot without any rollback.
    """
    record.refuse_if_fork_detected()
    seen = record.seen
    if recorded is None and seen is None:
        latest = store.latest_checkpoint(session)
        if latest is not None:
            # First start with this protection (or the file was removed): trust the database
            # now, and say so, since a rollback before this moment cannot be seen.
            logger.warning(
                "no record of a published checkpoint in %s: recording the database's newest "
                "(size %d) from now on",
                record.path,
                latest.tree_size,
            )
            record.start(latest.note, store.keys(session).ring)
        return
    candidates = [seen] if seen is not None else []
    if recorded is not None:
        candidates.append(recorded.checkpoint)
    check_contains_published(session, max(candidates, key=lambda cp: cp.size), size)


def check_contains_published(session: Session, published: Checkpoint, size: int) -> None:
    """Raise :class:`RollbackDetected` unless the stored tree of ``size`` entries extends the
    ``published`` checkpoint."""
    wanted = merkle.root_node_ids(published.size) if published.size <= size else []
    check_extends(published, size, fetch_nodes(session, wanted))
