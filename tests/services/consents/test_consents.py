"""Consent services: receipts that verify, projections that match the log."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import text

from app.services.container import Ledger
from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers
from tests.support import rfc9162_verifier as rfc

# Confirmation (G6) reads the policy in force, as a deployment's would.
pytestmark = pytest.mark.usefixtures("policy")

NHS = valid_nhs_numbers(3)


def _consent(client: FlaskClient, token: str, nhs: str = NHS[0], **over: object) -> dict:  # type: ignore[type-arg]
    body = {
        "subject": {"nhs_number": nhs},
        "purpose": "referral",
        "recipients": ["tt-leeds", "whp-leeds"],
        "data_categories": ["identity", "service_status"],
        "form": "written",
        "evidence_sha256": "ab" * 32,
        **over,
    }
    resp = client.post("/v1/consents", json=body, headers=bearer(token))
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_consent_receipt_verifies_independently(
    client: FlaskClient, make_token: Callable[..., str]
) -> None:
    """The receipt's checkpoint verifies under the published key, and the entry's inclusion
    proof verifies at that checkpoint's size, with a verifier written from the RFCs."""
    jcp = make_token("jcp-leeds-city", "case_system")
    auditor = make_token("tt-leeds", "auditor")
    receipt = _consent(client, jcp)["ledger"]
    vkey = client.get("/v1/log/key").text.strip()
    cp = rfc.verify_checkpoint(receipt["checkpoint"], vkey)
    assert cp.size == receipt["index"] + 1
    proof = client.get(
        f"/v1/log/proof/inclusion?index={receipt['index']}&size={cp.size}", headers=bearer(auditor)
    ).get_json()
    rfc.verify_inclusion(
        bytes.fromhex(receipt["leaf_hash"]),
        receipt["index"],
        cp.size,
        [bytes.fromhex(h) for h in proof["hashes"]],
        cp.root_hash,
    )
    # Later writes do not invalidate the receipt: the newer tree is consistent with it.
    _consent(client, jcp, NHS[1])
    newest = rfc.verify_checkpoint(client.get("/v1/log/checkpoint").text, vkey)
    c = client.get(
        f"/v1/log/proof/consistency?from={cp.size}&to={newest.size}", headers=bearer(auditor)
    ).get_json()
    rfc.verify_consistency(
        cp.size,
        newest.size,
        [bytes.fromhex(h) for h in c["hashes"]],
        cp.root_hash,
        newest.root_hash,
    )


def test_log_entries_hold_subject_refs_not_nhs_numbers(
    client: FlaskClient, make_token: Callable[..., str]
) -> None:
    jcp = make_token("jcp-leeds-city", "case_system")
    auditor = make_token("tt-leeds", "auditor")
    consent = _consent(client, jcp)
    client.post(
        f"/v1/consents/{consent['id']}/withdraw",
        headers=bearer(jcp),
        json={"reason": "person_withdrew"},
    )
    client.post(
        "/v1/objections",
        headers=bearer(jcp),
        json={"subject": {"nhs_number": NHS[0]}, "scope": "direct_care"},
    )
    size = client.get("/healthz").get_json()["log_size"]
    spaced = f"{NHS[0][:3]} {NHS[0][3:6]} {NHS[0][6:]}"
    types = []
    for i in range(size):
        entry = client.get(f"/v1/log/entries/{i}", headers=bearer(auditor)).get_json()
        leaf = base64.b64decode(entry["leaf"]).decode()
        assert NHS[0] not in leaf
        assert spaced not in leaf
        types.append(entry["entry"]["type"])
        if entry["entry"]["type"].startswith(("consent.", "objection.")):
            assert entry["entry"]["data"]["subject_ref"] == consent["subject_ref"]
    assert types[-3:] == ["consent.granted", "consent.withdrawn", "objection.recorded"]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_rebuild_check_passes_then_names_a_tampered_projection(
    client: FlaskClient, runner: FlaskCliRunner, ledger: Ledger, make_token: Callable[..., str]
) -> None:
    jcp = make_token("jcp-leeds-city", "case_system")
    tt = make_token("tt-leeds", "case_system")
    first = _consent(client, jcp)
    second = _consent(client, jcp, NHS[1])
    client.post(f"/v1/consents/{first['id']}/confirm", headers=bearer(tt))
    client.post(f"/v1/consents/{first['id']}/withdraw", headers=bearer(jcp))
    objection = client.post(
        "/v1/objections",
        headers=bearer(tt),
        json={"subject": {"nhs_number": NHS[2]}, "scope": "national_data_opt_out"},
    ).get_json()
    client.post(f"/v1/objections/{objection['id']}/withdraw", headers=bearer(tt))

    ok = runner.invoke(args=["rebuild", "--check"])
    assert ok.exit_code == 0, ok.output
    assert "projections match the log" in ok.output

    # Someone "re-activates" a withdrawn consent in the table, behind the log's back.
    with ledger.db.write_engine.begin() as conn:
        conn.execute(
            text("UPDATE consents SET status = 'active', withdrawn_at = NULL WHERE id = :id"),
            {"id": first["id"]},
        )
        conn.execute(
            text("DELETE FROM consent_events WHERE consent_id = :id AND event = 'confirmed'"),
            {"id": first["id"]},
        )
    bad = runner.invoke(args=["rebuild", "--check"])
    assert bad.exit_code == 1
    assert f"consents {first['id']}: status is 'active' in the table but 'withdrawn'" in bad.output
    assert "in the log but missing from the table" in bad.output
    assert second["id"] not in bad.output

    repaired = runner.invoke(args=["rebuild"])
    assert repaired.exit_code == 0, repaired.output
    assert runner.invoke(args=["rebuild", "--check"]).exit_code == 0
    history = client.get(f"/v1/consents?nhs_number={NHS[0]}", headers=bearer(jcp)).get_json()
    assert history["consents"][0]["status"] == "withdrawn"
