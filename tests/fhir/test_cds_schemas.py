"""The test JSON Schemas refuse what CDS Hooks 2.0.1 forbids, or the tests that lean on them
could not fail."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from app.fhir import cds
from tests.fhir.test_cds import decision
from tests.support.cds_check import problems


def _card() -> dict[str, Any]:
    return cds.response(decision(["identity"], {}), "https://ledger.example.org/")


def _request() -> dict[str, Any]:
    return {
        "hook": "patient-consent-consult",
        "hookInstance": "3f2a9c1e-7b4d-4e8a-9c0f-1d2e3f4a5b6c",
        "context": {
            "patientId": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
            "actor": [{"system": "https://consent-ledger.example/fhir/Id/organisation",
                       "value": "ea-tt-leeds"}],
        },
    }  # fmt: skip


def test_the_schemas_accept_the_good_forms() -> None:
    assert problems("response", _card()) == []
    assert problems("request", _request()) == []


@pytest.mark.parametrize(
    ("name", "path", "value"),
    [
        # CDS Hooks 2.0.1 "Source": url is a URL (jsonschema checks "uri" only with its
        # format-nongpl extra installed, as the dev dependencies do).
        ("response", ("cards", 0, "source", "url"), "not a url at all"),
        ("request", ("fhirServer",), "not a url at all"),
        # CDS Hooks 2.0.1 "HTTP Request": hookInstance is a UUID.
        ("request", ("hookInstance",), "not-a-uuid"),
    ],
    ids=["card source.url", "request fhirServer", "request hookInstance"],
)
def test_the_schemas_refuse_what_cds_hooks_forbids(
    name: str, path: tuple[Any, ...], value: Any
) -> None:
    body = copy.deepcopy(_card() if name == "response" else _request())
    at: Any = body
    for p in path[:-1]:
        at = at[p]
    at[path[-1]] = value
    if path == ("fhirServer",):
        body["fhirServer"] = value
    assert problems(name, body), f"{name} schema accepts {'.'.join(map(str, path))}={value!r}"
