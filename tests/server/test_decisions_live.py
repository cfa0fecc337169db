"""G5 against the real server: once a withdrawal is acknowledged, no decision in any worker
permits on that consent, and a disclosure against an earlier permit is refused with 409."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.nhs import valid_nhs_numbers
from tests.server.conftest import WORKER_THREADS, Server

pytestmark = pytest.mark.server
NHS = valid_nhs_numbers(1, start=943_476_700)[0]


@pytest.fixture(params=WORKER_THREADS)
def live(
    demo_instance: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Server, dict[str, str]]]:
    tokens = {
        f"{t['role']}:{t['organisation']}": t["token"]
        for t in json.loads((demo_instance / "demo-tokens.json").read_text())
    }
    srv = Server(demo_instance, workers=3, threads=request.param)
    yield srv, tokens
    srv.stop()


def _post(srv: Server, path: str, token: str, body: dict[str, object]) -> requests.Response:
    return requests.post(
        srv.url + path,
        json=body,
        headers={"Authorization": f"Bearer {token}", "Connection": "close"},
        timeout=10,
    )


def test_withdrawal_binds_decisions_and_disclosures_in_every_worker(
    live: tuple[Server, dict[str, str]],
) -> None:
    srv, tokens = live
    tt, portal = tokens["case_system:tt-leeds"], tokens["patient_portal:tt-leeds"]
    decision_request = {
        "subject": {"nhs_number": NHS},
        "from": "tt-leeds",
        "to": "ea-tt-leeds",
        "purpose": "referral",
        "data_categories": ["identity", "service_status"],
    }
    consent = _post(
        srv,
        "/v1/consents",
        tt,
        {
            "subject": {"nhs_number": NHS},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity", "service_status"],
            "form": "verbal",
        },
    ).json()
    earlier = [_post(srv, "/v1/decisions", tt, decision_request).json() for _ in range(6)]
    assert {d["decision"] for d in earlier} == {"permit"}

    ack = _post(srv, f"/v1/consents/{consent['id']}/withdraw", portal, {})
    assert ack.status_code == 200

    for _ in range(24):
        d = _post(srv, "/v1/decisions", tt, decision_request).json()
        assert d["decision"] == "deny"
        assert consent["id"] not in d["consents"]
    for permit in earlier:
        refused = _post(
            srv,
            "/v1/disclosures",
            tt,
            {"decision_id": permit["id"], "data_categories": ["identity"]},
        )
        assert refused.status_code == 409
        assert refused.json()["type"] == "/problems/consent-withdrawn"
