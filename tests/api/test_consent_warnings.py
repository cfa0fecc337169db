"""Issue 15 item 5: a consent listing what the policy in force never permits is recorded, and
its 201 says, per recipient and category, what can never flow and under which rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers

pytestmark = pytest.mark.usefixtures("policy")

NHS = valid_nhs_numbers(1, start=943_476_600)[0]
EVIDENCE = "0123456789abcdef" * 4

CASES = [
    pytest.param(
        "ea-tt-leeds",
        "evaluation",
        ["eval-northern-uni"],
        ["identity", "service_status"],
        [("eval-northern-uni", "identity", "G7")],
        id="identity-to-an-evaluator",
    ),
    pytest.param(
        "ea-tt-leeds",
        "employer_contact",
        ["employer-acme-logistics"],
        ["employment_status", "clinical_notes"],
        [("employer-acme-logistics", "clinical_notes", "G7")],
        id="clinical-notes-to-an-employer",
    ),
    pytest.param(
        "tt-leeds",
        "employer_contact",
        ["employer-acme-logistics"],
        ["employment_status"],
        [("employer-acme-logistics", None, "P10")],
        id="employer-contact-by-a-health-organisation",
    ),
    pytest.param(
        "tt-leeds",
        "referral",
        ["ea-tt-leeds"],
        ["identity", "outcome_measures"],
        [],
        id="nothing-to-say",
    ),
]


@pytest.mark.parametrize(("recorder", "purpose", "recipients", "categories", "expected"), CASES)
def test_a_consent_that_can_never_be_used_in_full_is_recorded_with_warnings(
    client: FlaskClient,
    make_token: Callable[..., str],
    recorder: str,
    purpose: str,
    recipients: list[str],
    categories: list[str],
    expected: list[tuple[str, str | None, str]],
) -> None:
    token = make_token(recorder, "case_system")
    resp = client.post(
        "/v1/consents",
        headers=bearer(token),
        json={
            "subject": {"nhs_number": NHS},
            "purpose": purpose,
            "recipients": recipients,
            "data_categories": categories,
            "form": "written",
            "evidence_sha256": EVIDENCE,
        },
    )
    assert resp.status_code == 201, resp.get_json()
    body: dict[str, Any] = resp.get_json()
    warnings = body["warnings"]
    assert [(w["recipient"], w["category"], w["rule"]) for w in warnings] == expected
    for w in warnings:
        assert w["recipient"] in w["message"]
        assert f"{w['rule']}:" in w["message"]
        assert NHS not in w["message"]
    # Recorded all the same, as listed.
    history = client.get(
        "/v1/consents", headers=bearer(token), query_string={"nhs_number": NHS}
    ).get_json()
    (kept,) = [c for c in history["consents"] if c["id"] == body["id"]]
    assert kept["data_categories"] == categories
    assert kept["status"] == "active"


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_warnings_are_replayed_with_the_receipt(
    client: FlaskClient, make_token: Callable[..., str]
) -> None:
    token = make_token("ea-tt-leeds", "case_system")
    request = {
        "subject": {"nhs_number": NHS},
        "purpose": "evaluation",
        "recipients": ["eval-northern-uni"],
        "data_categories": ["contact_details", "outcome_measures"],
        "form": "electronic",
        "evidence_sha256": EVIDENCE,
    }
    headers = {**bearer(token), "Idempotency-Key": "capture-1"}
    first = client.post("/v1/consents", headers=headers, json=request)
    again = client.post("/v1/consents", headers=headers, json=request)
    assert first.status_code == again.status_code == 201
    assert [w["category"] for w in first.get_json()["warnings"]] == ["contact_details"]
    assert again.get_json()["warnings"] == first.get_json()["warnings"]


def test_the_openapi_document_describes_the_warnings(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    created = spec["paths"]["/v1/consents"]["post"]["responses"]["201"]
    ref = created["content"]["application/json"]["schema"]["$ref"]
    receipt = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    items = receipt["properties"]["warnings"]["items"]["$ref"]
    warning = spec["components"]["schemas"][items.rsplit("/", 1)[1]]
    assert set(warning["required"]) == {"recipient", "category", "rule", "message"}
