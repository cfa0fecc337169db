"""Consents against the real server (gunicorn, several workers): a withdrawal binds every
following read in any worker at once, and no NHS number reaches any file of the instance."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.nhs import valid_nhs_numbers
from tests.server.conftest import Server

pytestmark = pytest.mark.server
NHS = valid_nhs_numbers(4, start=943_476_590)


@pytest.fixture
def live(demo_instance: Path) -> Iterator[tuple[Server, dict[str, str]]]:
    tokens = {
        f"{t['role']}:{t['organisation']}": t["token"]
        for t in json.loads((demo_instance / "demo-tokens.json").read_text())
    }
    srv = Server(demo_instance, workers=3)
    yield srv, tokens
    srv.stop()


def _h(token: str) -> dict[str, str]:
    # A fresh connection per request, so requests spread over the workers.
    return {"Authorization": f"Bearer {token}", "Connection": "close"}


def test_a_withdrawal_binds_every_worker_at_once(live: tuple[Server, dict[str, str]]) -> None:
    srv, tokens = live
    jcp, tt = tokens["case_system:jcp-leeds-city"], tokens["case_system:tt-leeds"]
    portal = tokens["patient_portal:tt-leeds"]
    consent = requests.post(
        srv.url + "/v1/consents",
        headers=_h(jcp),
        json={
            "subject": {"nhs_number": NHS[0]},
            "purpose": "referral",
            "recipients": ["tt-leeds"],
            "data_categories": ["identity", "service_status"],
            "form": "written",
            "evidence_sha256": "cd" * 32,
        },
        timeout=10,
    ).json()
    for _ in range(6):  # every worker has seen it active
        got = requests.get(
            srv.url + "/v1/consents", params={"nhs_number": NHS[0]}, headers=_h(tt), timeout=10
        ).json()
        assert got["consents"][0]["status"] == "active"

    withdrawn = requests.post(
        srv.url + f"/v1/consents/{consent['id']}/withdraw",
        headers=_h(portal),
        json={"reason": "person_withdrew"},
        timeout=10,
    )
    assert withdrawn.status_code == 200
    for _ in range(30):
        resp = requests.get(
            srv.url + "/v1/consents", params={"nhs_number": NHS[0]}, headers=_h(tt), timeout=10
        )
        assert resp.json()["consents"][0]["status"] == "withdrawn"
    again = requests.post(
        srv.url + f"/v1/consents/{consent['id']}/withdraw", headers=_h(jcp), timeout=10
    )
    assert again.status_code == 409


def test_no_nhs_number_reaches_any_file_of_the_instance(
    live: tuple[Server, dict[str, str]],
    demo_instance: Path,
) -> None:
    srv, tokens = live
    jcp, portal = tokens["case_system:jcp-leeds-city"], tokens["patient_portal:tt-leeds"]
    for n, nhs in enumerate(NHS[:3]):
        spaced = f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"
        body = {
            "subject": {"nhs_number": spaced},
            "purpose": "evaluation",
            "recipients": ["eval-northern-uni"],
            "data_categories": ["service_status"],
            "form": "electronic",
            "evidence_sha256": "ef" * 32,
        }
        headers = {**_h(jcp), "Idempotency-Key": f"retry-{n}"}
        first = requests.post(srv.url + "/v1/consents", headers=headers, json=body, timeout=10)
        assert first.status_code == 201
        assert (
            requests.post(
                srv.url + "/v1/consents", headers=headers, json=body, timeout=10
            ).status_code
            == 201
        )
        requests.post(
            srv.url + "/v1/objections",
            headers=_h(portal),
            json={"subject": {"nhs_number": nhs}, "scope": "direct_care"},
            timeout=10,
        )
        requests.get(
            srv.url + "/v1/consents", params={"nhs_number": nhs}, headers=_h(portal), timeout=10
        )
    # Decisions, disclosures and the disclosure history, looked up by NHS number.
    tt, ig = tokens["case_system:tt-leeds"], tokens["ig_lead:tt-leeds"]
    requests.post(
        srv.url + "/v1/consents",
        headers=_h(tt),
        timeout=10,
        json={
            "subject": {"nhs_number": NHS[0]},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity"],
            "form": "verbal",
        },
    )
    decision = requests.post(
        srv.url + "/v1/decisions",
        headers=_h(tt),
        timeout=10,
        json={
            "subject": {"nhs_number": NHS[0]},
            "from": "tt-leeds",
            "to": "ea-tt-leeds",
            "purpose": "referral",
            "data_categories": ["identity"],
        },
    ).json()
    assert decision["decision"] == "permit"
    assert (
        requests.post(
            srv.url + "/v1/disclosures",
            headers=_h(tt),
            timeout=10,
            json={"decision_id": decision["id"], "data_categories": ["identity"]},
        ).status_code
        == 201
    )
    history = requests.get(
        srv.url + "/v1/disclosures",
        params={"nhs_number": NHS[0]},
        headers={**_h(ig), "Accept": "text/csv"},
        timeout=10,
    )
    assert history.status_code == 200
    assert NHS[0] not in history.text
    # A wrong check digit and a wrong length: refused, and still never written anywhere.
    bad = NHS[3][:9] + str((int(NHS[3][9]) + 1) % 10)
    for wrong in (bad, NHS[3] + "1"):
        resp = requests.post(
            srv.url + "/v1/consents",
            headers=_h(jcp),
            timeout=10,
            json={
                "subject": {"nhs_number": wrong},
                "purpose": "referral",
                "recipients": ["tt-leeds"],
                "data_categories": ["identity"],
                "form": "verbal",
            },
        )
        assert resp.status_code == 422
        assert wrong not in resp.text
        requests.get(
            srv.url + "/v1/consents", params={"nhs_number": wrong}, headers=_h(jcp), timeout=10
        )
    srv.stop()

    files = [p for p in demo_instance.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".sqlite3") for p in files)
    assert any(p.name == "server.log" for p in files)
    for path in files:
        data = path.read_bytes()
        for nhs in [*NHS, bad]:
            for form in (nhs, f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"):
                assert form.encode() not in data, f"{form} found in {path.name}"


def test_a_patient_links_token_never_reaches_the_server_log(
    live: tuple[Server, dict[str, str]], demo_instance: Path
) -> None:
    srv, tokens = live
    link = requests.post(
        srv.url + "/v1/subjects/access-links",
        headers=_h(tokens["patient_portal:tt-leeds"]),
        json={"subject": {"nhs_number": NHS[0]}},
        timeout=10,
    ).json()
    token = link["url"].rsplit("/p/", 1)[1]
    page = requests.get(link["url"], timeout=10)
    assert page.status_code == 200
    assert requests.get(link["url"] + "/object", timeout=10).status_code == 200
    srv.stop()
    log = (demo_instance / "server.log").read_text()
    assert token not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    requests_logged = {line["request_id"]: line for line in lines if "status" in line}
    seen = requests_logged[page.headers["X-Request-Id"]]
    assert (seen["method"], seen["path"], seen["status"]) == ("GET", "/p/[link]", 200)
    assert any(line["path"] == "/p/[link]/object" for line in requests_logged.values())
