"""CDS Hooks 2.0 ``patient-consent-consult`` (LEAP's request and card): the same logged decision
as ``POST /v1/decisions``, answered as one card; every body checked against the CDS Hooks JSON
Schemas of ``tests/support/cds_hooks/`` by ``jsonschema``."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app, get_ledger
from app.policy import Policy
from app.services import demo
from app.services.container import Ledger
from tests.helpers import BOTH, bearer, logged_entry
from tests.nhs import valid_nhs_numbers
from tests.support.cds_check import check

BASE = "https://consent-ledger.example/fhir"
ORG = f"{BASE}/Id/organisation"
SUBJECT = f"{BASE}/Id/subject"
CATEGORY = f"{BASE}/CodeSystem/data-category"
OBLIGATION = f"{BASE}/CodeSystem/obligation"
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
REDACT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "REDACT"}
OURS = "example.consent-ledger.decision"
URL = "/cds-services/patient-consent-consult"
STRANGER = valid_nhs_numbers(1, start=943_476_500)[0]
# What a decision says, whichever face asked: all but its own id, time and log position.
SAME = (
    "decision",
    "permitted_categories",
    "denied_categories",
    "reasons",
    "consents",
    "obligations",
    "policy_version",
    "basis",
    "from",
    "to",
    "purpose",
    "data_categories",
    "subject_ref",
)


def consult_body(
    nhs: str, to: str, purpose: str | list[str], categories: list[str], **context: Any
) -> dict[str, Any]:
    body = {
        "hook": "patient-consent-consult",
        "hookInstance": "3f2a9c1e-7b4d-4e8a-9c0f-1d2e3f4a5b6c",
        "context": {
            "patientId": [{"system": NHS_SYSTEM, "value": nhs}],
            "actor": [{"system": ORG, "value": to}],
            "purposeOfUse": purpose,
            "category": [{"system": SCOPE, "code": "patient-privacy"}],
            "class": [{"system": CATEGORY, "code": c} for c in categories],
            **context,
        },
    }
    return check("request", body)


def referral_consent(
    client: FlaskClient, token: dict[str, str], nhs: str, categories: list[str]
) -> dict[str, Any]:
    """A verbal referral consent from tt-leeds to ea-tt-leeds, recorded through /v1."""
    given = client.post(
        "/v1/consents",
        json={
            "subject": {"nhs_number": nhs},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": categories,
            "form": "verbal",
        },
        headers=token,
    )
    assert given.status_code == 201, given.get_json()
    body: dict[str, Any] = given.get_json()
    return body


def card_of(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/json"
    (card,) = check("response", response.get_json())["cards"]
    return card  # type: ignore[no-any-return]


@pytest.fixture
def demo_tokens(ledger: Ledger, policy: Policy, orgs: list[str]) -> Callable[..., str]:
    """The demo's six flows, made as ``consent-ledger demo`` makes them; its tokens by org."""
    tokens = demo.create_clients(ledger, orgs)
    demo.run_flows(ledger, tokens, lambda _: None)
    by = {(t["organisation"], t["role"]): t["token"] for t in tokens}
    return lambda org, role="case_system": by[org, role]


# The six flows of design.md (README, "A first look: the six flows"), and the refusals in them:
# (flow person, from, to, purpose, categories, what LEAP's client is told).
FLOWS = {
    "1 jobcentre refers to therapy": (
        "jobcentre", "jcp-leeds-city", "tt-leeds", "referral",
        ["identity", "service_status", "employment_status"], "CONSENT_PERMIT",
    ),
    "1 therapy, under the jobcentre's confirmed consent": (
        "jobcentre", "tt-leeds", "ea-tt-leeds", "referral", ["identity"], "CONSENT_PERMIT",
    ),
    "2 therapy to employment adviser": (
        "therapy", "tt-leeds", "ea-tt-leeds", "referral", ["identity", "work_needs"],
        "CONSENT_PERMIT",
    ),
    "3 case conference, signed": (
        "therapy", "ea-tt-leeds", "tt-leeds", "case_conferencing",
        ["identity", "work_needs", "outcome_measures"], "CONSENT_PERMIT",
    ),
    "3 clinical notes never to employment (G7 ceiling)": (
        "therapy", "tt-leeds", "ea-tt-leeds", "case_conferencing", ["clinical_notes"],
        "CONSENT_DENY",
    ),
    "4 evaluation, withdrawn": (
        "evaluation", "tt-leeds", "eval-northern-uni", "evaluation",
        ["outcome_measures", "employment_status"], "CONSENT_DENY",  # the person said no
    ),
    "5 sms: reminders yes, condition no (P12)": (
        "sms", "tt-leeds", "tt-leeds", "sms_contact", ["contact_details", "condition"],
        "CONSENT_PERMIT",
    ),
    "6 employer, by the IPS specialist": (
        "employer", "ips-cmht-leeds", "employer-acme-logistics", "employer_contact",
        ["employment_status", "work_needs"], "CONSENT_PERMIT",
    ),
    "6 employer, never by therapy (P10)": (
        "employer", "tt-leeds", "employer-acme-logistics", "employer_contact",
        ["employment_status"], "CONSENT_DENY",
    ),
    "objection (G3)": (
        "objection", "cmht-leeds-west", "tt-leeds", "referral", ["identity"], "CONSENT_DENY",
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("person", "frm", "to", "purpose", "categories", "leap"), FLOWS.values(), ids=list(FLOWS)
)
def test_the_six_flows_decide_as_v1_does(
    client: FlaskClient,
    ledger: Ledger,
    demo_tokens: Callable[..., str],
    person: str,
    frm: str,
    to: str,
    purpose: str,
    categories: list[str],
    leap: str,
) -> None:
    token = bearer(demo_tokens(frm))
    nhs = demo.PEOPLE[person]
    v1 = client.post(
        "/v1/decisions",
        json={
            "subject": {"nhs_number": nhs},
            "from": frm,
            "to": to,
            "purpose": purpose,
            "data_categories": categories,
        },
        headers=token,
    ).get_json()
    card = card_of(client.post(URL, json=consult_body(nhs, to, purpose, categories), headers=token))

    ext = card["extension"]
    assert (card["summary"], ext["decision"]) == (leap, leap)
    ours = ext[OURS]
    assert {k: ours[k] for k in SAME} == {k: v1[k] for k in SAME}
    assert ours["id"] != v1["id"]
    # Refused categories of a permit are REDACT obligations; our own obligations follow.
    refused = [d["category"] for d in v1["denied_categories"]]
    redact = [
        {"id": REDACT, "parameters": {"codes": [{"system": CATEGORY, "code": c} for c in refused]}}
    ]
    expected = [{"id": {"system": OBLIGATION, "code": o}} for o in v1["obligations"]]
    if leap == "CONSENT_PERMIT":
        assert ext["obligations"] == (redact if refused else []) + expected
    else:
        assert ext["obligations"] == []
    if v1["consents"]:
        first = v1["consents"][0].replace("_", "-")
        assert ext["basedOn"] == f"Consent/{first}"
        assert ours["basedOn"] == [f"Consent/{c.replace('_', '-')}" for c in v1["consents"]]
    else:
        assert "basedOn" not in ext
    # The detail explains it by rule and legal source, as v1's reasons do.
    for reason in v1["reasons"]:
        assert reason["rule"] in card["detail"]
        assert reason["message"] in card["detail"]
    for denied in v1["denied_categories"]:
        assert f"{denied['category']}" in card["detail"]
        assert denied["rule"] in card["detail"]
    # Nothing names the person but their subject reference.
    assert nhs not in str(card)
    assert ours["subject"] == {"system": SUBJECT, "value": v1["subject_ref"]}
    entry = logged_entry(ledger, ours["ledger"]["index"])
    assert entry["type"] == "decision.made"


def test_a_stranger_has_no_consent(client: FlaskClient, demo_tokens: Callable[..., str]) -> None:
    card = card_of(
        client.post(
            URL,
            json=consult_body(STRANGER, "ea-tt-leeds", "referral", ["identity"]),
            headers=bearer(demo_tokens("tt-leeds")),
        )
    )
    assert (card["summary"], card["indicator"]) == ("NO_CONSENT", "warning")
    assert card["extension"]["obligations"] == []
    assert card["extension"][OURS]["denied_categories"][0]["reason"] == "no_consent"


def test_the_cards_source_is_the_configured_public_url(
    client: FlaskClient, ledger: Ledger, demo_tokens: Callable[..., str]
) -> None:
    """Not the Host header, which behind a proxy names an address the client cannot reach."""
    public = "https://consent-ledger.nhs.example"
    ledger.settings = dataclasses.replace(ledger.settings, public_url=public)
    card = card_of(
        client.post(
            URL,
            json=consult_body(STRANGER, "ea-tt-leeds", "referral", ["identity"]),
            headers=bearer(demo_tokens("tt-leeds")),
        )
    )
    assert card["source"]["url"] == public + "/"


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_consult_is_one_logged_decision(
    client: FlaskClient, ledger: Ledger, policy: Policy, make_token: Callable[..., str]
) -> None:
    token = bearer(make_token("tt-leeds", "case_system"))
    nhs = valid_nhs_numbers(1, start=943_476_700)[0]
    consent = referral_consent(client, token, nhs, ["identity", "work_needs"])
    before = logged_entry(ledger, consent["ledger"]["index"])
    assert before["type"] == "consent.granted"
    response = client.post(
        URL, json=consult_body(nhs, "ea-tt-leeds", ["referral"], ["identity"]), headers=token
    )
    card = card_of(response)
    assert card["summary"] == "CONSENT_PERMIT"
    ours = card["extension"][OURS]
    index = ours["ledger"]["index"]
    assert index == consent["ledger"]["index"] + 1
    entry = logged_entry(ledger, index)
    assert entry["type"] == "decision.made"
    assert entry["data"]["decision_id"] == ours["id"]
    assert card["extension"]["basedOn"] == "Consent/" + consent["id"].replace("_", "-")

    # Named by the subject reference v1 returns, the person gets the same answer, logged again.
    by_ref = consult_body(nhs, "ea-tt-leeds", "referral", ["identity"])
    by_ref["context"]["patientId"] = [{"system": SUBJECT, "value": ours["subject_ref"]}]
    again = card_of(client.post(URL, json=by_ref, headers=token))
    assert again["extension"][OURS]["ledger"]["index"] == index + 1
    assert {k: again["extension"][OURS][k] for k in SAME} == {k: ours[k] for k in SAME}

    # Every identifier LEAP knows may come: others' are ignored, one number written two ways
    # is one person.
    spaced = f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"
    by_all = consult_body(nhs, "ea-tt-leeds", "referral", ["identity"])
    by_all["context"]["patientId"] = [
        SSN,
        {"system": NHS_SYSTEM, "value": spaced},
        *by_all["context"]["patientId"],
    ]
    thrice = card_of(client.post(URL, json=by_all, headers=token))
    assert thrice["extension"][OURS]["subject_ref"] == ours["subject_ref"]

    # A v3 PurposeOfUse code that names one of our purposes is taken for it.
    evaluation = consult_body(nhs, "eval-northern-uni", "HOUTCOMS", ["outcome_measures"])
    asked = card_of(client.post(URL, json=evaluation, headers=token))["extension"][OURS]
    assert asked["purpose"] == "evaluation"


def test_an_erased_person_is_a_stranger_to_a_consult(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    token = bearer(make_token("tt-leeds", "case_system"))
    nhs = valid_nhs_numbers(1, start=943_476_800)[0]
    first = card_of(
        client.post(
            URL, json=consult_body(nhs, "ea-tt-leeds", "referral", ["identity"]), headers=token
        )
    )
    ref = first["extension"][OURS]["subject_ref"]
    by_ref = consult_body(nhs, "ea-tt-leeds", "referral", ["identity"])
    by_ref["context"]["patientId"] = [{"system": SUBJECT, "value": ref}]
    assert client.post(URL, json=by_ref, headers=token).status_code == 200
    erased = client.post(
        "/v1/subjects/erasures",
        json={"subject": {"nhs_number": nhs}, "reason": "recorded_in_error", "reference": "c-17"},
        headers=bearer(make_token("tt-leeds", "auditor")),
    )
    assert erased.status_code == 201, erased.get_json()
    after = client.post(URL, json=by_ref, headers=token)
    stranger = copy.deepcopy(by_ref)
    stranger["context"]["patientId"] = [NOBODY]
    never = client.post(URL, json=stranger, headers=token)
    assert after.status_code == never.status_code == 422
    assert after.get_json()["errors"] == never.get_json()["errors"]


def test_a_retried_consult_gets_its_first_card(
    client: FlaskClient, ledger: Ledger, demo_tokens: Callable[..., str]
) -> None:
    headers = {**bearer(demo_tokens("tt-leeds")), "Idempotency-Key": "consult-1"}
    body = consult_body(demo.PEOPLE["therapy"], "ea-tt-leeds", "referral", ["identity"])
    first = client.post(URL, json=body, headers=headers)
    with ledger.db.read() as session:
        size = ledger.log_store.size(session)
    again = client.post(URL, json=body, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert card_of(again) == card_of(first)
    with ledger.db.read() as session:
        assert ledger.log_store.size(session) == size
    changed = consult_body(demo.PEOPLE["therapy"], "ea-tt-leeds", "referral", ["work_needs"])
    reused = client.post(URL, json=changed, headers=headers)
    assert reused.status_code == 422


def test_discovery_lists_the_service(client: FlaskClient, policy: Policy) -> None:
    response = client.get("/cds-services")
    assert response.status_code == 200
    (service,) = check("discovery", response.get_json())["services"]
    assert service["id"] == service["hook"] == "patient-consent-consult"
    assert "prefetch" not in service  # we need none of the client's FHIR data
    usage = service["usageRequirements"]
    assert "Authorization: Bearer" in usage
    assert "case_system" in usage
    assert "ig_lead" in usage


def _without(path: str) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def edit(body: dict[str, Any]) -> None:
        at = body
        for p in parents:
            at = at[p]
        del at[last]

    return edit


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def edit(body: dict[str, Any]) -> None:
        at = body
        for p in parents:
            at = at[p]
        at[last] = value

    return edit


SSN = {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "111111111"}
NOBODY = {"system": SUBJECT, "value": "sub_" + "a" * 32}  # well formed, but nobody's
BAD_NHS = "9434765918"  # the check digit is wrong

# (what is wrong, the field the refusal names, a word its message holds)
BAD = {
    "another hook": (_set("hook", "patient-view"), "hook", "patient-consent-consult"),
    "no hookInstance": (_without("hookInstance"), "hookInstance", "required"),
    "no context": (_without("context"), "context", "required"),
    "an unknown context member": (_set("context.foo", 1), "context.foo", "Unknown"),
    "no patientId": (_without("context.patientId"), "context.patientId", "required"),
    "patientId not a list": (_set("context.patientId", STRANGER), "context.patientId", "list"),
    "a bad NHS number": (
        _set("context.patientId", [{"system": NHS_SYSTEM, "value": BAD_NHS}]),
        "context.patientId.0.value",
        "check digit",
    ),
    "only identifiers of other systems": (
        _set("context.patientId", [SSN]), "context.patientId", NHS_SYSTEM,
    ),
    "two people": (
        _set(
            "context.patientId",
            [SSN, {"system": NHS_SYSTEM, "value": STRANGER}, NOBODY],
        ),
        "context.patientId.2.value",
        "one",
    ),
    "not a subject reference": (
        _set("context.patientId", [{"system": SUBJECT, "value": "someone"}]),
        "context.patientId.0.value",
        "subject reference",
    ),
    "a subject reference nobody has": (
        _set("context.patientId", [NOBODY]),
        "context.patientId.0.value",
        "knows",
    ),
    "no actor": (_without("context.actor"), "context.actor", "required"),
    "an actor of another system only": (
        _set("context.actor", [{"system": "urn:ietf:rfc:3986", "value": "2.16.840.1"}]),
        "context.actor",
        ORG,
    ),
    "two recipients": (
        _set("context.actor", [{"system": ORG, "value": o} for o in ("ea-tt-leeds", "tt-leeds")]),
        "context.actor.1.value",
        "one recipient",
    ),
    "an unregistered recipient": (
        _set("context.actor", [{"system": ORG, "value": "nobody-here"}]),
        "context.actor.0.value",
        "registered",
    ),
    "no purposeOfUse": (_without("context.purposeOfUse"), "context.purposeOfUse", "required"),
    "an ambiguous v3 purpose": (_set("context.purposeOfUse", "COC"), "context.purposeOfUse", "COC"),
    "an unknown purpose": (_set("context.purposeOfUse", ["TREAT"]), "context.purposeOfUse", "TREA"),
    "an NHS number as a purpose": (
        _set("context.purposeOfUse", [STRANGER]), "context.purposeOfUse", "[redacted]",
    ),
    "two purposes": (
        _set("context.purposeOfUse", ["referral", "evaluation"]), "context.purposeOfUse", "one",
    ),
    "no class": (_without("context.class"), "context.class", "required"),
    "a class of another system": (
        _set("context.class", [{"system": "http://hl7.org/fhir/resource-types", "code": "Flag"}]),
        "context.class.0.system",
        CATEGORY,
    ),
    "an unknown category": (
        _set("context.class", [{"system": CATEGORY, "code": "genome"}]),
        "context.class.0.code",
        "genome",
    ),
    "a category twice": (
        _set("context.class", [{"system": CATEGORY, "code": "identity"}] * 2),
        "context.class.1",
        "twice",
    ),
    "a consent category we do not hold": (
        _set("context.category", [{"system": SCOPE, "code": "research"}]),
        "context.category",
        "patient-privacy",
    ),
    "content to redact": (
        _set("context.content", {"resourceType": "Bundle"}), "context.content", "content",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("edit", "field", "says"), BAD.values(), ids=list(BAD))
def test_a_bad_request_names_the_field(
    client: FlaskClient,
    ledger: Ledger,
    policy: Policy,
    make_token: Callable[..., str],
    edit: Callable[[dict[str, Any]], None],
    field: str,
    says: str,
) -> None:
    body = copy.deepcopy(consult_body(STRANGER, "ea-tt-leeds", "referral", ["identity"]))
    edit(body)
    token = bearer(make_token("tt-leeds", "case_system"))
    with ledger.db.read() as session:
        before = ledger.log_store.size(session)
    response = client.post(URL, json=body, headers=token)
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"] == "/problems/invalid-request"
    named = {e["field"]: e["message"] for e in problem["errors"]}
    assert field in named, named
    assert says in named[field]
    assert BAD_NHS not in response.text
    assert STRANGER not in response.text
    with ledger.db.read() as session:
        assert ledger.log_store.size(session) == before  # nothing recorded


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        ("not json", 400, "invalid-request"),
        ("[]", 422, "invalid-request"),
        (
            '{"hook": "patient-consent-consult", "hookInstance": 7, "context": []}',
            422,
            "invalid-request",
        ),
    ],
    ids=["malformed", "a list", "wrong types"],
)
def test_a_malformed_body_is_a_problem(
    client: FlaskClient,
    policy: Policy,
    make_token: Callable[..., str],
    body: str,
    status: int,
    slug: str,
) -> None:
    response = client.post(
        URL,
        data=body,
        content_type="application/json",
        headers=bearer(make_token("tt-leeds", "case_system")),
    )
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"] == f"/problems/{slug}"


@pytest.mark.parametrize(
    ("role", "status", "slug"),
    [
        (None, 401, "unauthenticated"),
        ("auditor", 403, "forbidden"),
        ("patient_portal", 403, "forbidden"),
    ],
)
def test_only_case_systems_and_ig_leads_consult(
    client: FlaskClient,
    policy: Policy,
    make_token: Callable[..., str],
    role: str | None,
    status: int,
    slug: str,
) -> None:
    headers = bearer(make_token("tt-leeds", role)) if role else {}
    body = consult_body(STRANGER, "ea-tt-leeds", "referral", ["identity"])
    response = client.post(URL, json=body, headers=headers)
    assert response.status_code == status
    assert response.get_json()["type"] == f"/problems/{slug}"


def test_consults_count_against_the_decision_rate_limit(
    app: Flask,
    instance_path: Path,
    database_url: str,
    policy: Policy,
    make_token: Callable[..., str],
) -> None:
    """The same instance, served with a limit of two decisions a minute: a v1 decision and a
    consult take both."""
    small = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(instance_path),
            "DATABASE_URL": database_url,
            "DECISION_RATE_LIMIT": "2 per minute",
        }
    )
    client = small.test_client()
    token = bearer(make_token("tt-leeds", "case_system"))
    asked = {"subject": {"nhs_number": STRANGER}, "from": "tt-leeds", "to": "ea-tt-leeds",
             "purpose": "referral", "data_categories": ["identity"]}  # fmt: skip
    assert client.post("/v1/decisions", json=asked, headers=token).status_code == 200
    body = consult_body(STRANGER, "ea-tt-leeds", "referral", ["identity"])
    assert client.post(URL, json=body, headers=token).status_code == 200
    third = client.post(URL, json=body, headers=token)
    assert third.status_code == 429
    assert third.get_json()["type"] == "/problems/rate-limited"
    get_ledger(small).db.dispose()


def test_a_retried_partial_permit_is_not_replayed_after_its_consent_is_withdrawn(
    client: FlaskClient, ledger: Ledger, policy: Policy, make_token: Callable[..., str]
) -> None:
    """A CONSENT_PERMIT that redacted a category (v1 says deny, G7) rests on a consent just as
    a full permit does: once that consent is withdrawn, a retry must not hand the old
    CONSENT_PERMIT back (a full permit's retry gets 409 consent-withdrawn)."""
    token = bearer(make_token("tt-leeds", "case_system"))
    nhs = valid_nhs_numbers(1, start=943_476_900)[0]
    given = referral_consent(client, token, nhs, ["identity"])
    headers = {**token, "Idempotency-Key": "partial-1"}
    body = consult_body(nhs, "ea-tt-leeds", "referral", ["identity", "work_needs"])
    first = card_of(client.post(URL, json=body, headers=headers))
    assert first["summary"] == "CONSENT_PERMIT"
    assert first["extension"]["obligations"][0]["id"]["code"] == "REDACT"

    withdrawn = client.post(f"/v1/consents/{given['id']}/withdraw", headers=token)
    assert withdrawn.status_code == 200, withdrawn.get_json()
    fresh = card_of(client.post(URL, json=body, headers=token))
    assert fresh["summary"] == "CONSENT_DENY"

    replay = client.post(URL, json=body, headers=headers)
    answer: Any = replay.get_json()
    assert replay.status_code == 409 or answer["cards"][0]["summary"] != "CONSENT_PERMIT", (
        replay.headers.get("Idempotent-Replayed"),
        answer,
    )


def test_an_objection_in_force_is_a_deny_whatever_consent_was_withdrawn_before(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    """Two people in the same state now: a referral consent overridden by a later direct-care
    objection (G3). One of them also has an older, withdrawn consent for the same share. The
    card must not depend on that history: both are CONSENT_DENY (the objection), not
    NO_CONSENT ("a usable consent would change the answer", which LEAP clients may treat as
    'apply your default policy')."""
    token = bearer(make_token("tt-leeds", "case_system"))
    with_history, without = valid_nhs_numbers(2, start=943_477_100)

    def consent(nhs: str) -> str:
        return str(referral_consent(client, token, nhs, ["identity"])["id"])

    old = consent(with_history)
    assert client.post(f"/v1/consents/{old}/withdraw", headers=token).status_code == 200
    for nhs in (with_history, without):
        consent(nhs)
        objected = client.post(
            "/v1/objections",
            json={"subject": {"nhs_number": nhs}, "scope": "direct_care"},
            headers=token,
        )
        assert objected.status_code == 201, objected.get_json()

    words = {
        nhs: card_of(
            client.post(
                URL,
                json=consult_body(nhs, "ea-tt-leeds", "referral", ["identity"]),
                headers=token,
            )
        )["summary"]
        for nhs in (with_history, without)
    }
    assert words == {with_history: "CONSENT_DENY", without: "CONSENT_DENY"}
