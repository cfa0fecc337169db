"""The real server: ``consent-ledger serve`` (gunicorn, several workers) on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app import create_app, get_ledger
from tests.helpers import tamper
from tests.server.conftest import Server
from tests.support import rfc9162_verifier as rfc

pytestmark = pytest.mark.server


@pytest.fixture
def server(demo_instance: Path) -> Iterator[Server]:
    srv = Server(demo_instance)
    yield srv
    srv.stop()


def test_serve_answers_on_every_worker(server: Server, demo_instance: Path) -> None:
    vkey = requests.get(server.url + "/v1/log/key", timeout=10).text.strip()
    size = requests.get(server.url + "/healthz", timeout=10).json()["log_size"]
    assert size > 16  # the demo's registrations, clients and flows
    # Many requests over fresh connections land on all workers; every answer must agree.
    for _ in range(20):
        health = requests.get(server.url + "/healthz", timeout=10)
        assert health.json() == {"status": "ok", "log_size": size}
        cp = rfc.verify_checkpoint(
            requests.get(server.url + "/v1/log/checkpoint", timeout=10).text, vkey
        )
        assert cp.size == size
    assert f"log checked at start-up: {size} entries" in server.log.read_text()


def test_the_instance_folder_is_private(demo_instance: Path) -> None:
    for path in [demo_instance, *demo_instance.iterdir()]:
        assert path.stat().st_mode & 0o077 == 0, path


def test_a_tampered_log_is_refused_at_start_up(demo_instance: Path) -> None:
    app = create_app({"INSTANCE_PATH": str(demo_instance)})
    ledger = get_ledger(app)
    with ledger.db.read() as session:
        size = ledger.log_store.size(session)
    tamper(  # the newest checkpoint, the one start-up checks
        ledger,
        "UPDATE log_checkpoints SET note = :n WHERE tree_size = :size",
        n=f"localhost/consent-ledger\n{size}\nAAAA\n\n— localhost/consent-ledger AAAA\n",
        size=size,
    )
    ledger.db.dispose()
    srv = Server(demo_instance, workers=2)
    try:
        resp = requests.get(srv.url + "/healthz", timeout=10)
        assert resp.status_code == 503
        assert resp.json()["status"] == "unavailable"
        assert requests.get(srv.url + "/v1/log/key", timeout=10).status_code == 503
    finally:
        srv.stop()
    log = srv.log.read_text()
    assert "consent-ledger refuses to serve" in log
    assert "does not verify under this instance's signing key" in log
