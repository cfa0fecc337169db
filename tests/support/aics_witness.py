"""An outside witness for the tests: ``aics-witness`` from PyPI (c2sp.org/tlog-witness, not
ours), in its own Python 3.12 venv (``make witness-venv``, ``.venv-witness``), started on a free
loopback port and stopped by the test; ``aics-tlog verify-checkpoint`` from the same venv is the
outside verifier of its cosignatures.

With ``REQUIRE_WITNESS=1`` (CI) a missing venv fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
VENV = Path(os.environ.get("WITNESS_VENV") or REPO / ".venv-witness")
REQUIRE_WITNESS = os.environ.get("REQUIRE_WITNESS") == "1"


def _tool(name: str) -> str:
    path = VENV / "bin" / name
    if not path.exists():
        reason = f"{path} is missing: run `make witness-venv` (aics-witness needs Python 3.12)"
        if REQUIRE_WITNESS:
            pytest.fail(f"REQUIRE_WITNESS=1 but {reason}")
        pytest.skip(reason)
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AicsWitness:
    """One aics-witness identity in ``folder``; :meth:`start` serves it, :meth:`stop` ends it
    (its state survives, as a real witness's does across restarts)."""

    def __init__(self, folder: Path, name: str = "witness.test/w1") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "witness.json"
        self.bin = _tool("aics-witness")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.vkey = self._cli("init", "--name", name).splitlines()[0].strip()

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            [self.bin, *args[:1], "--config", str(self.config), *args[1:]],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def add_log(self, origin: str, vkey: str) -> None:
        self._cli("add-log", "--origin", origin, "--vkey", vkey)

    def start(self) -> None:
        log = (self.folder / "witness.log").open("ab")
        self.proc = subprocess.Popen(
            [self.bin, "serve", "--config", str(self.config), "--listen", f"127.0.0.1:{self.port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2):  # noqa: S310
                    return
            except (urllib.error.URLError, OSError):
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        log_text = (self.folder / "witness.log").read_text()
        raise RuntimeError("aics-witness did not start:\n" + log_text)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        self.proc = None


def outside_verify(
    note: str, origin: str, log_vkey: str, witness_vkeys: list[str], quorum: int
) -> str:
    """``aics-tlog verify-checkpoint`` on a cosigned note; its output, or the test fails with
    its complaint."""
    args = [_tool("aics-tlog"), "verify-checkpoint", "--note", "-", "--origin", origin]
    args += ["--log-key", log_vkey, "--quorum", str(quorum)]
    for vkey in witness_vkeys:
        args += ["--witness-key", vkey]
    done = subprocess.run(args, input=note, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"aics-tlog refused the note: {done.stdout}{done.stderr}"
    return done.stdout
