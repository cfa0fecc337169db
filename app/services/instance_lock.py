"""One background worker per instance: a lock file beside the keys, held while it works.

``serve`` starts a worker thread in every gunicorn worker, and the ``... --once`` commands may
run beside it; whoever holds the instance's lock file for that worker does the work, and
another takes over when its holder exits or dies (the kernel drops the lock with the process).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def instance_lock(instance_path: Path, name: str) -> Iterator[bool]:
    """The lock file ``name`` in the instance folder, if free: whether it was taken."""
    fd = os.open(instance_path / name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
