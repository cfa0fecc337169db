"""How a client names a person, and what naming one may reveal (issue 12, items 1 and 3).

A case system may name a person by a local identifier only in its own organisation's system
(else it could enumerate another organisation's hospital numbers). And a request about a person
the service knows runs the same statements as one about a person it has never seen, so neither
its answer nor its timing tells an organisation with no record of the person whether the
service knows them (bench/bench_timing.py measures the timing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.policy import Policy
from app.services.container import Ledger
from tests.helpers import bearer, recorded_statements
from tests.nhs import valid_nhs_numbers

CALLER = "tt-leeds"
OTHER = "cmht-leeds-west"


def _subject(system: str) -> dict[str, Any]:
    return {"local_id": {"system": system, "value": "RR8-0001234"}}


# endpoint -> (method, path, request carrying the subject, the field named when refused)
NAMING = {
    "record consent": (
        "POST",
        "/v1/consents",
        lambda subject: {
            "json": {
                "subject": subject,
                "purpose": "referral",
                "recipients": ["ea-tt-leeds"],
                "data_categories": ["identity"],
                "form": "verbal",
            }
        },
        "subject.local_id.system",
    ),
    "record objection": (
        "POST",
        "/v1/objections",
        lambda subject: {"json": {"subject": subject, "scope": "direct_care"}},
        "subject.local_id.system",
    ),
    "decide": (
        "POST",
        "/v1/decisions",
        lambda subject: {
            "json": {
                "subject": subject,
                "from": CALLER,
                "to": "ea-tt-leeds",
                "purpose": "referral",
                "data_categories": ["identity"],
            }
        },
        "subject.local_id.system",
    ),
    "read consents": (
        "GET",
        "/v1/consents",
        lambda subject: {
            "query_string": {
                "local_system": subject["local_id"]["system"],
                "local_value": subject["local_id"]["value"],
            }
        },
        "local_system",
    ),
    "issue link": (
        "POST",
        "/v1/subjects/access-links",
        lambda subject: {"json": {"subject": subject}},
        "subject.local_id.system",
    ),
}


@pytest.mark.parametrize("endpoint", list(NAMING))
def test_a_case_system_names_local_ids_only_in_its_own_system(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str], endpoint: str
) -> None:
    method, path, request, field = NAMING[endpoint]
    headers = bearer(make_token(CALLER, "case_system"))
    refused = client.open(path, method=method, headers=headers, **request(_subject(OTHER)))
    assert refused.status_code == 422, refused.text
    body = refused.get_json()
    assert body["type"] == "/problems/invalid-request"
    assert [e["field"] for e in body["errors"]] == [field]
    assert "own organisation" in body["errors"][0]["message"]
    assert "RR8-0001234" not in refused.text
    # Its own system is accepted (the link needs a relationship first, so record a consent).
    if endpoint == "issue link":
        consent = NAMING["record consent"][2](_subject(CALLER))
        assert client.post("/v1/consents", headers=headers, **consent).status_code == 201
    own = client.open(path, method=method, headers=headers, **request(_subject(CALLER)))
    assert own.status_code in (200, 201), own.text


@pytest.mark.parametrize(
    ("role", "status"),
    [("case_system", 422), ("ig_lead", 422), ("patient_portal", 200), ("auditor", 200)],
)
def test_only_whole_record_roles_read_by_another_organisations_local_id(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str], role: str, status: int
) -> None:
    """A portal authenticated the person and an auditor sees all; a client that sees only its
    organisation's part of a record must not walk another organisation's numbers."""
    resp = client.get(
        "/v1/consents",
        query_string={"local_system": OTHER, "local_value": "RR8-0001234"},
        headers=bearer(make_token(CALLER, role)),
    )
    assert resp.status_code == status


# endpoint -> (method, path, request about the person)
PROBES = {
    "GET /v1/consents": ("GET", "/v1/consents", lambda nhs: {"query_string": {"nhs_number": nhs}}),
    "GET /v1/disclosures": (
        "GET",
        "/v1/disclosures",
        lambda nhs: {"query_string": {"nhs_number": nhs}},
    ),
    "POST /v1/subjects/access-links": (
        "POST",
        "/v1/subjects/access-links",
        lambda nhs: {"json": {"subject": {"nhs_number": nhs}}},
    ),
}


@pytest.mark.parametrize("endpoint", list(PROBES))
def test_a_known_person_and_a_stranger_run_the_same_statements(
    client: FlaskClient,
    policy: Policy,
    ledger: Ledger,
    make_token: Callable[..., str],
    endpoint: str,
) -> None:
    """An organisation with no record of the person gets the same answer, by the same SQL, for
    a person the service knows (another organisation's consent and share) as for
    one it has never seen: the timing side channel of issue 12 came from the unknown path
    stopping early."""
    known, stranger = valid_nhs_numbers(2, start=943_479_000)
    owner = bearer(make_token(CALLER, "case_system"))
    consent = {
        "subject": {"nhs_number": known},
        "purpose": "referral",
        "recipients": ["ea-tt-leeds"],
        "data_categories": ["identity"],
        "form": "verbal",
    }
    assert client.post("/v1/consents", headers=owner, json=consent).status_code == 201
    decided = client.post(
        "/v1/decisions",
        headers=owner,
        json={
            "subject": {"nhs_number": known},
            "from": CALLER,
            "to": "ea-tt-leeds",
            "purpose": "referral",
            "data_categories": ["identity"],
        },
    ).get_json()
    shared = client.post(
        "/v1/disclosures",
        headers=owner,
        json={"decision_id": decided["id"], "data_categories": ["identity"]},
    )
    assert shared.status_code == 201
    # (No objection: every client is shown a person's objections, G3, so one is an answer
    # by design, not a side channel.)

    method, path, request = PROBES[endpoint]
    role = "ig_lead" if endpoint == "GET /v1/disclosures" else "case_system"
    prober = bearer(make_token(OTHER, role))
    answers, statements = {}, {}
    for _ in range(2):  # the first round warms caches; the second is compared
        for who, nhs in (("known", known), ("stranger", stranger)):
            with recorded_statements(ledger) as seen:
                resp = client.open(path, method=method, headers=prober, **request(nhs))
            answers[who] = (resp.status_code, resp.get_json())
            statements[who] = seen
    assert answers["known"] == answers["stranger"]
    assert statements["known"] == statements["stranger"]
