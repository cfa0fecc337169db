"""The floor any durable write pays: one-row transactions from one client, with the service's
settings (SQLite: WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE``; PostgreSQL: an ordinary
``INSERT`` and ``COMMIT``). Used as the baseline for consents recorded by ``bench_appends.py``
and ``bench_wrk.py``.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Protocol

LEAF = b"x" * 300  # about the size of a consent's log entry


class RawCommits(Protocol):
    def commit(self, i: int, leaf: bytes) -> None: ...

    def close(self) -> None: ...


class SqliteCommits:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS leaf (idx INTEGER PRIMARY KEY, leaf BLOB)")
        self.db.execute("DELETE FROM leaf")

    def commit(self, i: int, leaf: bytes) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("INSERT INTO leaf VALUES (?, ?)", (i, leaf))
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()


class PostgresCommits:
    """``conninfo``: a libpq connection string or URL (psycopg's, not SQLAlchemy's)."""

    def __init__(self, conninfo: str) -> None:
        import psycopg

        self.db = psycopg.connect(conninfo)
        with self.db.transaction():
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS raw_leaf (idx BIGINT PRIMARY KEY, leaf BYTEA)"
            )
            self.db.execute("TRUNCATE raw_leaf")

    def commit(self, i: int, leaf: bytes) -> None:
        with self.db.transaction():
            self.db.execute("INSERT INTO raw_leaf VALUES (%s, %s)", (i, leaf))

    def close(self) -> None:
        self.db.close()


def rate_for(raw: RawCommits, seconds: float, start: int = 0) -> tuple[float, int]:
    """Commits a second, committing for ``seconds`` from index ``start``; and the next index."""
    i = start
    began = time.perf_counter()
    stop_at = began + seconds
    while time.perf_counter() < stop_at:
        raw.commit(i, LEAF)
        i += 1
    return (i - start) / (time.perf_counter() - began), i
