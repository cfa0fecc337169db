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

logger = logging.getLogger("consent_ledger.witness")

WITNESS_FILE = "newest-checkpoint"


class RollbackDetected(Exception):
    """The database does not contain the newest checkpoint this instance published."""


@dataclass(frozen=True)
class Witnessed:
    note: str
    checkpoint: Checkpoint


class WitnessFile:
    def __init__(self, instance_path: Path) -> None:
        self.path = instance_path / WITNESS_FILE
        self._lock_path = instance_path / (WITNESS_FILE + ".lock")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Several workers (and CLI commands) publish; the lock makes read-compare-replace one
        # step, so a slower writer never replaces a newer checkpoint with an older one.
        with self._lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def read_note(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def read(self, verifier: CheckpointVerifier) -> Witnessed | None:
        """The witnessed checkpoint, verified; a file that does not verify is refused."""
        note = self.read_note()
        if note is None:
            return None
        try:
            return Witnessed(note, verifier.verify(note))
        except VerificationError:
            raise RollbackDetected(
                f"{self.path} does not hold a checkpoint signed by this instance's key"
            ) from None

    def advance(self, note: str, size: int) -> None:
        """Record ``note`` (for tree ``size``) if it is newer than the one recorded."""
        with self._locked():
            current = _size_of(self.read_note())
            if current is not None and current >= size:
                return
            self._replace(note)

    def reset(self, note: str) -> None:
        """Record ``note`` whatever was there (an operator accepted a rollback)."""
        with self._locked():
            self._replace(note)

    def _replace(self, note: str) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, note.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        # The content is on disk before the rename, so the file is never seen torn. The rename
        # itself is not forced to disk: after a power cut it may be undone, which leaves an
        # older record, and an older record only makes the check more lenient, never wrong.
        os.replace(tmp, self.path)


def _size_of(note: str | None) -> int | None:
    # Only to order checkpoints before replacing one; what is read back is always verified.
    if note is None:
        return None
    lines = note.split("\n")
    try:
        return int(lines[1])
    except (IndexError, ValueError):
        return None


def contains(session: Session, store: LogStore, witnessed: Checkpoint, size: int) -> bool:
    """Whether the stored tree of ``size`` entries extends the witnessed one: the root of its
    first ``witnessed.size`` leaves, from stored nodes, is the witnessed root."""
    if witnessed.size > size:
        return False
    if witnessed.size == 0:
        return True
    nodes = fetch_nodes(session, merkle.root_node_ids(witnessed.size))
    try:
        return merkle.tree_root(witnessed.size, nodes) == witnessed.root_hash
    except KeyError:
        return False


def check_database_against_witness(
    session: Session,
    store: LogStore,
    witness: WitnessFile,
    witnessed: Witnessed | None,
    size: int,
) -> None:
    """Raise :class:`RollbackDetected` unless the database (of ``size`` entries, already
    checked against its own newest checkpoint) contains ``witnessed``.

    ``witnessed`` must be read *before* the session's snapshot is taken: other processes keep
    writing, and a record read afterwards may be newer than the snapshot without any rollback.
    """
    if witnessed is None:
        latest = store.latest_checkpoint(session)
        if latest is not None:
            # First start with this protection (or the file was removed): trust the database
            # now, and say so, since a rollback before this moment cannot be seen.
            logger.warning(
                "no record of a published checkpoint in %s: recording the database's newest "
                "(size %d) from now on",
                witness.path,
                latest.tree_size,
            )
            witness.advance(latest.note, latest.tree_size)
        return
    cp = witnessed.checkpoint
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
