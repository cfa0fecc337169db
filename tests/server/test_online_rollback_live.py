"""A database restored under the real server (gunicorn, three workers): no worker signs a fork.

The in-process tests (``tests/services/log/test_online_rollback.py``) cover SQLite and PostgreSQL
with two application objects; this one runs the service as deployed, where the workers are
forked processes that each remember what they saw published.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest
import requests

from app.ledger.checkpoint import CheckpointVerifier
from app.services.log.published import RECORD_FILE
from tests.nhs import valid_nhs_numbers
from tests.server.conftest import WORKER_THREADS, Server

pytestmark = pytest.mark.server
NHS = valid_nhs_numbers(30, start=943_476_700)


def _h(token: str) -> dict[str, str]:
    # A fresh connection per request, so requests spread over the workers.
    return {"Authorization": f"Bearer {token}", "Connection": "close"}


def _consent(srv: Server, token: str, nhs: str) -> requests.Response:
    return requests.post(
        srv.url + "/v1/consents",
        headers=_h(token),
        json={
            "subject": {"nhs_number": nhs},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity", "service_status"],
            "form": "verbal",
        },
        timeout=10,
    )


def _backup(src: Path, dest: Path) -> None:
    with sqlite3.connect(src) as source, sqlite3.connect(dest) as target:
        source.backup(target)
    source.close()
    target.close()


@pytest.mark.parametrize("threads", WORKER_THREADS)
def test_no_worker_signs_a_fork_after_an_online_restore(
    demo_instance: Path, tmp_path: Path, threads: int
) -> None:
    token = next(
        t["token"]
        for t in json.loads((demo_instance / "demo-tokens.json").read_text())
        if t["role"] == "case_system" and t["organisation"] == "tt-leeds"
    )
    live_db, older = demo_instance / "consent-ledger.sqlite3", tmp_path / "older.sqlite3"
    srv = Server(demo_instance, workers=3, threads=threads)
    try:
        verifier = CheckpointVerifier.from_verifier_key(
            requests.get(srv.url + "/v1/log/key", timeout=10).text.strip()
        )
        receipts = []
        for nhs in NHS[:3]:
            resp = _consent(srv, token, nhs)
            assert resp.status_code == 201, resp.text
            receipts.append(resp.json()["ledger"]["checkpoint"])
        _backup(live_db, older)
        for nhs in NHS[3:12]:  # over every worker, most likely
            resp = _consent(srv, token, nhs)
            assert resp.status_code == 201, resp.text
            receipts.append(resp.json()["ledger"]["checkpoint"])
        published = verifier.verify(receipts[-1]).size

        _backup(older, live_db)  # the online restore, with the workers' connections open

        refused = [_consent(srv, token, nhs) for nhs in NHS[12:24]]
        assert {r.status_code for r in refused} == {503}
        assert {r.json()["type"] for r in refused} == {"/problems/log-unavailable"}
        health = [
            requests.get(srv.url + "/healthz", headers={"Connection": "close"}, timeout=10)
            for _ in range(9)
        ]
        assert {h.status_code for h in health} == {503}
    finally:
        srv.stop()

    log = srv.log.read_text()
    assert "refuses to serve" in log
    assert f"published a checkpoint for size {published}" in log
    with sqlite3.connect(live_db) as db:
        stored = [note for (note,) in db.execute("SELECT note FROM log_checkpoints")]
    db.close()
    record = [
        n for n in (demo_instance / RECORD_FILE).read_bytes().decode().split("\0") if n.strip()
    ]
    roots: dict[int, set[bytes]] = defaultdict(set)
    for note in receipts + stored + record:
        checkpoint = verifier.verify(note)
        roots[checkpoint.size].add(checkpoint.root_hash)
    assert {size: len(r) for size, r in roots.items() if len(r) > 1} == {}
    assert max(roots) == published
