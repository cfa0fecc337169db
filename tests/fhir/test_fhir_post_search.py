"""Searching with POST ``_search`` and a form body (R4 http.html, search): the NHS number stays
out of the URL, and so out of proxies' logs and browser history. The answer is the GET's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app, get_ledger
from app.policy import Policy
from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers
from tests.support.fhir_check import check_resource

(PERSON,) = valid_nhs_numbers(1, start=943_476_800)
PATIENT = f"https://fhir.nhs.uk/Id/nhs-number|{PERSON}"
Tokens = dict[str, str]


@pytest.fixture
def tokens(policy: Policy, make_token: Callable[..., str]) -> Tokens:
    return {"tt": make_token("tt-leeds", "case_system"), "auditor": make_token()}


def share(client: FlaskClient, token: str) -> None:
    """A consent, a decision under it and a disclosure: something for both searches to find."""
    subject = {"nhs_number": PERSON}
    body = {"purpose": "referral", "data_categories": ["identity"]}
    consent = {**body, "subject": subject, "recipients": ["ea-tt-leeds"], "form": "verbal"}
    assert client.post("/v1/consents", json=consent, headers=bearer(token)).status_code == 201
    decision = client.post(
        "/v1/decisions",
        json={**body, "subject": subject, "from": "tt-leeds", "to": "ea-tt-leeds"},
        headers=bearer(token),
    ).get_json()
    disclosure = {"decision_id": decision["id"], "data_categories": ["identity"]}
    assert client.post("/v1/disclosures", json=disclosure, headers=bearer(token)).status_code == 201


@pytest.mark.parametrize("backend", BOTH, indirect=True)
@pytest.mark.parametrize("resource", ["Consent", "AuditEvent"])
def test_a_post_search_answers_as_the_get_does(
    client: FlaskClient, tokens: Tokens, resource: str
) -> None:
    share(client, tokens["tt"])
    got = client.get(
        f"/fhir/r4/{resource}",
        query_string={"patient:identifier": PATIENT},
        headers=bearer(tokens["auditor"]),
    )
    posted = client.post(
        f"/fhir/r4/{resource}/_search",
        data={"patient:identifier": PATIENT},
        headers=bearer(tokens["auditor"]),
    )
    assert posted.status_code == 200, posted.get_data(as_text=True)
    assert posted.mimetype == "application/fhir+json"
    bundle = check_resource(posted.get_json())
    assert bundle["total"] == 1
    assert bundle == got.get_json()
    assert PERSON not in posted.get_data(as_text=True)


def outcome_of(resp: Any, status: int, code: str) -> str:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/fhir+json"
    (issue,) = check_resource(resp.get_json())["issue"]
    assert issue["code"] == code
    return str(issue["diagnostics"])


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "says"),
    [
        # the parameters belong in the form body, not the URL
        (
            {"query_string": {"patient:identifier": PATIENT}, "data": {}},
            400,
            "invalid",
            "parameter 'patient:identifier': belongs in the form body",
        ),
        ({"data": {"patient": "Patient/1"}}, 400, "invalid", "parameter 'patient'"),
        ({"data": {}}, 400, "invalid", "parameter 'patient:identifier': is required"),
        ({"json": {"patient:identifier": PATIENT}}, 415, "not-supported", "x-www-form-urlencoded"),
    ],
)
def test_a_bad_post_search_names_what_is_wrong(
    client: FlaskClient,
    tokens: Tokens,
    kwargs: dict[str, Any],
    status: int,
    code: str,
    says: str,
) -> None:
    resp = client.post("/fhir/r4/Consent/_search", headers=bearer(tokens["auditor"]), **kwargs)
    assert says in outcome_of(resp, status, code)
    assert PERSON not in resp.get_data(as_text=True)


@pytest.fixture
def limited(app: Flask, instance_path: Path, database_url: str) -> Iterator[FlaskClient]:
    """The same instance and database, served with a small write limit."""
    small = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(instance_path),
            "DATABASE_URL": database_url,
            "WRITE_RATE_LIMIT": "2/minute",
        }
    )
    yield small.test_client()
    get_ledger(small).db.dispose()


def test_a_post_search_counts_against_the_clients_rate_limit_as_every_post_does(
    limited: FlaskClient, tokens: Tokens
) -> None:
    def search() -> Any:
        return limited.post(
            "/fhir/r4/Consent/_search",
            data={"patient:identifier": PATIENT},
            headers=bearer(tokens["auditor"]),
        )

    assert [search().status_code for _ in range(2)] == [200, 200]
    refused = search()
    assert "limit" in outcome_of(refused, 429, "throttled")
    assert int(refused.headers["Retry-After"]) >= 1
