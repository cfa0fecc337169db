"""Who may record, read, withdraw and confirm consents and objections: a role-by-organisation
matrix, the read visibility rules, and that every endpoint needs a token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.helpers import bearer
from tests.nhs import valid_nhs_numbers

# Confirmation (G6) reads the policy in force, as a deployment's would.
pytestmark = pytest.mark.usefixtures("policy")

PERSON, OTHER_PERSON = valid_nhs_numbers(2)
ROLES = ("case_system", "ig_lead", "patient_portal", "auditor", "admin")

# How each caller's organisation stands to the consent and objection under test, both recorded
# by a DWP-funded provider (so the consent needs a health organisation's confirmation, G6).
RECORDER = "whp-leeds"  # employment_dwp
ORGANISATIONS = {
    "recorder": RECORDER,
    "recipient": "ea-tt-leeds",  # employment_nhs, named as the consent's recipient
    "unrelated": "asc-leeds",  # social_care, not named
    "health": "cmht-leeds-west",  # health, not named: may not confirm (G6)
    "named_health": "tt-leeds",  # health, named as a recipient: may confirm (G6)
}
RELATIONS = tuple(ORGANISATIONS)

SEES = "200 listed"  # the read succeeds and the consent is in it
BLIND = "200 not listed"  # the read succeeds and the consent is not in it
Outcome = int | str

# role -> action -> outcome for a caller from the
# (recorder, recipient, unrelated, health, named_health) organisation
MATRIX: dict[str, dict[str, tuple[Outcome, ...]]] = {
    "case_system": {
        "read": (SEES, SEES, BLIND, BLIND, SEES),
        "record": (201, 201, 201, 201, 201),
        "withdraw": (200, 403, 403, 403, 403),
        "confirm": (403, 403, 403, 403, 200),
        "object": (201, 201, 201, 201, 201),
        "withdraw_objection": (200, 403, 403, 403, 403),
    },
    "ig_lead": {
        "read": (SEES, SEES, BLIND, BLIND, SEES),
        "record": (403, 403, 403, 403, 403),
        "withdraw": (200, 403, 403, 403, 403),
        "confirm": (403, 403, 403, 403, 200),
        "object": (403, 403, 403, 403, 403),
        "withdraw_objection": (403, 403, 403, 403, 403),
    },
    "patient_portal": {
        "read": (SEES, SEES, SEES, SEES, SEES),
        "record": (403, 403, 403, 403, 403),
        "withdraw": (200, 200, 200, 200, 200),
        "confirm": (403, 403, 403, 403, 403),
        "object": (201, 201, 201, 201, 201),
        "withdraw_objection": (200, 200, 200, 200, 200),
    },
    "auditor": {
        "read": (SEES, SEES, SEES, SEES, SEES),
        "record": (403, 403, 403, 403, 403),
        "withdraw": (403, 403, 403, 403, 403),
        "confirm": (403, 403, 403, 403, 403),
        "object": (403, 403, 403, 403, 403),
        "withdraw_objection": (403, 403, 403, 403, 403),
    },
    "admin": {
        "read": (403, 403, 403, 403, 403),
        "record": (403, 403, 403, 403, 403),
        "withdraw": (403, 403, 403, 403, 403),
        "confirm": (403, 403, 403, 403, 403),
        "object": (403, 403, 403, 403, 403),
        "withdraw_objection": (403, 403, 403, 403, 403),
    },
}


def consent_body(recipients: list[str], nhs_number: str = PERSON) -> dict[str, Any]:
    return {
        "subject": {"nhs_number": nhs_number},
        "purpose": "referral",
        "recipients": recipients,
        "data_categories": ["identity", "work_needs"],
        "form": "verbal",
    }


def log_size(client: FlaskClient) -> int:
    size = client.get("/healthz").get_json()["log_size"]
    assert isinstance(size, int)
    return size


def post(client: FlaskClient, path: str, auth: dict[str, str], body: Any = None) -> Any:
    resp = client.post(path, headers=auth, **({} if body is None else {"json": body}))
    assert resp.status_code < 300, resp.text
    return resp.get_json()


@pytest.mark.parametrize(
    ("role", "relation"), [(role, relation) for role in ROLES for relation in RELATIONS]
)
def test_each_role_and_organisation_may_do_only_what_it_should(
    client: FlaskClient, make_token: Callable[..., str], role: str, relation: str
) -> None:
    recorder = bearer(make_token(RECORDER, "case_system"))
    auditor = bearer(make_token("tt-leeds", "auditor"))
    named = ["ea-tt-leeds", "tt-leeds"]
    to_withdraw = post(client, "/v1/consents", recorder, consent_body(named))["id"]
    to_confirm = post(client, "/v1/consents", recorder, consent_body(named))["id"]
    objection = post(
        client,
        "/v1/objections",
        recorder,
        {"subject": {"nhs_number": PERSON}, "scope": "direct_care"},
    )["id"]
    org = ORGANISATIONS[relation]
    caller = bearer(make_token(org, role))

    def read() -> Outcome:
        resp = client.get("/v1/consents", query_string={"nhs_number": PERSON}, headers=caller)
        if resp.status_code != 200:
            return resp.status_code
        body = resp.get_json()
        # objections are listed for every reader
        assert [o["id"] for o in body["objections"]] == [objection]
        listed = {c["id"] for c in body["consents"]}
        assert (to_withdraw in listed) == (to_confirm in listed)
        return SEES if to_withdraw in listed else BLIND

    writes: dict[str, tuple[str, Any]] = {
        "record": ("/v1/consents", consent_body(["ea-tt-leeds"])),
        "withdraw": (f"/v1/consents/{to_withdraw}/withdraw", {"reason": "person_withdrew"}),
        "confirm": (f"/v1/consents/{to_confirm}/confirm", None),
        "object": (
            "/v1/objections",
            {"subject": {"nhs_number": PERSON}, "scope": "national_data_opt_out"},
        ),
        "withdraw_objection": (f"/v1/objections/{objection}/withdraw", None),
    }
    outcomes: dict[str, Outcome] = {"read": read()}
    for action, (path, body) in writes.items():
        before = log_size(client)
        resp = client.post(path, headers=caller, **({} if body is None else {"json": body}))
        outcomes[action] = resp.status_code
        if resp.status_code == 403:
            assert resp.mimetype == "application/problem+json"
            assert resp.get_json()["type"] == "/problems/forbidden"
            assert log_size(client) == before, action  # a refused request writes nothing
        elif resp.status_code < 300:
            assert log_size(client) == before + 1, action
            if action == "record":
                assert resp.get_json()["recorded_by"] == org  # always the caller's organisation
            elif action in ("withdraw", "confirm", "withdraw_objection"):
                assert resp.get_json()["history"][-1]["organisation"] == org

    expected = {action: row[RELATIONS.index(relation)] for action, row in MATRIX[role].items()}
    assert outcomes == expected

    # and what was refused really did not happen
    state = client.get("/v1/consents", query_string={"nhs_number": PERSON}, headers=auditor)
    consents = {c["id"]: c for c in state.get_json()["consents"]}
    objections = {o["id"]: o for o in state.get_json()["objections"]}
    assert consents[to_withdraw]["status"] == (
        "withdrawn" if outcomes["withdraw"] == 200 else "active"
    )
    assert consents[to_confirm]["confirmed_by"] == (org if outcomes["confirm"] == 200 else None)
    assert objections[objection]["status"] == (
        "withdrawn" if outcomes["withdraw_objection"] == 200 else "active"
    )
    assert len(consents) == 2 + (outcomes["record"] == 201)
    assert len(objections) == 1 + (outcomes["object"] == 201)


# -- read visibility ------------------------------------------------------------------------------

# label -> (recording organisation, recipients); all for PERSON, "withdrawn" is withdrawn
CONSENTS = {
    "jcp-to-tt": ("jcp-leeds-city", ["tt-leeds"]),
    "tt-to-ea": ("tt-leeds", ["ea-tt-leeds"]),
    "ea-to-eval-and-ips": ("ea-tt-leeds", ["eval-northern-uni", "ips-cmht-leeds"]),
    "withdrawn": ("whp-leeds", ["employer-acme-logistics"]),
}
EVERYTHING = set(CONSENTS)

VISIBILITY: list[tuple[str, str, set[str] | int]] = [
    # (caller's organisation, role, the consents it sees, or the status it gets)
    ("jcp-leeds-city", "case_system", {"jcp-to-tt"}),
    ("jcp-leeds-city", "ig_lead", {"jcp-to-tt"}),
    ("tt-leeds", "case_system", {"jcp-to-tt", "tt-to-ea"}),
    ("tt-leeds", "ig_lead", {"jcp-to-tt", "tt-to-ea"}),
    ("ea-tt-leeds", "case_system", {"tt-to-ea", "ea-to-eval-and-ips"}),
    ("eval-northern-uni", "ig_lead", {"ea-to-eval-and-ips"}),
    ("ips-cmht-leeds", "case_system", {"ea-to-eval-and-ips"}),
    ("employer-acme-logistics", "case_system", {"withdrawn"}),
    ("whp-leeds", "ig_lead", {"withdrawn"}),
    ("asc-leeds", "case_system", set()),  # recorded the objection, is named in no consent
    ("cmht-leeds-west", "ig_lead", set()),
    ("asc-leeds", "patient_portal", EVERYTHING),
    ("employer-acme-logistics", "patient_portal", EVERYTHING),
    ("cmht-leeds-west", "auditor", EVERYTHING),
    ("eval-northern-uni", "auditor", EVERYTHING),
    ("tt-leeds", "admin", 403),
    ("jcp-leeds-city", "admin", 403),
]


def test_each_caller_sees_only_the_consents_it_should(
    client: FlaskClient, make_token: Callable[..., str]
) -> None:
    ids: dict[str, str] = {}
    for label, (org, recipients) in CONSENTS.items():
        auth = bearer(make_token(org, "case_system"))
        cid = post(client, "/v1/consents", auth, consent_body(recipients))["id"]
        ids[cid] = label
        if label == "withdrawn":
            post(client, f"/v1/consents/{cid}/withdraw", auth)
    # another person's consents never appear in this person's history
    tt = bearer(make_token("tt-leeds", "case_system"))
    post(client, "/v1/consents", tt, consent_body(["jcp-leeds-city"], OTHER_PERSON))
    asc = bearer(make_token("asc-leeds", "case_system"))
    objection = post(
        client,
        "/v1/objections",
        asc,
        {"subject": {"nhs_number": PERSON}, "scope": "national_data_opt_out"},
    )["id"]

    seen: dict[str, set[str] | int] = {}
    for org, role, _ in VISIBILITY:
        resp = client.get(
            "/v1/consents",
            query_string={"nhs_number": PERSON},
            headers=bearer(make_token(org, role)),
        )
        caller = f"{role}@{org}"
        if resp.status_code != 200:
            assert resp.get_json()["type"] == "/problems/forbidden"
            seen[caller] = resp.status_code
            continue
        body = resp.get_json()
        assert [o["id"] for o in body["objections"]] == [objection], caller
        seen[caller] = {ids.get(c["id"], "ANOTHER PERSON'S CONSENT") for c in body["consents"]}
        by_label = {ids.get(c["id"]): c for c in body["consents"]}
        if "withdrawn" in by_label:
            assert by_label["withdrawn"]["status"] == "withdrawn"
            assert [e["event"] for e in by_label["withdrawn"]["history"]] == [
                "granted",
                "withdrawn",
            ]
    assert seen == {f"{role}@{org}": expected for org, role, expected in VISIBILITY}


def test_a_person_named_by_a_local_identifier_is_read_the_same_way(
    client: FlaskClient, make_token: Callable[..., str]
) -> None:
    recorder = bearer(make_token(RECORDER, "case_system"))
    local = {"local_id": {"system": RECORDER, "value": "WHP-000123"}}
    body = {**consent_body(["ea-tt-leeds"]), "subject": local}
    cid = post(client, "/v1/consents", recorder, body)["id"]
    query = {"local_system": RECORDER, "local_value": "WHP-000123"}
    # Only the recorder's own clients, portals and auditors may name a person by the
    # recorder's local identifier; another organisation, even one named in the consent, uses
    # the NHS number (else it could enumerate the recorder's numbers).
    expected = {
        (RECORDER, "case_system"): [cid],
        ("ea-tt-leeds", "case_system"): 422,
        ("asc-leeds", "ig_lead"): 422,
        ("asc-leeds", "patient_portal"): [cid],
        ("tt-leeds", "auditor"): [cid],
    }
    seen: dict[tuple[str, str], Any] = {}
    for org, role in expected:
        resp = client.get("/v1/consents", query_string=query, headers=bearer(make_token(org, role)))
        if resp.status_code == 200:
            seen[org, role] = [c["id"] for c in resp.get_json()["consents"]]
        else:
            seen[org, role] = resp.status_code
            assert resp.get_json()["errors"][0]["field"] == "local_system"
    assert seen == expected
    # the same value under another system, or an NHS number, is another person
    portal = bearer(make_token("asc-leeds", "patient_portal"))
    for other in (
        {"local_system": "jcp-leeds-city", "local_value": "WHP-000123"},
        {"nhs_number": PERSON},
    ):
        resp = client.get("/v1/consents", query_string=other, headers=portal)
        assert resp.get_json()["consents"] == []


# -- every endpoint needs a token -----------------------------------------------------------------


UNAUTHENTICATED = [
    # (method, path, body)
    ("POST", "/v1/consents", consent_body(["ea-tt-leeds"])),
    ("GET", f"/v1/consents?nhs_number={PERSON}", None),
    ("POST", "/v1/consents/{cid}/withdraw", {"reason": "person_withdrew"}),
    ("POST", "/v1/consents/{cid}/confirm", None),
    ("POST", "/v1/objections", {"subject": {"nhs_number": PERSON}, "scope": "direct_care"}),
    ("POST", "/v1/objections/{oid}/withdraw", None),
]


def test_every_consent_endpoint_needs_a_token(
    client: FlaskClient, make_token: Callable[..., str]
) -> None:
    recorder = bearer(make_token(RECORDER, "case_system"))
    ids = {
        "cid": post(client, "/v1/consents", recorder, consent_body(["ea-tt-leeds"]))["id"],
        "oid": post(
            client,
            "/v1/objections",
            recorder,
            {"subject": {"nhs_number": OTHER_PERSON}, "scope": "direct_care"},
        )["id"],
    }
    before = log_size(client)
    refused = []
    for method, path, body in UNAUTHENTICATED:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            resp = client.open(path.format(**ids), method=method, headers=headers, json=body)
            assert resp.mimetype == "application/problem+json"
            assert resp.get_json()["type"] == "/problems/unauthenticated"
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            assert PERSON not in resp.text
            refused.append((method, path, resp.status_code))
    assert refused == [(m, p, 401) for m, p, _ in UNAUTHENTICATED for _ in range(2)]
    assert log_size(client) == before
