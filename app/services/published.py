"""The newest checkpoint this instance has published, kept outside the database.

Every signed checkpoint the service hands out is a promise: the log will only ever grow from
it. A database restored from an older copy (or swapped for another) breaks that promise
silently, because the copy is internally consistent: its tree matches its own newest
checkpoint. So after each write commits, the checkpoint it published is also written to
``<instance>/newest-checkpoint``, a file that only moves forward. At start-up the database must
contain that checkpoint (same root at that size, RFC 9162 section 2.1.4 consistency); if it does
not, the service refuses to serve until an operator acts (``consent-ledger restore`` with a
newer copy, or ``consent-ledger accept-rollback``, which logs the loss).

The file holds only a signed note (origin, size, root, signature): nothing personal. It is no
defence against someone who can rewrite the instance folder as well as the database; the
checkpoints that auditors and case systems keep outside the service are (see SECURITY.md).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from app.ledger import merkle
from app.ledger.checkpoint import Checkpoint, CheckpointVerifier
from app.ledger.errors import VerificationError
from app.services.log_store import LogStore, fetch_nodes

logger = logging.getLogger("consent_ledger.published")

RECORD_FILE = "newest-checkpoint"


class RollbackDetected(Exception):
    """The database does not contain the newest checkpoint this instance published."""


@dataclass(frozen=True)
class RecordedCheckpoint:
    note: str
    checkpoint: Checkpoint


class PublishedRecord:
    """The record: two fixed slots of ``SLOT`` bytes, each a signed note padded with NULs.

    Each advance overwrites the slot holding the older note and then ``fdatasync``s: no new
    file, no rename and no change of size, which costs less than half of writing a temporary
    file and renaming it (``bench/bench_record.py``). A write torn by a crash spoils only the
    slot being written, whose note then fails to verify; the other slot still holds the note
    before it, so the record goes back by one write at most. The next start-up's read finds
    the spoilt slot, logs a warning and overwrites it with the good note, so that later
    advances, which order the slots by their unverified sizes, never overwrite the only good
    one. The notes stay plain text
    (``tr -d '\\0' < newest-checkpoint``), and a file of the earlier single-note form is read
    as its first slot.
    """

    def __init__(self, instance_path: Path) -> None:
        self.path = instance_path / RECORD_FILE
        self._lock_path = instance_path / (RECORD_FILE + ".lock")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Several workers (and CLI commands) publish; the lock makes read-compare-write one
        # step, so a slower writer never replaces a newer checkpoint with an older one.
        with self._lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def notes(self) -> list[str]:
        """The notes in the slots, as stored (unverified; empty if there is no record)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        return _notes(data)

    def read(self, verifier: CheckpointVerifier) -> RecordedCheckpoint | None:
        """The newest note in the record that verifies; a record none of whose notes verifies
        is refused."""
        notes = self.notes()
        if not notes:
            return None
        verified = _verified(notes, verifier)
        if not verified:
            raise RollbackDetected(
                f"{self.path} does not hold a checkpoint signed by this instance's key"
            )
        newest = max(verified, key=lambda w: w.checkpoint.size)
        if len(verified) < len(notes):
            self._repair(newest, verifier)
        return newest

    def _repair(self, newest: RecordedCheckpoint, verifier: CheckpointVerifier) -> None:
        """Overwrite a slot that does not verify (a write cut short by a crash, or an edit)
        with the newest note that does, so that the next advance, which orders slots by their
        unverified sizes, never overwrites the only good one."""
        logger.warning(
            "%s: a slot does not hold a checkpoint signed by this instance's key (a write cut "
            "short?); keeping the newest that does (size %d)",
            self.path,
            newest.checkpoint.size,
        )
        with self._slots() as (fd, stored):
            good = {w.note for w in _verified(stored, verifier)}
            for i, note in enumerate(stored):
                if note and note not in good:
                    os.pwrite(fd, _slot(newest.note), i * SLOT)
            _sync(fd)

    def advance(self, note: str, size: int) -> None:
        """Record ``note`` (for tree ``size``) if it is newer than the one recorded."""
        slot = _slot(note)
        with self._slots() as (fd, stored):
            sizes = [_size_of(n) for n in stored]
            if any(s is not None and s >= size for s in sizes):
                return
            # Overwrite an empty or unreadable slot, else the older note, never the newer.
            unused = [i for i, s in enumerate(sizes) if s is None]
            older = unused[0] if unused else min((0, 1), key=lambda i: sizes[i] or 0)
            os.pwrite(fd, slot, older * SLOT)
            _sync(fd)

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

    def reset(self, note: str) -> None:
        """Record ``note`` whatever was there (an operator accepted a rollback): a new file
        with that note alone, put in place by rename so no older note survives beside it."""
        with self._locked():
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, _slot(note))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)


# Data only (the size of a record with both slots never changes); fsync where there is no
# fdatasync (macOS).
_sync = getattr(os, "fdatasync", os.fsync)


def _verified(notes: list[str], verifier: CheckpointVerifier) -> list[RecordedCheckpoint]:
    verified = []
    for note in notes:
        if not note:
            continue
        try:
            verified.append(RecordedCheckpoint(note, verifier.verify(note)))
        except VerificationError:
            continue  # a torn write, or not ours: the other slot decides
    return verified


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


def _size_of(note: str | None) -> int | None:
    # Only to order checkpoints before replacing one; what is read back is always verified.
    if note is None:
        return None
    lines = note.split("\n")
    try:
        return int(lines[1])
    except (IndexError, ValueError):
        return None


def contains(session: Session, store: LogStore, recorded: Checkpoint, size: int) -> bool:
    """Whether the stored tree of ``size`` entries extends the recorded one: the root of its
    first ``recorded.size`` leaves, from stored nodes, is the recorded root."""
    if recorded.size > size:
        return False
    if recorded.size == 0:
        return True
    nodes = fetch_nodes(session, merkle.root_node_ids(recorded.size))
    try:
        return merkle.tree_root(recorded.size, nodes) == recorded.root_hash
    except KeyError:
        return False


def check_database_against_record(
    session: Session,
    store: LogStore,
    record: PublishedRecord,
    recorded: RecordedCheckpoint | None,
    size: int,
) -> None:
    """Raise :class:`RollbackDetected` unless the database (of ``size`` entries, already
    checked against its own newest checkpoint) contains ``recorded``.

    ``recorded`` must be read *before* the session's snapshot is taken: other processes keep
    writing, and a record read afterwards may be newer than the snapshot without any rollback.
    """
    if recorded is None:
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
            record.advance(latest.note, latest.tree_size)
        return
    cp = recorded.checkpoint
    if cp.size > size:
        raise RollbackDetected(
            f"the database holds {size} entries but this service published a checkpoint for "
            f"{cp.size} (root {cp.root_hash.hex()}): it looks restored from an older copy. "
            "Restore a copy that contains it (`consent-ledger restore`), or record the loss "
            "with `consent-ledger accept-rollback`"
        )
    if not contains(session, store, cp, size):
        raise RollbackDetected(
            f"the database's tree at size {cp.size} differs from the checkpoint this service "
            f"published for that size (root {cp.root_hash.hex()}): it is another history. "
            "Restore a copy that contains it (`consent-ledger restore`), or record the loss "
            "with `consent-ledger accept-rollback`"
        )
