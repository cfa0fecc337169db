"""Hostile input generated from the OpenAPI document: no 5xx, every answer as documented.

schemathesis reads ``/openapi.json`` from the app under test and generates requests for every
operation, both fitting the schema and deliberately not (wrong types, missing fields, odd
Unicode, huge values). Runs are bounded and derandomised, so CI repeats the same cases. Each
request carries a token whose role may call the operation, so generated bodies reach the
services rather than stopping at 403; schemathesis then checks there is no server error and
that status, content type, headers and body match what the document says.

Two phases run, as schemathesis' own runner does: the coverage phase (a fixed list of cases
per operation: each boundary and each constraint broken once, undeclared methods, missing
required headers) and the fuzzing phase (bounded: ``max_examples``, derandomised). Every
check schemathesis has but one (``EXCLUDED``, below) applies to both, response schema
conformance and ``Allow`` on 405 included.

(The cases are drawn with ``as_strategy`` and schemathesis' ``CoverageGenerator`` under plain
hypothesis and pytest, not schemathesis' pytest plugin, whose lazy fixture loader does not run
on pytest 9. ``CoverageGenerator`` is what schemathesis' runner uses for that phase; the
dependency is pinned below 5.)
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import jsonschema_rs  # schemathesis validates with it
import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.drivers import CoverageGenerator
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.generation.overrides import Override

from app import create_app
from app.policy import Policy
from tests.helpers import bearer

# Which role's token each operation is called with (other roles: the authorisation matrix).
ROLE_FOR = {
    ("GET", "/v1/disclosures"): "ig_lead",
    ("GET", "/v1/log/entries/{index}"): "auditor",
    ("POST", "/v1/decisions"): "ig_lead",
    ("POST", "/v1/subjects/access-links"): "patient_portal",
    ("POST", "/v1/subjects/access-links/{link_id}/revoke"): "patient_portal",
}


def _documented_operations() -> list[tuple[str, str, bool]]:
    """(method, path, takes input) for every operation; the document is built from the code
    alone, without a database."""
    api = create_app({"INSTANCE_PATH": tempfile.mkdtemp()}).extensions["consent_ledger_api"]
    paths = api.spec.to_dict()["paths"]
    return sorted(
        (
            method.upper(),
            path,
            bool(ops.get("parameters") or op.get("parameters") or op.get("requestBody")),
        )
        for path, ops in paths.items()
        for method, op in ops.items()
        if method != "parameters"
    )


OPERATIONS = _documented_operations()
# Every operation with valid input, and every one that takes input with invalid input too
# (an operation without parameters or body has no invalid request to generate).
CASES = [
    pytest.param(m, p, mode, id=f"{m} {p} {mode}")
    for m, p, takes_input in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if takes_input or mode is GenerationMode.POSITIVE
]
# A request can fit the schema and still be refused by a rule no JSON Schema states: a
# recipient that is not a registered organisation, an index beyond the log, a subject with
# neither identifier, an NHS number's check digit. Those 4xx answers are correct, so
# "schema-valid means accepted" is not checked; every other check is, including that
# schema-invalid requests are refused.
EXCLUDED = [schemathesis.checks.positive_data_acceptance]


def _only_the_token_was_made_invalid(case: Any) -> bool:
    """A negative case whose only invalid part is its headers, for an operation that declares
    no header of its own: the header made invalid is ``Authorization``, which the test replaces
    with a valid token, so the request it sends is a valid one (and is rightly accepted)."""
    components = case.meta.components if case.meta is not None else {}
    negative = {loc for loc, info in components.items() if info.mode is GenerationMode.NEGATIVE}
    declares_headers = any(
        p.location is ParameterLocation.HEADER for p in case.operation.iter_parameters()
    )
    return negative == {ParameterLocation.HEADER} and not declares_headers


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_no_operation_fails_or_answers_off_its_schema(
    app: Flask,
    policy: Policy,
    make_token: Callable[..., str],
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = schemathesis.openapi.from_wsgi("/openapi.json", app)[path][method]
    token = make_token("tt-leeds", ROLE_FOR.get((method, path), "case_system"))

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=25,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        if mode is GenerationMode.NEGATIVE and _only_the_token_was_made_invalid(case):
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"},
                excluded_checks=[*EXCLUDED, schemathesis.checks.negative_data_rejection],
            )
            return
        case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"}, excluded_checks=EXCLUDED
        )

    check()


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, _ in OPERATIONS])
def test_no_operation_fails_or_answers_off_its_schema_at_its_boundaries(
    app: Flask,
    policy: Policy,
    make_token: Callable[..., str],
    method: str,
    path: str,
) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operation = schema[path][method]
    token = make_token("tt-leeds", ROLE_FOR.get((method, path), "case_system"))
    cases = CoverageGenerator(
        operation=operation,
        generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        generation_config=schema.config.generation_for(operation=operation, phase="coverage"),
        auth_storage=None,
        override=Override(),
        feedback=FeedbackSources(),
    )
    ran = 0
    for case in cases:
        case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"}, excluded_checks=EXCLUDED
        )
        ran += 1
    assert ran >= 7  # at least the undeclared methods, each answered 405 with Allow


def test_every_documented_operation_is_exercised() -> None:
    documented = {(m, p) for m, p, _ in OPERATIONS}
    assert ("POST", "/v1/consents") in documented
    assert ("GET", "/v1/log/proof/consistency") in documented
    assert len(documented) >= 18


def test_decisions_are_generated_and_answered_in_both_forms(
    app: Flask, policy: Policy, make_token: Callable[..., str]
) -> None:
    """The document states one decision request or a list of them, so the runs above send
    lists too, and check each list's answer against the documented list of decisions."""
    document = app.test_client().get("/openapi.json").get_json()
    body = document["paths"]["/v1/decisions"]["post"]["requestBody"]["content"]
    forms = body["application/json"]["schema"]["oneOf"]
    assert [f.get("type") for f in forms] == [None, "array"]
    assert (forms[1]["minItems"], forms[1]["maxItems"]) == (1, 64)

    operation = schemathesis.openapi.from_wsgi("/openapi.json", app)["/v1/decisions"]["POST"]
    token = make_token("tt-leeds", ROLE_FOR[("POST", "/v1/decisions")])
    answered: list[tuple[type, int]] = []

    # The same generation as test_no_operation_fails_or_answers_off_its_schema's positive run.
    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    @settings(
        max_examples=25,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        response = case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"}, excluded_checks=EXCLUDED
        )
        answered.append((type(case.body), response.status_code))

    check()
    assert {kind for kind, _ in answered} == {dict, list}
    assert (list, 422) in answered  # a list refused whole, as documented


# Values the server refuses for a reason a JSON Schema can state: the document must say so too,
# so a client (or schemathesis) reading it knows the rule.
REFUSED = [
    ("/v1/consents", {"nhs_number": "94347 65"}, "nhs_number"),
    ("/v1/consents", {"nhs_number": "943476591x"}, "nhs_number"),
    ("/v1/consents", {"local_system": "tt-leeds", "local_value": "a\tb"}, "local_value"),
    ("/v1/disclosures", {"nhs_number": "12345678901"}, "nhs_number"),
    ("/v1/disclosures", {"since": "1899-12-31T23:59:59Z"}, "since"),
    ("/v1/disclosures", {"until": "9001-01-01T00:00:00Z"}, "until"),
]


def test_the_document_states_the_idempotency_key_the_server_accepts(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    token = make_token("tt-leeds", "case_system")
    document = client.get("/openapi.json").get_json()
    (parameter,) = document["paths"]["/v1/consents"]["post"]["parameters"]
    validator = jsonschema_rs.Draft202012Validator(parameter["schema"])
    consent = {
        "subject": {"local_id": {"system": "tt-leeds", "value": "case-1"}},
        "purpose": "referral",
        "recipients": ["ea-tt-leeds"],
        "data_categories": ["identity"],
        "form": "written",
    }
    for key in ("", "a key", "k" * 201):
        headers = {**bearer(token), "Idempotency-Key": key}
        refused = client.post("/v1/consents", json=consent, headers=headers)
        assert refused.status_code == 400, key
        assert not validator.is_valid(key), key


@pytest.mark.parametrize(("path", "query", "name"), REFUSED)
def test_the_document_states_each_constraint_the_server_enforces(
    client: FlaskClient,
    policy: Policy,
    make_token: Callable[..., str],
    path: str,
    query: dict[str, str],
    name: str,
) -> None:
    token = make_token("tt-leeds", ROLE_FOR.get(("GET", path), "case_system"))
    refused = client.get(path, query_string=query, headers=bearer(token))
    assert refused.status_code == 400
    assert name in [e["field"] for e in refused.get_json()["errors"]]

    document = client.get("/openapi.json").get_json()
    (parameter,) = [p for p in document["paths"][path]["get"]["parameters"] if p["name"] == name]
    validator = jsonschema_rs.Draft202012Validator(parameter["schema"])
    assert not validator.is_valid(query[name]), parameter["schema"]


def test_every_405_says_which_methods_the_resource_takes(client: FlaskClient) -> None:
    for method, url, allowed in [
        ("DELETE", "/healthz", "GET, HEAD, OPTIONS"),
        ("PUT", "/v1/consents", "GET, HEAD, OPTIONS, POST"),
        ("GET", "/v1/decisions", "OPTIONS, POST"),
        ("POST", "/ig/dashboard", "GET, HEAD, OPTIONS"),  # a page answers with a page
    ]:
        resp = client.open(url, method=method)
        assert resp.status_code == 405, url
        assert resp.headers["Allow"] == allowed, url
