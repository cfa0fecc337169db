"""Revoking or rotating a client's token binds every worker of the real server at once."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import requests

from tests.server.conftest import CLI, Server

pytestmark = pytest.mark.server


def _cli(instance: Path, *args: str) -> str:
    env = {**os.environ, "CONSENT_LEDGER_INSTANCE_PATH": str(instance)}
    done = subprocess.run(
        [CLI, *args], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def _statuses(url: str, token: str, n: int = 12) -> set[int]:
    # A fresh connection per request, so the requests spread over the workers.
    headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
    return {
        requests.get(url + "/v1/organisations", headers=headers, timeout=10).status_code
        for _ in range(n)
    }


def test_revoked_and_rotated_tokens_fail_at_once_in_every_worker(demo_instance: Path) -> None:
    tokens = {
        f"{t['role']}:{t['organisation']}": t["token"]
        for t in json.loads((demo_instance / "demo-tokens.json").read_text())
    }
    auditor = tokens["auditor:tt-leeds"]
    portal = tokens["patient_portal:tt-leeds"]
    srv = Server(demo_instance, workers=3)
    try:
        assert _statuses(srv.url, auditor) == {200}
        assert _statuses(srv.url, portal) == {200}

        rotated = json.loads(
            _cli(demo_instance, "clients", "rotate", auditor.split(".")[0], "--json")
        )
        assert _statuses(srv.url, auditor) == {401}
        assert _statuses(srv.url, rotated["token"]) == {200}

        _cli(demo_instance, "clients", "revoke", portal.split(".")[0])
        assert _statuses(srv.url, portal) == {401}
    finally:
        srv.stop()
    assert auditor not in srv.log.read_text()
    assert rotated["token"] not in srv.log.read_text()
