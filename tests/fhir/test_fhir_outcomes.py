"""Every HTTP error status the service answers maps to an R4 IssueType code (a required
binding: the schema refuses any other), the one a FHIR client acts on."""

from __future__ import annotations

import pytest

from app.errors import FieldError, error_body
from tests.support.fhir_check import check_resource

ISSUE_CODE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    408: "timeout",
    409: "conflict",
    413: "too-long",
    414: "too-long",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    431: "too-long",
    500: "exception",
    501: "not-supported",
    503: "transient",
}


@pytest.mark.parametrize(("status", "code"), ISSUE_CODE.items())
def test_each_status_is_its_issue_type(status: int, code: str) -> None:
    body, media_type = error_body("/fhir/r4/Consent", status, "invalid-request", "why")
    assert media_type == "application/fhir+json"
    outcome = check_resource(body)
    assert [(i["code"], i["diagnostics"]) for i in outcome["issue"]] == [(code, "why")]


def test_each_field_at_fault_is_an_issue_naming_it_and_other_paths_keep_problem_json() -> None:
    errors = [FieldError("_count", "must be a whole number", "query"), FieldError("a.b", "no")]
    body, _ = error_body("/fhir/r4/AuditEvent", 400, "invalid-argument", "x", errors=errors)
    assert [i["diagnostics"] for i in check_resource(body)["issue"]] == [
        "parameter '_count': must be a whole number",
        "a.b: no",
    ]
    assert [c["code"] for c in body["issue"][0]["details"]["coding"]] == ["invalid-argument"]
    problem, media_type = error_body("/v1/consents", 400, "invalid-argument", "x", errors=errors)
    assert media_type == "application/problem+json"
    assert problem["type"] == "/problems/invalid-argument"
