"""The real server, started with the ``consent-ledger`` console script on a free loopback port."""

from __future__ import annotations

import os
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


@pytest.fixture
def demo_instance(tmp_path: Path) -> Path:
    instance = tmp_path / "instance"
    _run(instance, "init")
    _run(instance, "demo")
    return instance
