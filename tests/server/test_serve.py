"""The real server: ``consent-ledger serve`` (gunicorn, several workers) on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app import create_app, get_ledger
from tests.helpers import tamper
from tests.support import rfc9162_verifier as rfc

pytestmark = pytest.mark.server
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


class Server:
    def __init__(self, instance: Path, workers: int = 3) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = instance / "server.log"
        env = {**os.environ, "CONSENT_LEDGER_INSTANCE_PATH": str(instance)}
        self.proc = subprocess.Popen(
            [CLI, "serve", "--port", str(self.port), "--workers", str(workers)],
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/healthz", timeout=1)
                return
            except requests.ConnectionError:
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


@pytest.fixture
def demo_instance(tmp_path: Path) -> Path:
    instance = tmp_path / "instance"
    _run(instance, "init")
    _run(instance, "demo")
    return instance


@pytest.fixture
def server(demo_instance: Path) -> Iterator[Server]:
    srv = Server(demo_instance)
    yield srv
    srv.stop()


def test_serve_answers_on_every_worker(server: Server, demo_instance: Path) -> None:
    vkey = requests.get(server.url + "/v1/log/key", timeout=5).text.strip()
    # Many requests over fresh connections land on all workers; every answer must agree.
    for _ in range(20):
        health = requests.get(server.url + "/healthz", timeout=5)
        assert health.json() == {"status": "ok", "log_size": 15}
        cp = rfc.verify_checkpoint(
            requests.get(server.url + "/v1/log/checkpoint", timeout=5).text, vkey
        )
        assert cp.size == 15
    assert "log checked at start-up: 15 entries" in server.log.read_text()


def test_the_instance_folder_is_private(demo_instance: Path) -> None:
    for path in [demo_instance, *demo_instance.iterdir()]:
        assert path.stat().st_mode & 0o077 == 0, path


def test_a_tampered_log_is_refused_at_start_up(demo_instance: Path) -> None:
    app = create_app({"INSTANCE_PATH": str(demo_instance)})
    ledger = get_ledger(app)
    tamper(
        ledger,
        "UPDATE log_checkpoints SET note = :n WHERE tree_size = 15",
        n="localhost/consent-ledger\n15\nAAAA\n\n— localhost/consent-ledger AAAA\n",
    )
    ledger.db.dispose()
    srv = Server(demo_instance, workers=2)
    try:
        resp = requests.get(srv.url + "/healthz", timeout=5)
        assert resp.status_code == 503
        assert resp.json()["status"] == "unavailable"
        assert requests.get(srv.url + "/v1/log/key", timeout=5).status_code == 503
    finally:
        srv.stop()
    log = srv.log.read_text()
    assert "consent-ledger refuses to serve" in log
    assert "does not verify under this instance's signing key" in log
