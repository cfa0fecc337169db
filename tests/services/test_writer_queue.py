"""SQLite writers take turns through the writer queue (``app.db.WriterQueue``): a writer whose
turn is held waits and goes ahead as soon as it is free, and one that cannot get a turn within
the busy timeout still writes, through SQLite's own wait, rather than failing."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.services.access import clients
from app.services.container import Ledger


@pytest.fixture
def queue_file(ledger: Ledger, orgs: list[str]) -> Iterator[int]:
    """The queue's file, opened separately, so holding it is what another process would do."""
    database = ledger.db.url.removeprefix("sqlite:///")
    fd = os.open(Path(database + "-writer"), os.O_RDWR | os.O_CREAT, 0o600)
    yield fd
    os.close(fd)


def _timed_write(ledger: Ledger) -> tuple[float, int]:
    start = time.monotonic()
    created = clients.create_client(ledger, "tt-leeds", "case_system", None)
    return time.monotonic() - start, created.ledger_index


def test_a_writer_waits_for_the_turn_and_goes_ahead_when_it_is_released(
    ledger: Ledger, queue_file: int
) -> None:
    released = threading.Event()

    def release() -> None:
        released.set()
        fcntl.flock(queue_file, fcntl.LOCK_UN)

    fcntl.flock(queue_file, fcntl.LOCK_EX)
    timer = threading.Timer(0.3, release)
    timer.start()
    _, index = _timed_write(ledger)
    # The write could only go ahead once the turn was released (without the queue it would
    # have landed at once, the database itself being free).
    assert released.is_set()
    timer.join()
    assert _timed_write(ledger)[1] == index + 1


def test_a_writer_that_never_gets_the_turn_still_writes_after_the_busy_timeout(
    ledger: Ledger, queue_file: int
) -> None:
    impatient = Ledger(dataclasses.replace(ledger.settings, sqlite_busy_timeout_ms=300))
    fcntl.flock(queue_file, fcntl.LOCK_EX)  # held throughout, as by a stuck process
    try:
        took, index = _timed_write(impatient)
    finally:
        fcntl.flock(queue_file, fcntl.LOCK_UN)
    # It waited out the busy timeout for a turn, then went ahead without one: the queue only
    # orders writers, SQLite's lock still excludes them, and the write lands at the next index.
    assert took >= 0.3
    assert _timed_write(ledger)[1] == index + 1
    impatient.db.dispose()
