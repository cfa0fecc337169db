"""Engines and sessions.

Two kinds of session: ``read()`` for queries and ``write()`` for the one transaction a write
use case makes. On SQLite a write session begins with ``BEGIN IMMEDIATE`` so two writers never
both read the log head and then collide on upgrade to a write lock; reads stay deferred so they
never wait for a writer, and WAL gives each read transaction one snapshot. On PostgreSQL the
log head is locked with ``SELECT ... FOR UPDATE``, and reads run as ``REPEATABLE READ READ
ONLY`` so that every statement of one read sees the same snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings


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


class Database:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.database_url
        self.dialect = make_url(self.url).get_backend_name()
        if self.dialect == "sqlite":
            self.read_engine = _sqlite_engine(
                self.url, settings.sqlite_busy_timeout_ms, immediate=False
            )
            self.write_engine = _sqlite_engine(
                self.url, settings.sqlite_busy_timeout_ms, immediate=True
            )
        else:
            self.write_engine = create_engine(self.url, pool_pre_ping=True)
            # One snapshot per read: a check or a verification that reads the head, then the
            # entries, then the checkpoints must see one state of the log, not three.
            self.read_engine = self.write_engine.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)
        self._write = sessionmaker(self.write_engine, expire_on_commit=False)

    def after_commit(self, callback: Callable[[Session], None]) -> None:
        """Run ``callback`` after each write transaction commits (never after a rollback)."""
        event.listen(self._write, "after_commit", callback)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write use case = one transaction: committed on success, rolled back on error."""
        with self._write() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.read_engine.dispose()
        self.write_engine.dispose()
