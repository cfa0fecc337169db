"""Backups, restores, and an operator's acceptance of a rollback.

A SQLite backup uses SQLite's online backup API, so it is one consistent snapshot even while
the service writes; the copy is then checked against its own newest signed checkpoint. A
restore checks the copy the same way and then against the newest checkpoint this instance has
published (``app.services.log.published``): a copy that lacks it would silently undo receipts that
callers hold, so it is refused unless the operator accepts the loss, which is logged. PostgreSQL
is backed up and restored with ``pg_dump`` / ``pg_restore`` (see the README); after such a
restore the service's start-up check finds any rollback, and ``accept_rollback`` records it.
Neither copy holds the keys, which live in the instance folder: a restore is refused while the
copy's identifier mappings are under a key the instance no longer holds.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.db import Database
from app.errors import DomainError
from app.ledger.events import RollbackAccepted, envelope
from app.services.container import Ledger, missing_identifier_keys
from app.services.log.log_store import LogInconsistent
from app.services.log.published import RollbackDetected, check_database_against_record

Progress = Callable[[int, int], None]
PAGES_PER_STEP = 4096


class BackupError(DomainError):
    status = 409
    slug = "conflict"


@dataclass(frozen=True)
class CopyState:
    size: int
    root_hex: str


@dataclass(frozen=True)
class Restored:
    size: int
    root_hex: str
    rollback_logged_at: int | None  # log index of the entry recording an accepted loss


def _sqlite_path(url: str) -> Path:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        raise BackupError(
            "backup and restore copy SQLite databases; for PostgreSQL use pg_dump and "
            "pg_restore (see the README), then `consent-ledger accept-rollback` if the "
            "restored database is behind the newest published checkpoint"
        )
    return Path(parsed.database)


def _copy(src: Path, dest: Path, progress: Progress | None) -> None:
    with sqlite3.connect(src) as source, sqlite3.connect(dest) as target:

        def step(_status: int, remaining: int, total: int) -> None:
            if progress:
                progress(total - remaining, total)

        source.backup(target, pages=PAGES_PER_STEP, progress=step)
    # The sqlite3 context manager commits but does not close.
    source.close()
    target.close()


def _check_copy(ledger: Ledger, path: Path) -> tuple[Database, CopyState]:
    """Open ``path`` as a log of this instance and check it against its newest checkpoint."""
    settings = dataclasses.replace(ledger.settings, database_url=f"sqlite:///{path}")
    db = Database(settings)
    try:
        with db.read() as session:
            size = ledger.log_store.check_against_checkpoint(session)
            latest = ledger.log_store.latest_checkpoint(session)
    except LogInconsistent as exc:
        db.dispose()
        raise BackupError(f"{path} is not a sound copy of this instance's log: {exc}") from None
    except SQLAlchemyError as exc:
        db.dispose()
        raise BackupError(
            f"{path} is not a consent-ledger database ({type(exc).__name__})"
        ) from None
    return db, CopyState(size, latest.root_hash.hex() if latest else "")


def backup(ledger: Ledger, dest: Path, progress: Progress | None = None) -> CopyState:
    src = _sqlite_path(ledger.settings.database_url)
    if dest.exists():
        raise BackupError(f"{dest} exists: a backup never overwrites a file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _copy(src, dest, progress)
    dest.chmod(0o600)
    db, state = _check_copy(ledger, dest)
    db.dispose()
    return state


def restore(
    ledger: Ledger, source: Path, *, accept_rollback: bool, progress: Progress | None = None
) -> Restored:
    """Replace the database with ``source`` (the service must be stopped)."""
    live = _sqlite_path(ledger.settings.database_url)
    if not source.is_file():
        raise BackupError(f"{source} is not a file")
    recorded = ledger.published.read(ledger.keyring())
    db, state = _check_copy(ledger, source)
    behind: RollbackDetected | None = None
    try:
        with db.read() as session:
            _check_identifier_keys(ledger, session, source)
            check_database_against_record(
                session, ledger.log_store, ledger.published, recorded, state.size
            )
    except RollbackDetected as exc:
        behind = exc
    finally:
        db.dispose()
    if behind is not None and not accept_rollback:
        raise BackupError(
            f"refusing to restore {source}: {behind}. If no newer copy exists, run restore "
            "again with --accept-rollback; the loss is then recorded in the log"
        )
    ledger.db.dispose()
    _copy(source, live, progress)
    if behind is None:
        return Restored(state.size, state.root_hex, None)
    index = accept_rollback_now(ledger)
    return Restored(state.size, state.root_hex, index)


def _check_identifier_keys(ledger: Ledger, session: Session, source: Path) -> None:
    """A copy holds the identifier mappings, not the keys they were made under (those are in
    the instance folder): one taken before a re-keying needs a key that may since have been
    retired, and restored without it, its people could not be found and would be mapped
    afresh."""
    missing = missing_identifier_keys(ledger.identifier_keys, session)
    if missing:
        raise BackupError(
            f"refusing to restore {source}: its identifier mappings are under key "
            f"{', '.join(missing)}, which this instance no longer holds. Put the key file back "
            "in the instance folder (from the backup of the instance folder) and restore again"
        )


def accept_rollback_now(ledger: Ledger) -> int | None:
    """Record in the log that the database lacks the newest published checkpoint (or that
    the record kept evidence of a fork), and make its new checkpoint the one published.
    Returns the entry's index, or None if there is nothing to accept.

    The entry that declares the loss is signed over the database's tree on purpose, and
    replaces the record once committed: until it is committed, the record still says what was
    published, so a failed or interrupted acceptance can be run again. Processes still
    running remember the checkpoint they saw published and keep refusing to write until
    restarted.
    """
    recorded = ledger.published.read(ledger.keyring())  # before the snapshot
    fork_detected = ledger.published.fork_path.exists()
    now = ledger.clock()

    def accept(session: Session) -> int | None:
        size = ledger.log_store.check_against_checkpoint(session)
        try:
            check_database_against_record(
                session, ledger.log_store, ledger.published, recorded, size
            )
        except RollbackDetected:
            pass
        else:
            return None
        assert recorded is not None or fork_detected  # a missing record is never a rollback
        published = recorded.checkpoint if recorded is not None else None
        event = RollbackAccepted(
            published_size=published.size if published else None,
            published_root=published.root_hash.hex() if published else None,
            database_size=size,
        )
        (receipt,) = ledger.log_store.append(
            session, [envelope(event, now)], now, declare_fork=True
        )
        return receipt.index

    # Alone: the others of a batch would be checked against the record this entry replaces.
    index = ledger.write(accept, alone=True)
    if index is not None:
        ledger.recheck_health()
    return index
