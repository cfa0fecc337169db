"""Disclosures as IHE BALP PrivacyDisclosure AuditEvents (issue 17 item 3), with the scope of
``GET /v1/disclosures``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.fhir import codes
from app.policy import Policy
from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers
from tests.support.fhir_check import check_balp_disclosure, check_resource

PERSON, OTHER = valid_nhs_numbers(2, start=943_476_700)
Tokens = dict[str, str]


def search_path(nhs: str, extra: str = "") -> str:
    return f"/fhir/r4/AuditEvent?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}{extra}"


@pytest.fixture
def tokens(policy: Policy, make_token: Callable[..., str]) -> Tokens:
    return {
        "tt": make_token("tt-leeds", "case_system"),
        "tt_ig": make_token("tt-leeds", "ig_lead"),  # the discloser's IG lead
        "ea_ig": make_token("ea-tt-leeds", "ig_lead"),  # the recipient's
        "asc_ig": make_token("asc-leeds", "ig_lead"),  # neither
        "auditor": make_token("asc-leeds", "auditor"),
    }


def disclose(client: FlaskClient, tokens: Tokens, nhs: str = PERSON) -> dict[str, Any]:
    """Flow 2: Talking Therapies shares with its Employment Advisers under a consent."""
    consent = client.post(
        "/v1/consents",
        json={
            "subject": {"nhs_number": nhs},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity", "service_status"],
            "form": "verbal",
        },
        headers=bearer(tokens["tt"]),
    )
    assert consent.status_code == 201, consent.get_json()
    decision = client.post(
        "/v1/decisions",
        json={
            "subject": {"nhs_number": nhs},
            "from": "tt-leeds",
            "to": "ea-tt-leeds",
            "purpose": "referral",
            "data_categories": ["identity", "service_status"],
        },
        headers=bearer(tokens["tt"]),
    )
    assert decision.status_code == 200, decision.get_json()
    disclosure = client.post(
        "/v1/disclosures",
        json={
            "decision_id": decision.get_json()["id"],
            "data_categories": ["identity", "service_status"],
        },
        headers=bearer(tokens["tt"]),
    )
    assert disclosure.status_code == 201, disclosure.get_json()
    return disclosure.get_json()  # type: ignore[no-any-return]


def audit_events(client: FlaskClient, token: str, path: str) -> tuple[int, list[dict[str, Any]]]:
    resp = client.get(path, headers=bearer(token))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "application/fhir+json"
    bundle = check_resource(resp.get_json(force=True))
    assert bundle["type"] == "searchset"
    events = [e["resource"] for e in bundle.get("entry", [])]
    for event in events:
        check_balp_disclosure(event)
    return bundle["total"], events


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_disclosure_is_a_balp_privacy_disclosure_audit_event(
    client: FlaskClient, tokens: Tokens
) -> None:
    d = disclose(client, tokens)
    resp = client.get(search_path(PERSON), headers=bearer(tokens["auditor"]))
    assert PERSON not in resp.get_data(as_text=True)
    total, (event,) = audit_events(client, tokens["auditor"], search_path(PERSON))
    assert total == 1
    assert event["id"] == d["id"].replace("_", "-")
    assert event["recorded"] == d["disclosed_at"]
    assert event["purposeOfEvent"] == [
        {
            "coding": [
                {"system": codes.PURPOSE_SYSTEM, "code": "referral"},
                {"system": codes.PURPOSE_OF_USE_SYSTEM, "code": "COC"},
            ]
        }
    ]
    source, recipient = event["agent"]
    assert source["who"]["identifier"] == {
        "system": codes.ORGANISATION_ID_SYSTEM,
        "value": "tt-leeds",
    }
    assert source["requestor"] is True
    assert recipient["who"]["identifier"]["value"] == "ea-tt-leeds"
    patient, data, *consents = event["entity"]
    assert patient["what"]["identifier"] == {
        "system": codes.SUBJECT_ID_SYSTEM,
        "value": d["subject_ref"],
    }
    assert data["what"]["identifier"] == {"system": codes.DISCLOSURE_ID_SYSTEM, "value": d["id"]}
    assert data["securityLabel"] == [
        {"system": codes.DATA_CATEGORY_SYSTEM, "code": "identity"},
        {"system": codes.DATA_CATEGORY_SYSTEM, "code": "service_status"},
    ]
    assert {"type": "decision", "valueString": d["decision_id"]} in data["detail"]
    assert [c["what"]["reference"] for c in consents] == [
        f"Consent/{c.replace('_', '-')}" for c in d["consents"]
    ]
    (ext,) = event["extension"]
    assert ext["url"] == codes.LOG_ENTRY_EXTENSION
    assert ext["extension"] == [
        {"url": "index", "valueUnsignedInt": d["ledger"]["index"]},
        {"url": "leafHash", "valueString": d["ledger"]["leaf_hash"]},
    ]


# caller -> sees the disclosure (tt-leeds to ea-tt-leeds), as GET /v1/disclosures shows it
SCOPE = [("tt_ig", True), ("ea_ig", True), ("asc_ig", False), ("auditor", True)]


@pytest.mark.parametrize(("caller", "sees"), SCOPE)
def test_the_scope_is_v1s(client: FlaskClient, tokens: Tokens, caller: str, sees: bool) -> None:
    d = disclose(client, tokens)
    v1 = client.get(
        "/v1/disclosures", query_string={"nhs_number": PERSON}, headers=bearer(tokens[caller])
    ).get_json()
    assert [i["id"] for i in v1["items"]] == ([d["id"]] if sees else [])
    total, events = audit_events(client, tokens[caller], search_path(PERSON))
    assert total == v1["total"]
    assert [e["id"] for e in events] == [i["id"].replace("_", "-") for i in v1["items"]]


def test_pages_newest_first_like_v1(client: FlaskClient, tokens: Tokens) -> None:
    first, second = disclose(client, tokens), disclose(client, tokens)
    disclose(client, tokens, OTHER)  # someone else: never in this person's answer
    total, page1 = audit_events(client, tokens["auditor"], search_path(PERSON, "&_count=1"))
    _, page2 = audit_events(client, tokens["auditor"], search_path(PERSON, "&_count=1&page=2"))
    _, page3 = audit_events(client, tokens["auditor"], search_path(PERSON, "&_count=1&page=3"))
    assert total == 2
    assert [e["id"] for e in page1 + page2] == [
        second["id"].replace("_", "-"),
        first["id"].replace("_", "-"),
    ]
    assert page3 == []


def test_an_erased_persons_disclosures_are_gone(client: FlaskClient, tokens: Tokens) -> None:
    disclose(client, tokens)
    erased = client.post(
        "/v1/subjects/erasures",
        json={
            "subject": {"nhs_number": PERSON},
            "reference": "SAR-2026-0042",
            "reason": "recorded_in_error",
        },
        headers=bearer(tokens["tt_ig"]),
    )
    assert erased.status_code == 201, erased.get_json()
    assert audit_events(client, tokens["auditor"], search_path(PERSON)) == (0, [])
