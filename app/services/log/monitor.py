"""The monitor's I/O: fetching a log's checkpoint, keys and tiles over HTTP, and its state file.

What to make of the bytes is decided in :mod:`app.ledger.monitor`; this module only fetches
them (no token: everything it reads is public), bounded in size and time, and keeps the state
between runs: written whole to a temporary file, synced and renamed over the old one, so a
crash leaves the last accepted state or the new one, never half of either. Evidence of a split
view, a rollback or bad tiles is appended to a file beside the state.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from app.ledger.merkle import HASH_SIZE
from app.ledger.monitor import MonitorError, MonitorState
from app.ledger.tiles import MAX_BUNDLE_ENTRY, WIDTH, Tile

__all__ = [
    "HttpLog",
    "StateError",
    "Unreachable",
    "evidence_path",
    "load_state",
    "locked",
    "record_evidence",
    "save_state",
]

TIMEOUT_SECONDS = 30
MAX_TILE_BYTES = WIDTH * HASH_SIZE
MAX_BUNDLE_BYTES = WIDTH * (2 + MAX_BUNDLE_ENTRY)
MAX_NOTE_BYTES = 64 * 1024
"""A checkpoint of a few lines with at most 100 signature lines (signed-note's limit) is far
smaller."""


class Unreachable(Exception):
    """The log did not answer, or answered something other than the resource asked for."""


class StateError(Exception):
    """The state file cannot be read, or is not a state this monitor wrote."""


class HttpLog:
    """A log's public resources under ``url``: ``/log/checkpoint`` and ``/log/tile/...``
    (c2sp.org/tlog-tiles). Implements :class:`app.ledger.monitor.TileSource`."""

    def __init__(self, url: str, timeout: float = TIMEOUT_SECONDS) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{url!r} is not an http(s) URL")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, limit: int, withheld: bool = False) -> bytes | None:
        """The body (at most ``limit + 1`` bytes); None for a withheld bundle when
        ``withheld``; Unreachable for anything else that is not a 200."""
        request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
            self.url + path, headers={"User-Agent": "consent-ledger-monitor"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                # One byte over the limit is enough to show the answer is too long; the checks
                # in app.ledger.monitor then refuse it for its length.
                return bytes(response.read(limit + 1))
        except urllib.error.HTTPError as exc:
            if withheld and exc.code == 403 and _is_withheld(exc):
                return None
            raise Unreachable(f"GET {path} answered {exc.code}") from None
        except TimeoutError:
            raise Unreachable(f"GET {path}: no answer within {self.timeout:g} s") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(f"GET {path}: could not connect ({reason})") from None
        except http.client.HTTPException as exc:
            raise Unreachable(f"GET {path}: not an HTTP answer ({type(exc).__name__})") from None

    def _body(self, path: str, limit: int) -> bytes:
        got = self._get(path, limit)
        assert got is not None  # only a withheld bundle is None
        return got

    def checkpoint(self) -> str:
        # Undecodable bytes stay visible (and make the note fail its envelope check).
        return self._body("/log/checkpoint", MAX_NOTE_BYTES).decode("utf-8", errors="replace")

    def hash_tile(self, tile: Tile) -> bytes:
        return self._body("/log/tile/" + tile.path(), MAX_TILE_BYTES)

    def bundle(self, tile: Tile) -> bytes | None:
        where = tile.path().split("/", 1)[1]
        return self._get("/log/tile/entries/" + where, MAX_BUNDLE_BYTES, withheld=True)


def _is_withheld(exc: urllib.error.HTTPError) -> bool:
    """A 403 that is this service's ``bundle-withheld`` problem (not, say, a proxy's refusal)."""
    try:
        body = json.loads(exc.read(MAX_NOTE_BYTES))
    except (ValueError, OSError):
        return False
    return isinstance(body, dict) and str(body.get("type", "")).endswith("/bundle-withheld")


# --- the state file ------------------------------------------------------------------------------


def load_state(path: Path) -> MonitorState | None:
    """The saved state, or None before the first run. StateError naming what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"cannot read the state file {path}: {exc}") from None
    try:
        return MonitorState.from_json(json.loads(text))
    except ValueError as exc:  # JSONDecodeError and VerifierKeyError are ValueErrors too
        raise StateError(f"the state file {path} is not usable: {exc}") from None


def save_state(path: Path, state: MonitorState) -> None:
    """Replace the state file whole: a temporary file beside it, synced, then renamed."""
    data = json.dumps(state.to_json(), indent=2).encode("utf-8") + b"\n"
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold ``<state>.lock`` for the run, so two runs (a slow one and cron's next) never
    interleave their reads and writes of one state. StateError if another run holds it."""
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateError(f"cannot create {lock}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateError(f"another monitor run holds {lock}") from None
        yield
    finally:
        os.close(fd)


def evidence_path(path: Path) -> Path:
    return path.with_name(path.name + ".evidence")


def record_evidence(path: Path, url: str, error: MonitorError, now: datetime) -> Path:
    """Append what was found, and the signed notes that show it, to ``<state>.evidence``."""
    target = evidence_path(path)
    lines = [f"=== {now.isoformat()} {url} {error.kind}", error.message, ""]
    for note in error.evidence:
        lines += [note.rstrip("\n"), ""]
    with target.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return target
