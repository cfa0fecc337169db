"""The FHIR face's plumbing (issue 17 item 5): application/fhir+json, every error an
OperationOutcome naming what was wrong, v1's tokens and roles, and a CapabilityStatement that
lists exactly the interactions served."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.services.container import Ledger
from tests.fhir.test_fhir_write import consent_resource
from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers
from tests.support.fhir_check import check_resource

pytestmark = pytest.mark.usefixtures("policy")

FHIR_JSON = "application/fhir+json"
(PERSON,) = valid_nhs_numbers(1)
PATIENT = f"patient:identifier=https://fhir.nhs.uk/Id/nhs-number|{PERSON}"


def outcome(resp: Any, status: int, code: str) -> list[dict[str, Any]]:
    """The response is a valid OperationOutcome with this status and issue code."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == FHIR_JSON
    body = check_resource(resp.get_json(force=True))
    assert body["resourceType"] == "OperationOutcome"
    assert [i["code"] for i in body["issue"]] == [code] * len(body["issue"])
    assert all(i["severity"] == "error" and i["diagnostics"] for i in body["issue"])
    return list(body["issue"])


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_metadata_is_a_valid_capability_statement_served_as_fhir_json(
    client: FlaskClient, make_token: Any
) -> None:
    resp = client.get("/fhir/r4/metadata", headers=bearer(make_token("tt-leeds", "case_system")))
    assert resp.status_code == 200
    assert resp.mimetype == FHIR_JSON
    body = check_resource(resp.get_json(force=True))
    assert body["fhirVersion"] == "4.0.1"
    assert body["implementation"]["url"] == "http://localhost/fhir/r4"
    served = {r["type"]: {i["code"] for i in r["interaction"]} for r in body["rest"][0]["resource"]}
    assert served == {
        "Consent": {"read", "vread", "history-instance", "search-type", "create"},
        "AuditEvent": {"search-type"},
        "CodeSystem": {"read"},
    }
    (consent,) = [r for r in body["rest"][0]["resource"] if r["type"] == "Consent"]
    assert (consent["versioning"], consent["readHistory"]) == ("versioned", True)


# FHIR interaction -> the routes that serve it (a search: GET, and POST _search with a form)
ROUTES_OF = {
    ("Consent", "read"): {("GET", "/fhir/r4/Consent/<resource_id>")},
    ("Consent", "create"): {("POST", "/fhir/r4/Consent")},
    ("system", "transaction"): {("POST", "/fhir/r4")},
    ("Consent", "vread"): {("GET", "/fhir/r4/Consent/<resource_id>/_history/<version_id>")},
    ("Consent", "history-instance"): {("GET", "/fhir/r4/Consent/<resource_id>/_history")},
    ("Consent", "search-type"): {
        ("GET", "/fhir/r4/Consent"),
        ("POST", "/fhir/r4/Consent/_search"),
    },
    ("AuditEvent", "search-type"): {
        ("GET", "/fhir/r4/AuditEvent"),
        ("POST", "/fhir/r4/AuditEvent/_search"),
    },
    ("CodeSystem", "read"): {("GET", "/fhir/r4/CodeSystem/<resource_id>")},
}


def test_the_capability_statement_lists_exactly_the_routes_served(
    app: Flask, client: FlaskClient, make_token: Any
) -> None:
    resp = client.get("/fhir/r4/metadata", headers=bearer(make_token()))
    rest = resp.get_json(force=True)["rest"][0]
    listed = {
        route
        for r in rest["resource"]
        for i in r["interaction"]
        for route in ROUTES_OF[(r["type"], i["code"])]
    } | {route for i in rest["interaction"] for route in ROUTES_OF[("system", i["code"])]}
    routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/fhir/") and rule.rule != "/fhir/r4/metadata"
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert listed == routes


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/r4/metadata",
        f"/fhir/r4/Consent?{PATIENT}",
        "/fhir/r4/Consent/cns-0f1e2d3c4b5a6978a796a5b4c3d2e1f0",
        "/fhir/r4/Consent/cns-0f1e2d3c4b5a6978a796a5b4c3d2e1f0/_history",
        f"/fhir/r4/AuditEvent?{PATIENT}",
        "/fhir/r4/CodeSystem/purpose",
    ],
)
@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_every_call_needs_a_token_and_says_so_as_an_operation_outcome(
    client: FlaskClient, path: str, token: str | None
) -> None:
    resp = client.get(path, headers=bearer(token) if token else {})
    outcome(resp, 401, "login")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("path", "role"),
    [
        (f"/fhir/r4/Consent?{PATIENT}", "admin"),  # as GET /v1/consents
        ("/fhir/r4/Consent/cns-0f1e2d3c4b5a6978a796a5b4c3d2e1f0", "admin"),
        (f"/fhir/r4/AuditEvent?{PATIENT}", "case_system"),  # as GET /v1/disclosures
        (f"/fhir/r4/AuditEvent?{PATIENT}", "patient_portal"),
    ],
)
def test_roles_are_v1s(client: FlaskClient, make_token: Any, path: str, role: str) -> None:
    (issue,) = outcome(
        client.get(path, headers=bearer(make_token("tt-leeds", role))), 403, "forbidden"
    )
    assert role in issue["diagnostics"]


@pytest.mark.parametrize(
    ("query", "parameter", "why"),
    [
        ("", "patient:identifier", "is required"),
        ("patient=Patient/1", "patient", "not a search parameter"),
        (f"{PATIENT}&_elements=id", "_elements", "not a search parameter"),
        (f"{PATIENT}&{PATIENT}", "patient:identifier", "more than once"),
        ("patient:identifier=9990000018", "patient:identifier", "must be https://fhir.nhs.uk"),
        (
            f"patient:identifier=https://example.org/mrn|{PERSON}",
            "patient:identifier",
            "system must be",
        ),
        (
            "patient:identifier=https://fhir.nhs.uk/Id/nhs-number|123",
            "patient:identifier",
            "not a valid NHS number",
        ),
    ],
)
@pytest.mark.parametrize("resource", ["Consent", "AuditEvent"])
def test_a_bad_search_is_a_400_naming_the_parameter_and_why(
    client: FlaskClient, make_token: Any, resource: str, query: str, parameter: str, why: str
) -> None:
    token = make_token("tt-leeds", "ig_lead")
    resp = client.get(f"/fhir/r4/{resource}?{query}", headers=bearer(token))
    (issue,) = outcome(resp, 400, "invalid")
    assert issue["diagnostics"].startswith(f"parameter {parameter!r}")
    assert why in issue["diagnostics"]
    # Never echoed, not even inside the reason.
    assert PERSON not in resp.get_data(as_text=True)


@pytest.mark.parametrize(
    ("query", "parameter"), [("_count=0", "_count"), ("_count=x", "_count"), ("page=-1", "page")]
)
def test_audit_event_paging_parameters_are_checked(
    client: FlaskClient, make_token: Any, query: str, parameter: str
) -> None:
    resp = client.get(
        f"/fhir/r4/AuditEvent?{PATIENT}&{query}", headers=bearer(make_token("tt-leeds", "auditor"))
    )
    (issue,) = outcome(resp, 400, "invalid")
    assert issue["diagnostics"].startswith(f"parameter {parameter!r}: must be a whole number")


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/fhir/r4/Patient/x", 404, "not-found"),
        ("GET", "/fhir/r4/CodeSystem/nope", 404, "not-found"),
        ("GET", "/fhir/r4/Consent/cns_0f1e2d3c4b5a6978a796a5b4c3d2e1f0", 404, "not-found"),
        ("DELETE", "/fhir/r4/metadata", 405, "not-supported"),
    ],
)
def test_other_client_errors_are_operation_outcomes(
    client: FlaskClient, make_token: Any, method: str, path: str, status: int, code: str
) -> None:
    resp = client.open(path, method=method, headers=bearer(make_token("tt-leeds", "auditor")))
    outcome(resp, status, code)


def test_an_outcomes_problem_type_is_in_the_served_code_system(
    client: FlaskClient, make_token: Any
) -> None:
    token = make_token()
    (issue,) = outcome(client.get("/fhir/r4/Consent?x=1", headers=bearer(token)), 400, "invalid")
    (coding,) = issue["details"]["coding"]
    cs = client.get("/fhir/r4/CodeSystem/problem-type", headers=bearer(token)).get_json(force=True)
    assert coding["system"] == check_resource(cs)["url"]
    assert coding["code"] in {c["code"] for c in cs["concept"]}


def test_an_nhs_number_in_a_path_is_redacted_from_the_outcome(
    client: FlaskClient, make_token: Any
) -> None:
    resp = client.get(f"/fhir/r4/CodeSystem/{PERSON}", headers=bearer(make_token()))
    outcome(resp, 404, "not-found")
    assert PERSON not in resp.get_data(as_text=True)
    assert "[redacted]" in resp.get_data(as_text=True)


@pytest.mark.parametrize(
    ("headers", "query", "status"),
    [
        ({}, "", 200),
        ({"Accept": "application/fhir+json"}, "", 200),
        ({"Accept": "application/json"}, "", 200),
        ({"Accept": "text/html,*/*;q=0.8"}, "", 200),
        # Parameters do not change the media type (R4 http.html, "FHIR version parameter").
        ({"Accept": "application/fhir+json; fhirVersion=4.0"}, "", 200),
        ({"Accept": "application/fhir+json;charset=utf-8"}, "", 200),
        ({"Accept": "application/json; charset=utf-8"}, "", 200),
        ({"Accept": ""}, "", 200),  # says nothing, so anything will do (RFC 9110 12.5.1)
        ({"Accept": "application/fhir+json; fhirVersion=3.0"}, "", 406),
        ({}, "?_format=json", 200),
        ({}, "?_format=application/fhir%2Bjson", 200),
        ({"Accept": "application/fhir+xml"}, "", 406),
        ({}, "?_format=xml", 406),
        ({}, "?_format=application/fhir%2Bxml", 406),
    ],
)
def test_json_is_the_only_format_and_anything_else_is_406(
    client: FlaskClient, make_token: Any, headers: dict[str, str], query: str, status: int
) -> None:
    resp = client.get(f"/fhir/r4/metadata{query}", headers={**bearer(make_token()), **headers})
    assert resp.mimetype == FHIR_JSON
    if status == 200:
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert check_resource(resp.get_json(force=True))["resourceType"] == "CapabilityStatement"
    else:
        (issue,) = outcome(resp, 406, "not-supported")
        assert "application/fhir+json" in issue["diagnostics"]


def test_urls_use_the_configured_public_url_not_the_host_header(
    client: FlaskClient, ledger: Ledger, make_token: Any
) -> None:
    """Behind a TLS-terminating proxy the Host header names the internal address; the
    configured public URL is what a client can follow (as the patient links use it)."""
    public = "https://consent-ledger.nhs.example"
    ledger.settings = dataclasses.replace(ledger.settings, public_url=public)
    token = make_token("tt-leeds", "case_system")
    statement = client.get("/fhir/r4/metadata", headers=bearer(token)).get_json(force=True)
    assert statement["implementation"]["url"] == public + "/fhir/r4"
    created = client.post(
        "/fhir/r4/Consent",
        json=consent_resource(PERSON),
        headers={**bearer(token), "Content-Type": FHIR_JSON},
    )
    assert created.status_code == 201, created.get_json(force=True)
    assert created.headers["Location"].startswith(public + "/fhir/r4/Consent/")
    (entry,) = client.get(f"/fhir/r4/Consent?{PATIENT}", headers=bearer(token)).get_json(
        force=True
    )["entry"]
    assert entry["fullUrl"].startswith(public + "/fhir/r4/Consent/")
