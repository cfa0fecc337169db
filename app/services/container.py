"""Everything a request or command needs, built once per application."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from app.config import IDENTIFIER_KEY_FILE, Settings
from app.db import Database
from app.ledger.checkpoint import KeyRing
from app.models import Subject
from app.services.access.rate_limits import RateLimits, parse_limit
from app.services.log import keys
from app.services.log.health import HealthState, check_log
from app.services.log.log_store import (
    PUBLISHED,
    LogStore,
    Publication,
    RollbackDetected,
    has_appends,
)
from app.services.log.published import PublishedRecord
from app.services.log.sequencer import Sequencer
from app.services.log.witness_config import load_policy

logger = logging.getLogger("consent_ledger.ledger")

T = TypeVar("T")


_NEXT_KEY_ID = select(func.min(Subject.key_id)).where(Subject.key_id > bindparam("after"))
_ANY_WITHOUT_KEY_ID = select(Subject.subject_ref).where(Subject.key_id.is_(None)).limit(1)


def missing_identifier_keys(held: keys.IdentifierKeys, session: Session) -> list[str]:
    """The ids of the keys identifier mappings are under that ``held`` lacks (``identifier.key``
    for mappings made before key ids, once it is gone): one index seek per key id, not a scan
    of the mappings, so the health check can afford it."""
    used: set[str] = set()
    after = ""
    while (key_id := session.execute(_NEXT_KEY_ID, {"after": after}).scalar()) is not None:
        used.add(key_id)
        after = key_id
    missing = sorted(k for k in used if held.get(k) is None)
    if held.original is None and session.execute(_ANY_WITHOUT_KEY_ID).first() is not None:
        missing.append(IDENTIFIER_KEY_FILE)
    return missing


def utc_now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """The application's services. Keys are loaded on first use so that ``init`` can run first."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.db = Database(settings)
        self.clock = clock
        self._log_store: LogStore | None = None
        self._identifier_keys: keys.IdentifierKeys | None = None
        self._identifier_keys_seen: tuple[int | None, int] = (None, 0)
        # Stat'ed on every lookup: built once (a pathlib join cost more than the stat).
        self._identifier_keys_dir = str(keys.identifier_keys_dir(settings))
        self._health: HealthState | None = None
        self._lock = threading.Lock()
        self.published = PublishedRecord(settings.instance_path)
        # Every write use case runs through it (app.services.access.idempotency.run_write).
        self.sequencer = Sequencer(self.db, lambda: self.log_store, lambda: self.clock())
        self.db.before_commit(self._seal)
        self.db.hold_over_commit(self._hold_record)
        self.db.after_commit(self._publish)
        self.rate_limits = RateLimits(
            parse_limit(settings.write_rate_limit, "CONSENT_LEDGER_WRITE_RATE_LIMIT"),
            parse_limit(settings.decision_rate_limit, "CONSENT_LEDGER_DECISION_RATE_LIMIT"),
            settings.rate_limit_storage,
        )
        # Read once, at start: a witness file that cannot be used refuses start-up.
        self.witnesses = load_policy(settings.witnesses_file, settings.witness_quorum)

    @property
    def log_store(self) -> LogStore:
        if self._log_store is None:
            settings = self.settings
            self._log_store = LogStore(lambda: keys.load_signing_keys(settings), self.published)
        return self._log_store

    def keyring(self) -> KeyRing:
        """The keys the log lists now, each with the checkpoints it may sign."""
        with self.db.read() as session:
            return self.log_store.keys(session).ring

    @property
    def identifier_keys(self) -> keys.IdentifierKeys:
        """The identifier keys, newest first, reloaded once a rotation or retirement changed
        them (one ``stat`` per use), so a worker started before ``keys rotate-identifier``
        maps new people under the new key and finds those a re-keying pass moved to it."""
        version = keys.identifier_keys_version(self._identifier_keys_dir)
        seen, loaded_at = self._identifier_keys_seen
        # A folder changed within the second before the load may change again with the same
        # timestamp (file times are coarse): load again until the load is clearly later.
        settled = version is None or loaded_at - version > 1_000_000_000
        if self._identifier_keys is None or version != seen or not settled:
            loaded_at = time.time_ns()
            self._identifier_keys = keys.load_identifier_keys(self.settings)
            self._identifier_keys_seen = (version, loaded_at)
        return self._identifier_keys

    def write(self, work: Callable[[Session], T], *, alone: bool = False) -> T:
        """Run a write use case in the sequencer's next batch (one transaction, under the
        log-head lock) and return its result once the batch has committed. ``alone``: in a
        batch of its own (:meth:`Sequencer.run`)."""
        return self.sequencer.run(lambda batch: work(batch.session), alone=alone)

    def _seal(self, session: Session) -> None:
        # Whatever a transaction appended is signed once, as it commits.
        if has_appends(session):
            self.log_store.seal(session, self.clock())

    def _hold_record(self, session: Session) -> AbstractContextManager[None]:
        # A write that signed a checkpoint holds the record from just before its commit until
        # the checkpoint is recorded, so the next writer reads it (app.services.log.published).
        return self.published.publishing() if PUBLISHED in session.info else nullcontext()

    def _publish(self, session: Session) -> None:
        """Record the checkpoint a committed write signed. Nothing raised here reaches the
        caller: the write is committed and its receipt is theirs."""
        publication = session.info.pop(PUBLISHED, None)
        if publication is None:
            return
        assert isinstance(publication, Publication)
        size = publication.checkpoint.size
        try:
            if publication.declares_fork:
                self.published.reset(publication.note, publication.ring)
            else:
                self.published.advance(publication, publication.ring, self.prove_consistency)
        except OSError as exc:
            # The next write records a newer one; the check before signing still holds, since
            # each process remembers what it signed.
            logger.error("could not record the published checkpoint (size %d): %s", size, exc)
        except Exception as exc:
            # The record met a checkpoint this one does not extend (the database changed
            # under the service between a check and this commit), or the database could not
            # prove that it does. Stop writing, as the start-up check would.
            reason = f"could not record the published checkpoint (size {size}): {exc}"
            logger.error("consent-ledger refuses to serve: %s", reason)
            self.refuse_service(reason)

    def prove_consistency(self, old_size: int, new_size: int) -> list[bytes]:
        """A consistency proof from the database as it is now, for the record's advance."""
        with self.db.read() as session:
            if self.log_store.size(session) < new_size:
                raise RollbackDetected(
                    f"the database holds fewer than {new_size} entries, the size of a "
                    "checkpoint this instance published: it was rolled back"
                )
            return self.log_store.consistency_proof(session, old_size, new_size).hashes

    def _load_for_check(self) -> LogStore:
        self._check_identifier_keys()
        return self.log_store

    def _check_identifier_keys(self) -> None:
        """Refuse to serve (until the key is back) while mappings are under an identifier key
        this process does not hold: a database restored from before a key was retired, or a
        host the operator has not yet copied a new key to. Those people would not be found, and
        a write about them would map them afresh."""
        held = self.identifier_keys
        with self.db.read() as session:
            missing = missing_identifier_keys(held, session)
        if missing:
            raise keys.KeyFileError(
                f"identifier mappings are under key {', '.join(missing)}, which is not in "
                f"{self.settings.instance_path}: put the key file back (copy a new key to "
                "every host before `consent-ledger keys rotate-identifier --rekey`)"
            )

    def health(self) -> HealthState:
        state = self._health
        if state is None:
            with self._lock:
                state = self._health
                if state is None:
                    state = check_log(self.db, self._load_for_check, self.published)
                    if state.final:
                        self._health = state
        return state

    def checked_health(self) -> HealthState:
        """Health as ``/healthz`` reports it: the start-up check run again now (O(log n)), so
        a worker that has not written since the database was rolled back under it reports
        that too, and stops serving."""
        state = self.health()
        if not state.ok:
            return state
        state = check_log(self.db, self._load_for_check, self.published, announce=False)
        if not state.ok and state.final:
            self._health = state
        return state

    def recheck_health(self) -> HealthState:
        self._health = None
        return self.health()

    def refuse_service(self, reason: str) -> None:
        """A write found the log inconsistent: stop serving, as the start-up check would."""
        self._health = HealthState(ok=False, log_size=-1, reason=reason)
