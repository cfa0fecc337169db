"""The sequencer: every write use case runs in a batch, and a batch is one transaction.

Requests that arrive while a batch is being written wait for it to end and then go together,
as the next batch: one log-head lock, one check of the tree against the published record, one
signed checkpoint, one commit (one fsync) and one record write for all of them, instead of one
each. That is how Tessera and Sunlight sequence (`docs/design/sequencer.md`); unlike their
timers, a batch here is cut by the previous one ending (group commit, as databases do it), so
a request that arrives alone is written at once, and batches grow with the load by themselves.

The batch is led by one of its own callers' threads (leader-follower): the first caller to find
the sequencer idle writes a batch of everything pending (its own request first), answers the
others, and hands the lead to the oldest request still pending, if any. No thread of its own,
so nothing to start, stop or hand work over to when the load is light.

Inside the batch the use cases run in arrival order, each seeing what the earlier ones wrote (a
withdrawal earlier in a batch binds a decision later in it). A use case that fails gets its
error, and the batch is written again without it (:meth:`Sequencer._write`). A batch that fails
as a whole (the database, the log's checks) records nothing, and every caller in it is told.
Nobody is answered before the batch has committed and its checkpoint is recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from app.db import Database
from app.errors import DomainError
from app.services.log.log_store import LogInconsistent, LogStore, appended_count

logger = logging.getLogger("consent_ledger.sequencer")

T = TypeVar("T")


class SequencerBusy(DomainError):
    """Too many writes are waiting: the caller should retry shortly (Sunlight's full pool)."""

    status = 503
    slug = "busy"


class BatchFailed(DomainError):
    """The batch a request was in failed as a whole; nothing of it was recorded."""

    status = 503
    slug = "batch-failed"


@dataclass
class Batch:
    """What a use case sees of the batch it runs in: the transaction, and a place to keep
    per-batch state (``state``) and work to do once the batch is sealed (``when_sealed``),
    such as storing responses whose bodies carry the batch's checkpoint. A use case that fails
    is undone in the database, not in ``state``: it changes ``state`` only as its last step."""

    session: Session
    state: dict[str, Any] = field(default_factory=dict)
    # Run once, after every use case's ``prepare`` and before the first use case: loads what
    # the prepares asked for, in one query per table rather than one per use case.
    when_prepared: list[Callable[[Session], None]] = field(default_factory=list)
    when_sealed: list[Callable[[Session], None]] = field(default_factory=list)


class _Request(Generic[T]):
    """One caller's use case, waiting for its batch."""

    __slots__ = ("alone", "done", "error", "finished", "leads", "prepare", "result", "work")

    def __init__(
        self, work: Callable[[Batch], T], prepare: Callable[[Batch], None] | None, alone: bool
    ) -> None:
        self.work = work
        self.prepare = prepare
        self.alone = alone
        # Written in a committed batch, or refused on its own: its answer is final.
        self.finished = False
        self.done = threading.Event()
        self.leads = False
        self.result: T | None = None
        self.error: BaseException | None = None


@dataclass
class SequencerStats:
    """Counters for benchmarks: how batches form and how long the log head is held."""

    batches: int = 0
    requests: int = 0
    entries: int = 0
    largest: int = 0
    # From the head locked to the commit returned (the published record's write included,
    # since the next writer of this instance waits for it), summed over batches.
    held_s: float = 0.0
    # Waiting for the head lock (another instance's or worker's batch), summed over batches.
    waited_s: float = 0.0
    # Batches written again without a use case that failed on its own.
    run_again: int = 0

    def line(self) -> str:
        per_batch = self.requests / self.batches if self.batches else 0.0
        per_entry = self.held_s / self.entries * 1e6 if self.entries else 0.0
        return (
            f"{self.batches} batches, {self.requests} requests ({per_batch:.1f} a batch, at "
            f"most {self.largest}), {self.entries} entries, log head held {self.held_s:.3f} s "
            f"({per_entry:.0f} µs an entry), waited for {self.waited_s:.3f} s, "
            f"{self.run_again} written again"
        )


class Sequencer:
    def __init__(
        self,
        db: Database,
        log_store: Callable[[], LogStore],
        clock: Callable[[], datetime],
        *,
        max_batch: int = 64,
        max_pending: int = 1024,
    ) -> None:
        self._db = db
        self._log_store = log_store
        self._clock = clock
        self.max_batch = max_batch
        self.max_pending = max_pending
        self._mutex = threading.Lock()
        self._pending: deque[_Request[Any]] = deque()
        self._leading = False
        self._in_batch = threading.local()
        self.stats = SequencerStats()

    @property
    def waiting(self) -> int:
        """Writes waiting for a batch (not those in the batch being written)."""
        return len(self._pending)

    def run(
        self,
        work: Callable[[Batch], T],
        prepare: Callable[[Batch], None] | None = None,
        *,
        alone: bool = False,
    ) -> T:
        """Run ``work`` in the next batch and return its result once the batch has committed
        (or raise its error, or the batch's).

        ``prepare``, if given, runs before any use case of a batch of several, to say what
        ``work`` will read (the people it decides about), so the batch loads it for everyone
        at once (:attr:`Batch.when_prepared`). It must not fail or write. ``alone`` writes
        ``work`` in a batch of its own (an operator's command that must not be undone, or
        refused, with others: accepting a rollback, a rebuild of the projections)."""
        if getattr(self._in_batch, "active", False):
            raise RuntimeError("a use case cannot wait for a batch from inside one")
        request: _Request[T] = _Request(work, prepare, alone)
        with self._mutex:
            if len(self._pending) >= self.max_pending:
                raise SequencerBusy(
                    "too many writes are waiting; nothing was recorded: retry shortly"
                )
            self._pending.append(request)
            leads = not self._leading
            self._leading = True
        if not leads:
            try:
                request.done.wait()
            except BaseException:
                self._abandon(request)
                raise
            leads = request.leads
        if leads:
            self._lead()
        if request.error is not None:
            raise request.error
        return request.result  # type: ignore[return-value]

    def _abandon(self, request: _Request[Any]) -> None:
        """A waiting caller's thread was interrupted: take its write out of the queue if no
        batch has taken it yet, and pass the lead on if it had just been handed it."""
        with self._mutex:
            if request not in self._pending:
                return  # in a batch already: it is written, and nobody is told
            self._pending.remove(request)
            if request.leads:
                if self._pending:
                    self._pending[0].leads = True
                    self._pending[0].done.set()
                else:
                    self._leading = False

    def _lead(self) -> None:
        taken: list[_Request[Any]] = []
        try:
            self._write(taken)
        finally:
            with self._mutex:
                if self._pending:
                    successor = self._pending[0]
                    successor.leads = True
                    successor.done.set()
                else:
                    self._leading = False
            for request in taken:
                request.done.set()

    def _take(self) -> list[_Request[Any]]:
        """The next batch, in arrival order: everything pending up to ``max_batch``, or one
        request that must be alone."""
        with self._mutex:
            batch = [self._pending.popleft()]
            while (
                not batch[0].alone
                and len(batch) < self.max_batch
                and self._pending
                and not self._pending[0].alone
            ):
                batch.append(self._pending.popleft())
        return batch

    def _write(self, taken: list[_Request[Any]]) -> None:
        """Write one batch into ``taken``; on return every request in it has its result or
        its error.

        The batch is taken once the log head is locked, not before: what arrives while the
        leader waits for the lock (another worker's or instance's batch holds it) joins the
        batch, so batches grow by themselves as writers contend.

        The use cases run one after another in one transaction, without a savepoint each. A
        use case that fails (a refusal, mostly, found before it writes anything) rolls the
        transaction back. Its error is final only if nothing ran before it in the transaction:
        otherwise it may rest on writes that are now undone, so the ones before it are written
        first, as a batch of their own, and it runs again first in the next, on what they
        committed. A batch with no failure, the usual case, pays nothing for being able to
        undo one (a savepoint per use case cost two statements each, round trips on
        PostgreSQL, all inside the head lock)."""
        self._in_batch.active = True
        try:
            segments: deque[list[_Request[Any]] | None] = deque([None])
            while segments:
                segments.extendleft(reversed(self._attempt(segments.popleft(), taken)))
        except BaseException as exc:
            if not taken:  # the lock itself failed: the batch there would have been fails
                taken.extend(self._take())
            _fail(taken, exc)
            if not isinstance(exc, Exception):
                raise  # the leader's own thread is being stopped; its followers are answered
        finally:
            self._in_batch.active = False

    def _attempt(
        self, requests: list[_Request[Any]] | None, taken: list[_Request[Any]]
    ) -> list[list[_Request[Any]]]:
        """Run ``requests`` (``None``: the next batch, taken into ``taken`` once the head is
        locked) in one transaction and commit it. Returns what is left to write, in order,
        each part in a transaction of its own, if one of them failed."""
        started = time.perf_counter()
        try:
            self._commit(requests, taken, started)
        except _RunAgain as again:
            self.stats.run_again += 1
            for request in (r for part in again.parts for r in part):
                request.result = None
            return again.parts
        return []

    def _commit(
        self, requests: list[_Request[Any]] | None, taken: list[_Request[Any]], started: float
    ) -> None:
        written: Session | None = None
        try:
            with self._db.write() as session:
                written = session
                batch = Batch(session)
                store = self._log_store()
                store.lock_head(session)
                locked = time.perf_counter()
                if requests is None:
                    requests = self._take()
                    taken.extend(requests)
                if len(requests) > 1:
                    # The tree is checked once, before any use case: a log found inconsistent
                    # is the batch's failure, not one use case's.
                    store.open(session)
                    for n, request in enumerate(requests):
                        if request.prepare is not None:
                            try:
                                request.prepare(batch)
                            except Exception as exc:
                                # Nothing is written yet: the error is its own, and final.
                                _finish(request, error=exc)
                                raise _RunAgain([requests[:n] + requests[n + 1 :]]) from None
                    for hook in batch.when_prepared:
                        hook(session)
                for n, request in enumerate(requests):
                    try:
                        request.result = request.work(batch)
                    except Exception as exc:
                        if _fails_the_batch(exc) or len(taken) == 1:
                            raise
                        if n == 0:
                            _finish(request, error=exc)
                            raise _RunAgain([requests[1:]]) from None
                        raise _RunAgain([requests[:n], requests[n:]]) from None
                entries = appended_count(session)
                store.seal(session, self._clock())
                for hook in batch.when_sealed:
                    hook(session)
        except _RunAgain:
            raise
        except BaseException as exc:
            if written is None or not Database.committed(written):
                raise
            # Committed: the receipts are the callers', whatever failed after the commit.
            logger.error("after a batch of %d writes committed", len(requests or ()), exc_info=exc)
        assert requests is not None
        for request in requests:
            _finish(request)
        stats = self.stats
        stats.batches += 1
        stats.requests += len(requests)
        stats.entries += entries
        stats.largest = max(stats.largest, len(requests))
        stats.held_s += time.perf_counter() - locked
        stats.waited_s += locked - started


class _RunAgain(Exception):
    """A use case of a batch failed on its own: roll back, and write what is left in
    ``parts``, in order, one transaction each."""

    def __init__(self, parts: list[list[_Request[Any]]]) -> None:
        super().__init__("a use case failed; the rest of its batch is written again")
        self.parts = [part for part in parts if part]


def _finish(request: _Request[Any], error: BaseException | None = None) -> None:
    request.finished = True
    if error is not None:
        request.error = error
        request.result = None


def _fails_the_batch(exc: Exception) -> bool:
    # The database refused something other than a constraint (the connection, a timeout): the
    # transaction cannot go on, and running the batch again would not help.
    return isinstance(exc, LogInconsistent) or (
        isinstance(exc, DBAPIError) and not isinstance(exc, IntegrityError)
    )


def _fail(taken: list[_Request[Any]], exc: BaseException) -> None:
    """Give every request of a failed batch that is not finished (written, or refused on its
    own) its error. Alone, a request gets the error as it came (as if it had run by itself).
    In a batch, a log found inconsistent is every caller's error (each stops serving);
    anything else is reported once here, and each caller is told its batch failed and nothing
    of it was recorded."""
    requests = [r for r in taken if not r.finished]
    if not requests:
        return
    if len(taken) == 1 and isinstance(exc, Exception):
        requests[0].error = exc
        requests[0].result = None
        return
    if not isinstance(exc, LogInconsistent):
        logger.error("a batch of %d writes failed", len(requests), exc_info=exc)
    for request in requests:
        request.result = None
        if isinstance(exc, LogInconsistent):
            request.error = exc
        else:
            failed = BatchFailed(
                "the batch this write was in failed; nothing was recorded: retry (with the "
                "same Idempotency-Key, if it had one)"
            )
            failed.__cause__ = exc
            request.error = failed
