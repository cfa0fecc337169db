"""The real server, started with the ``consent-ledger`` console script on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

CLI = str(Path(sys.executable).with_name("consent-ledger"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(instance: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONSENT_LEDGER_INSTANCE_PATH": str(instance)}
    return subprocess.run(
        [CLI, *args], env=env, capture_output=True, text=True, check=True, timeout=60
    )


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after its ")".
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


# ``serve`` with one thread per worker runs sync workers, with more the thread worker: the
# live tests that matter run on both (``@pytest.mark.parametrize("threads", WORKER_THREADS)``).
WORKER_THREADS = [pytest.param(1, id="sync"), pytest.param(4, id="gthread")]


class Server:
    """``new_session=True`` starts gunicorn in a session of its own, so :meth:`kill` can
    SIGKILL the master and every worker at once; the default keeps the test's own group.
    ``options`` are further ``serve`` options (``--timeout``)."""

    def __init__(
        self,
        instance: Path,
        workers: int = 3,
        *,
        threads: int = 1,
        options: tuple[str, ...] = (),
        new_session: bool = False,
    ) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = instance / "server.log"
        self.new_session = new_session
        env = {**os.environ, "CONSENT_LEDGER_INSTANCE_PATH": str(instance)}
        self.proc = subprocess.Popen(
            [
                CLI,
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                *options,
            ],
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/healthz", timeout=10)
                return
            except requests.RequestException:
                # Refused while gunicorn binds, or slow while workers boot on a busy machine.
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start:\n" + self.log.read_text())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def processes(self) -> list[int]:
        """The master and its workers still alive (``new_session=True`` only)."""
        assert self.new_session, "only a server in its own session has a group to list"
        return _group_members(self.proc.pid)

    def kill(self, timeout: float = 15) -> None:
        """SIGKILL the whole process group (master and workers) and wait until none is left."""
        assert self.new_session, "start the server with new_session=True to kill its group"
        with contextlib.suppress(ProcessLookupError):  # already gone: the wait says how
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while (left := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if left:
            raise RuntimeError(f"processes of the killed server survive: {left}")


@pytest.fixture
def demo_instance(tmp_path: Path) -> Path:
    instance = tmp_path / "instance"
    _run(instance, "init")
    _run(instance, "demo")
    return instance


REPO = Path(__file__).resolve().parents[2]


def readme_commands(heading: str, *, min_blocks: int = 1) -> str:
    """Every ```sh block of README's section ``heading`` (up to the next heading of the same
    level), joined: what a person would paste."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    level = heading.split(" ", 1)[0]
    section = readme.split(heading, 1)[1].split(f"\n{level} ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) >= min_blocks, f"the commands of {heading!r} went missing"
    return "\n".join(blocks)


def run_as_pasted(commands: str, url: str, instance: Path) -> subprocess.CompletedProcess[str]:
    """``commands`` in one bash (errexit, pipefail) at the top of the repository, against the
    server at ``url`` and its instance; the test asserts on what they print."""
    env = {**os.environ, "URL": url, "CONSENT_LEDGER_INSTANCE_PATH": str(instance)}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
