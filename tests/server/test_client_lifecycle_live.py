"""Revoking or rotating a client's token binds every worker of the real server at once."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import requests

from tests.nhs import valid_nhs_numbers
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


def _pages(url: str, n: int = 12) -> set[int]:
    # A fresh connection per request, so the requests spread over the workers.
    return {
        requests.get(url, headers={"Connection": "close"}, timeout=10).status_code for _ in range(n)
    }


def test_revoking_or_rotating_a_client_ends_its_links_at_once_in_every_worker(
    demo_instance: Path,
) -> None:
    tokens = {
        f"{t['role']}:{t['organisation']}": t["token"]
        for t in json.loads((demo_instance / "demo-tokens.json").read_text())
    }
    case_system = tokens["case_system:tt-leeds"]
    portal = tokens["patient_portal:tt-leeds"]
    person = {"nhs_number": valid_nhs_numbers(1, start=943_480_000)[0]}
    srv = Server(demo_instance, workers=3)
    try:

        def post(token: str, path: str, body: dict[str, object]) -> dict[str, str]:
            resp = requests.post(
                srv.url + path,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert resp.status_code == 201, resp.text
            return dict(resp.json())

        consent = {
            "subject": person,
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity"],
            "form": "verbal",
        }
        post(case_system, "/v1/consents", consent)
        case_link = post(case_system, "/v1/subjects/access-links", {"subject": person})["url"]
        portal_link = post(portal, "/v1/subjects/access-links", {"subject": person})["url"]
        case_page, portal_page = (
            srv.url + "/p/" + link.rsplit("/p/", 1)[1] for link in (case_link, portal_link)
        )
        assert _pages(case_page) == _pages(portal_page) == {200}

        _cli(demo_instance, "clients", "rotate", case_system.split(".")[0], "--json")
        assert _pages(case_page) == {404}
        assert _pages(portal_page) == {200}

        _cli(demo_instance, "clients", "revoke", portal.split(".")[0])
        assert _pages(portal_page) == {404}
    finally:
        srv.stop()
