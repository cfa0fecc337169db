"""Consents written as FHIR R4 (issue 17 item 2): ``POST /fhir/r4/Consent`` records a consent
with v1's rules, roles and messages, naming the FHIR element at fault."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.fhir import codes
from app.policy import Policy
from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers
from tests.support.fhir_check import check_resource, check_uk_core_consent

PERSON, OTHER = valid_nhs_numbers(2, start=943_476_700)
EVIDENCE = "cd" * 32
Tokens = dict[str, str]
IRCP = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}
    ]
}


def org(org_id: str) -> dict[str, Any]:
    return {"identifier": {"system": codes.ORGANISATION_ID_SYSTEM, "value": org_id}}


def consent_resource(nhs: str = PERSON, **over: Any) -> dict[str, Any]:
    """A FHIR Consent as an integrator would write it: the same consent as ``v1_body``."""
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [
            {"coding": [{"system": "http://loinc.org", "code": "59284-0"}]},
            {"coding": [{"system": codes.CONSENT_FORM_SYSTEM, "code": "written"}]},
        ],
        "patient": {"identifier": {"system": codes.NHS_NUMBER_SYSTEM, "value": nhs}},
        "sourceAttachment": {
            "extension": [{"url": codes.SHA256_EXTENSION, "valueString": EVIDENCE}]
        },
        "provision": {
            "type": "permit",
            "period": {"end": "2099-01-01T00:00:00Z"},
            "actor": [
                {"role": IRCP, "reference": org("tt-leeds")},
                {"role": IRCP, "reference": org("ea-tt-leeds")},
            ],
            "purpose": [{"system": codes.PURPOSE_SYSTEM, "code": "referral"}],
            "class": [
                {"system": codes.DATA_CATEGORY_SYSTEM, "code": "identity"},
                {"system": codes.DATA_CATEGORY_SYSTEM, "code": "work_needs"},
            ],
        },
    }
    resource.update(over)
    return resource


def v1_body(nhs: str = PERSON) -> dict[str, Any]:
    return {
        "subject": {"nhs_number": nhs},
        "purpose": "referral",
        "recipients": ["tt-leeds", "ea-tt-leeds"],
        "data_categories": ["identity", "work_needs"],
        "form": "written",
        "evidence_sha256": EVIDENCE,
        "expires_at": "2099-01-01T00:00:00.000000Z",  # as v1 spells it
    }


@pytest.fixture
def tokens(policy: Policy, make_token: Callable[..., str]) -> Tokens:
    return {
        "whp": make_token("whp-leeds", "case_system"),
        "auditor": make_token("asc-leeds", "auditor"),
        "ig": make_token("whp-leeds", "ig_lead"),
    }


def post_consent(client: FlaskClient, token: str, resource: Any, **headers: str) -> Any:
    return client.post(
        "/fhir/r4/Consent",
        json=resource,
        headers={**bearer(token), "Content-Type": "application/fhir+json", **headers},
    )


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_fhir_consent_is_recorded_and_answered_as_read_back(
    client: FlaskClient, tokens: Tokens
) -> None:
    resp = post_consent(client, tokens["whp"], consent_resource())
    assert resp.status_code == 201, resp.get_json(force=True)
    assert resp.mimetype == "application/fhir+json"
    assert PERSON not in resp.get_data(as_text=True)
    created = check_resource(resp.get_json(force=True))
    check_uk_core_consent(created)
    version = created["meta"]["versionId"]
    assert resp.headers["ETag"] == f'W/"{version}"'
    assert resp.headers["Location"].endswith(f"/fhir/r4/Consent/{created['id']}/_history/{version}")
    read = client.get(f"/fhir/r4/Consent/{created['id']}", headers=bearer(tokens["whp"]))
    assert read.get_json(force=True) == created
    # The Location names a version the service serves (vread).
    located = client.get(resp.headers["Location"], headers=bearer(tokens["whp"]))
    assert (located.status_code, located.get_json(force=True)) == (200, created)
    # The same consent through v1.
    history = client.get(
        f"/v1/consents?nhs_number={PERSON}", headers=bearer(tokens["whp"])
    ).get_json()
    (consent,) = history["consents"]
    assert codes.fhir_id(consent["id"]) == created["id"]
    wanted = {k: v for k, v in v1_body().items() if k != "subject"}
    assert {k: consent[k] for k in wanted} == wanted


def _set(resource: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


# (what is wrong, the change to the FHIR Consent, the same change to the v1 body, the element)
BAD = [
    (
        "unknown purpose",
        ("provision", "purpose", 0, "code"),
        "gossip",
        ("purpose",),
        "Consent.provision.purpose[0]",
    ),
    (
        "unregistered recipient",
        ("provision", "actor", 1, "reference", "identifier", "value"),
        "nobody-here",
        ("recipients", 1),
        "Consent.provision.actor[1].reference.identifier.value",
    ),
    (
        "unknown data category",
        ("provision", "class", 1, "code"),
        "shoe_size",
        ("data_categories", 1),
        "Consent.provision.class[1]",
    ),
    (
        "expiry in the past",
        ("provision", "period", "end"),
        "2001-01-01T00:00:00Z",
        ("expires_at",),
        "Consent.provision.period.end",
    ),
    (
        "bad NHS number",
        ("patient", "identifier", "value"),
        "1234567890",
        ("subject", "nhs_number"),
        "Consent.patient.identifier.value",
    ),
]


@pytest.mark.parametrize(("why", "fhir_path", "value", "v1_path", "element"), BAD)
def test_a_bad_consent_is_refused_with_v1s_message_naming_the_element(
    client: FlaskClient,
    tokens: Tokens,
    why: str,
    fhir_path: tuple[Any, ...],
    value: Any,
    v1_path: tuple[Any, ...],
    element: str,
) -> None:
    v1 = client.post(
        "/v1/consents", json=_set(v1_body(), v1_path, value), headers=bearer(tokens["whp"])
    )
    v1_messages = {e["message"] for e in v1.get_json()["errors"]}
    resp = post_consent(client, tokens["whp"], _set(consent_resource(), fhir_path, value))
    assert resp.status_code == v1.status_code, why
    outcome = check_resource(resp.get_json(force=True))
    (issue,) = outcome["issue"]
    assert issue["expression"] == [element], why
    assert any(m in issue["diagnostics"] for m in v1_messages), (issue, v1_messages)
    assert "1234567890" not in resp.get_data(as_text=True)
    # Nothing recorded.
    history = client.get(
        f"/v1/consents?nhs_number={PERSON}", headers=bearer(tokens["whp"])
    ).get_json()
    assert history["consents"] == []


def test_a_signed_form_without_evidence_names_the_source_attachment(
    client: FlaskClient, tokens: Tokens
) -> None:
    resource = consent_resource()
    del resource["sourceAttachment"]
    resp = post_consent(client, tokens["whp"], resource)
    assert resp.status_code == 422
    (issue,) = check_resource(resp.get_json(force=True))["issue"]
    assert issue["expression"] == ["Consent.sourceAttachment"]
    assert "SHA-256 of the signed form" in issue["diagnostics"]


@pytest.mark.parametrize("role", ["auditor", "ig"])
def test_only_a_case_system_records_as_in_v1(
    client: FlaskClient, tokens: Tokens, role: str
) -> None:
    resp = post_consent(client, tokens[role], consent_resource())
    assert resp.status_code == 403
    assert check_resource(resp.get_json(force=True))["resourceType"] == "OperationOutcome"


def test_an_idempotency_key_replays_the_first_answer_and_records_once(
    client: FlaskClient, tokens: Tokens
) -> None:
    first = post_consent(client, tokens["whp"], consent_resource(), **{"Idempotency-Key": "k-1"})
    again = post_consent(client, tokens["whp"], consent_resource(), **{"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json(force=True)["id"] == first.get_json(force=True)["id"]
    assert again.headers["Location"] == first.headers["Location"]
    history = client.get(
        f"/v1/consents?nhs_number={PERSON}", headers=bearer(tokens["whp"])
    ).get_json()
    assert len(history["consents"]) == 1
    other = post_consent(
        client, tokens["whp"], consent_resource(OTHER), **{"Idempotency-Key": "k-1"}
    )
    assert other.status_code == 422


# (what the caller adds, where, the element named): each narrows or widens what the person
# agreed to in a way the service cannot record exactly, so recording it without would record
# more (or other) than they agreed to.
UNRECORDABLE = [
    (
        "a nested deny for one category",
        ("provision", "provision"),
        [{"type": "deny", "class": [{"system": codes.DATA_CATEGORY_SYSTEM, "code": "work_needs"}]}],
        "Consent.provision.provision",
    ),
    (
        "the data it covers",
        ("provision", "data"),
        [{"meaning": "instance", "reference": {"reference": "DocumentReference/1"}}],
        "Consent.provision.data",
    ),
    (
        "the period of the data",
        ("provision", "dataPeriod"),
        {"start": "2024-01-01"},
        "Consent.provision.dataPeriod",
    ),
    (
        "an action other than disclosing",
        ("provision", "action"),
        [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                        "code": "access",
                    }
                ]
            }
        ],
        "Consent.provision.action[0]",
    ),
    (
        "a second purpose",
        ("provision", "purpose"),
        [
            {"system": codes.PURPOSE_SYSTEM, "code": "referral"},
            {"system": codes.PURPOSE_SYSTEM, "code": "evaluation"},
        ],
        "Consent.provision.purpose",
    ),
    (
        "a v3 purpose that means another of ours",
        ("provision", "purpose"),
        [
            {"system": codes.PURPOSE_SYSTEM, "code": "referral"},
            {"system": codes.PURPOSE_OF_USE_SYSTEM, "code": "HOUTCOMS"},
        ],
        "Consent.provision.purpose",
    ),
    (
        "a security label",
        ("provision", "securityLabel"),
        [{"code": "R"}],
        "Consent.provision.securityLabel",
    ),
    (
        "a modifier extension",
        ("modifierExtension",),
        [{"url": "http://x.example/m"}],
        "Consent.modifierExtension",
    ),
    (
        "an actor's modifier",
        ("provision", "actor", 0, "modifierExtension"),
        [{"url": "http://x.example/m"}],
        "Consent.provision.actor[0].modifierExtension",
    ),
    ("verification", ("verification",), [{"verified": False}], "Consent.verification"),
    (
        "two consent forms",
        ("category",),
        [
            {"coding": [{"system": codes.CONSENT_FORM_SYSTEM, "code": "written"}]},
            {"coding": [{"system": codes.CONSENT_FORM_SYSTEM, "code": "verbal"}]},
        ],
        "Consent.category[1]",
    ),
]


@pytest.mark.parametrize(("why", "fhir_path", "value", "element"), UNRECORDABLE)
def test_an_element_the_service_cannot_record_exactly_is_refused_naming_it(
    client: FlaskClient,
    tokens: Tokens,
    why: str,
    fhir_path: tuple[Any, ...],
    value: Any,
    element: str,
) -> None:
    resp = post_consent(client, tokens["whp"], _set(consent_resource(), fhir_path, value))
    assert resp.status_code == 422, (why, resp.get_data(as_text=True))
    outcome = check_resource(resp.get_json(force=True))
    (issue,) = outcome["issue"]
    assert issue["expression"] == [element], why
    history = client.get(
        f"/v1/consents?nhs_number={PERSON}", headers=bearer(tokens["whp"])
    ).get_json()
    assert history["consents"] == []


def test_a_purpose_in_our_codes_and_v3_together_is_one_purpose(
    client: FlaskClient, tokens: Tokens
) -> None:
    """As the read face writes it: referral, and COC (referral or case conferencing)."""
    resource = consent_resource()
    resource["provision"]["purpose"] = codes.purpose_codings("referral")
    resp = post_consent(client, tokens["whp"], resource)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json()["provision"]["purpose"] == codes.purpose_codings("referral")


def element_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every element of a JSON value, as the key path to it."""
    keys: Any = value.keys() if isinstance(value, dict) else range(len(value))
    out = []
    for key in keys:
        out.append((*path, key))
        if isinstance(value[key], dict | list):
            out += element_paths(value[key], (*path, key))
    return out


ODD_VALUES = [5, True, 1.5, None, "x", {}, [], [5], {"a": [1]}]


def test_odd_json_at_any_element_is_a_client_error_never_a_500(
    client: FlaskClient, tokens: Tokens
) -> None:
    """Every shape check is total: each element replaced by each odd JSON value."""
    for path in element_paths(consent_resource()):
        for odd in ODD_VALUES:
            resp = post_consent(client, tokens["whp"], _set(consent_resource(), path, odd))
            assert resp.status_code in (201, 400, 422), (path, odd, resp.get_data(as_text=True))


def evaluation_consent() -> dict[str, Any]:
    """A consent to evaluation listing identity, which G7 never lets a university receive."""
    body = consent_resource()
    body["provision"]["purpose"] = [{"system": codes.PURPOSE_SYSTEM, "code": "evaluation"}]
    body["provision"]["actor"] = [{"role": IRCP, "reference": org("eval-northern-uni")}]
    body["provision"]["class"] = [
        {"system": codes.DATA_CATEGORY_SYSTEM, "code": c} for c in ("identity", "service_status")
    ]
    return body


def test_prefer_operation_outcome_answers_v1s_warnings(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    """What the policy never permits of what the consent lists (v1's ``warnings``) is said,
    not refused: as warning issues of the OperationOutcome R4 create returns when asked for
    with ``Prefer: return=OperationOutcome``."""
    token = make_token("ea-tt-leeds", "case_system")
    v1 = client.post(
        "/v1/consents",
        json={
            "subject": {"nhs_number": OTHER},
            "purpose": "evaluation",
            "recipients": ["eval-northern-uni"],
            "data_categories": ["identity", "service_status"],
            "form": "written",
            "evidence_sha256": EVIDENCE,
        },
        headers=bearer(token),
    ).get_json()
    assert [w["rule"] for w in v1["warnings"]] == ["G7"]
    resp = post_consent(client, token, evaluation_consent(), Prefer="return=OperationOutcome")
    assert resp.status_code == 201, resp.get_json(force=True)
    assert resp.headers["Location"].startswith("http://localhost/fhir/r4/Consent/")
    body = check_resource(resp.get_json(force=True))
    assert body["resourceType"] == "OperationOutcome"
    warned = [i for i in body["issue"] if i["severity"] == "warning"]
    assert [i["diagnostics"] for i in warned] == [w["message"] for w in v1["warnings"]]
    assert all(i["code"] == "business-rule" for i in warned)
    assert [i["details"]["text"].split(":")[0] for i in warned] == [
        w["rule"] for w in v1["warnings"]
    ]
    # The consent was recorded all the same, as the Location says.
    located = client.get(resp.headers["Location"], headers=bearer(token))
    assert located.status_code == 200


@pytest.mark.parametrize(
    ("prefer", "answer"),
    [(None, "Consent"), ("return=representation", "Consent"), ("return=minimal", None)],
)
def test_prefer_return_chooses_the_answer_to_a_create(
    client: FlaskClient,
    policy: Policy,
    make_token: Callable[..., str],
    prefer: str | None,
    answer: str | None,
) -> None:
    token = make_token("ea-tt-leeds", "case_system")
    headers = {"Prefer": prefer} if prefer else {}
    resp = post_consent(client, token, evaluation_consent(), **headers)
    assert resp.status_code == 201, resp.get_json(force=True)
    assert "/_history/" in resp.headers["Location"]
    if answer is None:
        assert resp.get_data() == b""
    else:
        assert check_resource(resp.get_json(force=True))["resourceType"] == answer
