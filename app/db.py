"""Engines and sessions.

Two kinds of session: ``read()`` for queries and ``write()`` for the one transaction a write
use case makes. On SQLite a write session begins with ``BEGIN IMMEDIATE`` so two writers never
both read the log head and then collide on upgrade to a write lock; reads stay deferred so they
never wait for a writer, and WAL gives each read transaction one snapshot. On PostgreSQL the
log head is locked with ``SELECT ... FOR UPDATE``, and reads run as ``REPEATABLE READ READ
ONLY`` so that every statement of one read sees the same snapshot.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings

logger = logging.getLogger("consent_ledger.db")
# Set by the session's own after_commit event: a ``with session.begin()`` block whose body
# rolled back (and swallowed the error) exits without raising but has committed nothing.
_COMMITTED = "committed"


def _sqlite_engine(url: str, busy_timeout_ms: int, *, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that our BEGIN is the one
        # that runs (pysqlite otherwise begins lazily, and never IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


def _mark_committed(session: Session) -> None:
    session.info[_COMMITTED] = True


class WriterQueue:
    """Hands SQLite's single write lock from one writer to the next without delay.

    A writer that finds the database locked waits in SQLite's busy handler, which sleeps 1, 2,
    5, 10, ... ms between tries, so under load the lock sits free while waiters sleep, and a
    request can lose the race several times over. Writers of every process first take this
    lock instead (a thread lock, then ``flock`` on a file beside the database), and waiters
    poll it at sub-millisecond intervals (so not strictly first come, first served). It only
    orders writers: ``BEGIN IMMEDIATE`` still excludes them, so a writer that gives up waiting
    here (after the busy timeout, or when the file cannot be opened) goes on to SQLite's own
    wait; in the worst case a writer waits about twice the busy timeout before "database is
    locked".
    """

    _MAX_SLEEP = 0.0005

    def __init__(self, path: Path, timeout_s: float) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._warned = False
        queue = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget_in_child(queue()))

    def _forget(self) -> None:
        # In a forked child: the inherited descriptor shares the parent's lock (and its turn,
        # if the parent held one at the fork), and the thread lock may have been copied held.
        self._thread_lock = threading.Lock()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None

    def _file(self) -> int | None:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                if not self._warned:
                    self._warned = True
                    logger.warning("writers will wait on SQLite alone: %s", exc)
                return None
        return self._fd

    def close(self) -> None:
        with self._thread_lock:
            if self._fd is not None:
                os.close(self._fd)
            self._fd = None

    @contextmanager
    def turn(self) -> Iterator[None]:
        deadline = time.monotonic() + self.timeout_s
        if not self._thread_lock.acquire(timeout=self.timeout_s):
            yield
            return
        try:
            fd = self._file()
            held = fd is not None and _flock_until(fd, deadline, self._MAX_SLEEP)
            try:
                yield
            finally:
                if held:
                    assert fd is not None
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


def _forget_in_child(queue: WriterQueue | None) -> None:
    if queue is not None:
        queue._forget()


def _flock_until(fd: int, deadline: float, max_sleep: float) -> bool:
    sleep = 0.00005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(sleep)
            sleep = min(sleep * 2, max_sleep)
        except OSError:
            return False


class Database:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.database_url
        self.dialect = make_url(self.url).get_backend_name()
        self._before_commit: list[Callable[[Session], None]] = []
        self._after_commit: list[Callable[[Session], None]] = []
        self._held_over_commit: list[Callable[[Session], AbstractContextManager[None]]] = []
        self._writers: WriterQueue | None = None
        if self.dialect == "sqlite":
            database = make_url(self.url).database
            if database and database != ":memory:":
                self._writers = WriterQueue(
                    Path(database + "-writer"), settings.sqlite_busy_timeout_ms / 1000
                )
            self.read_engine = _sqlite_engine(
                self.url, settings.sqlite_busy_timeout_ms, immediate=False
            )
            self.write_engine = _sqlite_engine(
                self.url, settings.sqlite_busy_timeout_ms, immediate=True
            )
        else:
            # A write waits at most 10 s for a lock (the log head, held by a batch or by an
            # operator's session left open): the batch then fails (503, nothing recorded)
            # instead of holding every writer of the instance for ever.
            self.write_engine = create_engine(
                self.url, pool_pre_ping=True, connect_args={"options": "-c lock_timeout=10s"}
            )
            # One snapshot per read: a check or a verification that reads the head, then the
            # entries, then the checkpoints must see one state of the log, not three.
            self.read_engine = self.write_engine.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)
        self._write = sessionmaker(self.write_engine, expire_on_commit=False)
        event.listen(self._write, "after_commit", _mark_committed)

    def before_commit(self, callback: Callable[[Session], None]) -> None:
        """Run ``callback`` at the end of each write transaction's body, before it commits (an
        error it raises rolls the transaction back)."""
        self._before_commit.append(callback)

    def after_commit(self, callback: Callable[[Session], None]) -> None:
        """Run ``callback`` after each write transaction commits (never after a rollback),
        once the next writer may go ahead."""
        self._after_commit.append(callback)

    def hold_over_commit(self, hold: Callable[[Session], AbstractContextManager[None]]) -> None:
        """Enter ``hold(session)`` just before each write transaction commits and leave it
        after the after-commit callbacks have run (or at once if the commit fails)."""
        self._held_over_commit.append(hold)

    @staticmethod
    def committed(session: Session) -> bool:
        """Whether a write session's transaction committed (so an error raised after it, by
        what runs after the commit, is not the write's failure)."""
        return bool(session.info.get(_COMMITTED, False))

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A read without an ORM session, for the one statement every request runs
        (authentication), where the session's own bookkeeping cost more than the query."""
        with self.read_engine.connect() as connection:
            yield connection

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write use case = one transaction: committed on success, rolled back on error."""
        turn: AbstractContextManager[None] = (
            nullcontext() if self._writers is None else self._writers.turn()
        )
        with self._write() as session, contextlib.ExitStack() as held:
            with turn, session.begin():
                yield session
                for callback in self._before_commit:
                    callback(session)
                for hold in self._held_over_commit:
                    held.enter_context(hold(session))
            if session.info.get(_COMMITTED, False):
                for callback in self._after_commit:
                    callback(session)

    def dispose(self) -> None:
        self.read_engine.dispose()
        self.write_engine.dispose()
        if self._writers is not None:
            self._writers.close()
