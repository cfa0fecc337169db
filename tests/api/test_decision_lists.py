"""``POST /v1/decisions`` with a list: many shares in one request (a referral to several
recipients, a consult over several categories), each its own logged decision, all or nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.limits import MAX_BODY
from app.models import LogCheckpoint, Subject
from app.policy import Policy
from app.services.container import Ledger
from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers
from tests.support import rfc9162_verifier as rfc

NHS = valid_nhs_numbers(4, start=943_476_800)
Tokens = dict[str, str]
# The longest list one request may hold (README, "POST /v1/decisions").
MAX_LIST = 64


@pytest.fixture
def tokens(policy: Policy, make_token: Callable[..., str]) -> Tokens:
    return {
        "tt": make_token("tt-leeds", "case_system"),
        "tt_ig": make_token("tt-leeds", "ig_lead"),
        "portal": make_token("tt-leeds", "patient_portal"),
        "auditor": make_token("tt-leeds", "auditor"),
    }


def share(nhs: str = NHS[0], to: str = "ea-tt-leeds", **over: Any) -> dict[str, Any]:
    return {
        "subject": {"nhs_number": nhs},
        "from": "tt-leeds",
        "to": to,
        "purpose": "referral",
        "data_categories": ["identity", "service_status"],
        **over,
    }


def consent(client: FlaskClient, token: str, nhs: str, recipients: list[str]) -> dict[str, Any]:
    resp = client.post(
        "/v1/consents",
        headers=bearer(token),
        json={
            "subject": {"nhs_number": nhs},
            "purpose": "referral",
            "recipients": recipients,
            "data_categories": ["identity", "service_status"],
            "form": "verbal",
        },
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


def log_size(client: FlaskClient) -> int:
    return int(client.get("/healthz").get_json()["log_size"])


def count(ledger: Ledger, model: Any) -> int:
    with ledger.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_list_gives_each_share_its_own_decision_at_consecutive_indexes_under_one_checkpoint(
    client: FlaskClient, tokens: Tokens, ledger: Ledger
) -> None:
    given = consent(client, tokens["tt"], NHS[0], ["ea-tt-leeds", "ips-cmht-leeds"])
    single = client.post("/v1/decisions", json=share(), headers=bearer(tokens["tt"])).get_json()
    checkpoints = count(ledger, LogCheckpoint)
    asked = [share(), share(to="ips-cmht-leeds"), share(NHS[1])]

    resp = client.post("/v1/decisions", json=asked, headers=bearer(tokens["tt"]))

    assert resp.status_code == 200, resp.get_json()
    decisions = resp.get_json()
    assert [(d["to"], d["decision"]) for d in decisions] == [
        ("ea-tt-leeds", "permit"),
        ("ips-cmht-leeds", "permit"),
        ("ea-tt-leeds", "deny"),  # the second person has given no consent
    ]
    assert decisions[0]["consents"] == decisions[1]["consents"] == [given["id"]]
    # Each answers exactly as the single form does, with its own id and ledger entry.
    for d in decisions:
        assert d.keys() == single.keys()
    assert len({d["id"] for d in decisions}) == 3
    first = single["ledger"]["index"] + 1
    assert [d["ledger"]["index"] for d in decisions] == [first, first + 1, first + 2]
    # One transaction: one checkpoint for the three, and each entry provably in it.
    assert count(ledger, LogCheckpoint) == checkpoints + 1
    cp = rfc.verify_checkpoint(
        client.get("/v1/log/checkpoint").text, client.get("/v1/log/key").text.strip()
    )
    assert cp.size == first + 3
    auditor = bearer(tokens["auditor"])
    for d in decisions:
        index = d["ledger"]["index"]
        proof = client.get(
            f"/v1/log/proof/inclusion?index={index}&size={cp.size}", headers=auditor
        ).get_json()
        rfc.verify_inclusion(
            bytes.fromhex(d["ledger"]["leaf_hash"]),
            index,
            cp.size,
            [bytes.fromhex(h) for h in proof["hashes"]],
            cp.root_hash,
        )
        entry = client.get(f"/v1/log/entries/{index}", headers=auditor).get_json()
        assert entry["entry"]["type"] == "decision.made"
        assert entry["entry"]["data"]["decision_id"] == d["id"]
    # Each is a decision a disclosure can be recorded under, like any other.
    shared = client.post(
        "/v1/disclosures",
        headers=bearer(tokens["tt"]),
        json={"decision_id": decisions[1]["id"], "data_categories": ["identity"]},
    )
    assert shared.status_code == 201, shared.get_json()


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_withdrawal_recorded_earlier_binds_every_element(
    client: FlaskClient, tokens: Tokens
) -> None:
    given = consent(client, tokens["tt"], NHS[0], ["ea-tt-leeds", "ips-cmht-leeds"])
    consent(client, tokens["tt"], NHS[1], ["ea-tt-leeds"])
    withdrawn = client.post(
        f"/v1/consents/{given['id']}/withdraw", headers=bearer(tokens["portal"])
    )
    assert withdrawn.status_code == 200

    asked = [share(), share(NHS[1]), share(to="ips-cmht-leeds")]
    decisions = client.post("/v1/decisions", json=asked, headers=bearer(tokens["tt"])).get_json()

    assert [d["decision"] for d in decisions] == ["deny", "permit", "deny"]
    for d in (decisions[0], decisions[2]):
        assert {c["reason"] for c in d["denied_categories"]} == {"consent_withdrawn"}
        assert d["consents"] == []


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_person_not_seen_before_named_twice_in_a_list_gets_one_subject_ref(
    client: FlaskClient, tokens: Tokens, ledger: Ledger
) -> None:
    people = count(ledger, Subject)
    asked = [
        share(NHS[2]),
        share(NHS[3]),
        # The same person written another way: the number with spaces.
        share(f"{NHS[2][:3]} {NHS[2][3:6]} {NHS[2][6:]}", to="ips-cmht-leeds"),
    ]
    decisions = client.post("/v1/decisions", json=asked, headers=bearer(tokens["tt"])).get_json()

    assert decisions[0]["subject_ref"] == decisions[2]["subject_ref"]
    assert decisions[0]["subject_ref"] != decisions[1]["subject_ref"]
    assert count(ledger, Subject) == people + 2
    later = client.post("/v1/decisions", json=share(NHS[2]), headers=bearer(tokens["tt"]))
    assert later.get_json()["subject_ref"] == decisions[0]["subject_ref"]


def _many(n: int) -> list[Any]:
    return [share() for _ in range(n)]


def _with(index: int, **over: Any) -> list[Any]:
    body = _many(4)
    body[index] = {**body[index], **over}
    return body


@pytest.mark.parametrize(
    ("who", "body", "status", "fields"),
    [
        pytest.param("tt", [], 422, ["(body)"], id="empty"),
        pytest.param("tt", _many(MAX_LIST + 1), 422, ["(body)"], id="too-long"),
        pytest.param("tt", [share(), "share"], 422, ["1"], id="not-an-object"),
        pytest.param(
            "tt",
            _with(3, subject={"nhs_number": "123"}),
            422,
            ["3.subject.nhs_number"],
            id="schema",
        ),
        pytest.param("tt", _with(0, purpose="marketing"), 422, ["0.purpose"], id="purpose"),
        pytest.param("tt", _with(2, to="nowhere"), 422, ["2.to"], id="recipient"),
        pytest.param(
            "tt",
            _with(1, data_categories=["identity", "shoe_size"]),
            422,
            ["1.data_categories.1"],
            id="category",
        ),
        pytest.param(
            "tt",
            _with(2, subject={"local_id": {"system": "cmht-leeds-west", "value": "c-1"}}),
            422,
            ["2.subject.local_id.system"],
            id="local-system",
        ),
        pytest.param(
            "tt",
            [share(purpose="marketing"), share(to="nowhere")],
            422,
            ["0.purpose", "1.to"],
            id="every-element-named",
        ),
        pytest.param("tt", _with(3, **{"from": "ea-tt-leeds"}), 403, ["3.from"], id="from"),
        pytest.param(
            "tt",
            _with(1, legal_basis={"type": "court_order", "reference": "C-1"}),
            403,
            ["1.legal_basis"],
            id="legal-basis",
        ),
        pytest.param(
            "tt_ig",
            _with(1, legal_basis={"type": "hunch", "reference": "x"}),
            422,
            ["1.legal_basis.type"],
            id="legal-basis-type",
        ),
    ],
)
def test_one_bad_element_refuses_the_whole_list_naming_it_and_records_nothing(
    client: FlaskClient,
    tokens: Tokens,
    ledger: Ledger,
    who: str,
    body: list[Any],
    status: int,
    fields: list[str],
) -> None:
    size, people = log_size(client), count(ledger, Subject)
    resp = client.post("/v1/decisions", json=body, headers=bearer(tokens[who]))
    assert resp.status_code == status, resp.get_json()
    assert resp.mimetype == "application/problem+json"
    problem = resp.get_json()
    assert [e["field"] for e in problem["errors"]] == fields
    assert NHS[0] not in resp.text
    assert log_size(client) == size
    assert count(ledger, Subject) == people


def test_a_retried_list_gets_its_first_answer_and_a_stale_permit_is_not_replayed(
    client: FlaskClient, tokens: Tokens
) -> None:
    given = consent(client, tokens["tt"], NHS[0], ["ea-tt-leeds"])
    retry = {**bearer(tokens["tt"]), "Idempotency-Key": "refer-all"}
    asked = [share(NHS[1]), share()]
    first = client.post("/v1/decisions", json=asked, headers=retry)
    assert [d["decision"] for d in first.get_json()] == ["deny", "permit"]
    size = log_size(client)

    again = client.post("/v1/decisions", json=asked, headers=retry)
    assert again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first.get_json()
    assert log_size(client) == size
    other = client.post("/v1/decisions", json=asked[:1], headers=retry)
    assert other.status_code == 422
    assert other.get_json()["type"] == "/problems/idempotency-key-reused"

    client.post(f"/v1/consents/{given['id']}/withdraw", headers=bearer(tokens["portal"]))
    size = log_size(client)
    stale = client.post("/v1/decisions", json=asked, headers=retry)
    assert stale.status_code == 409, stale.get_json()
    problem = stale.get_json()
    assert problem["type"] == "/problems/consent-withdrawn"
    assert problem["consents"] == [given["id"]]
    assert "Idempotent-Replayed" not in stale.headers
    assert log_size(client) == size


def test_the_largest_list_the_schema_accepts_fits_the_body_limit(
    client: FlaskClient, tokens: Tokens
) -> None:
    # Every text at its longest, in characters JSON escapes to twelve bytes each (a surrogate
    # pair), as a standard encoder writes them: the body limit must not refuse a valid list.
    wide = "\U0001f600"
    element = {
        "subject": {"local_id": {"system": "tt-leeds", "value": wide * 100}},
        "from": "tt-leeds",
        "to": "ea-tt-leeds",
        "purpose": wide * 32,
        "data_categories": [f"{n:02d}" + wide * 30 for n in range(20)],
        "legal_basis": {"type": "c" * 32, "reference": "R" * 80},
    }
    body = json.dumps([element] * MAX_LIST)
    assert len(body) < MAX_BODY
    resp = client.post(
        "/v1/decisions",
        data=body,
        headers={**bearer(tokens["tt_ig"]), "Content-Type": "application/json"},
    )
    # Read and checked in full: refused for what it says (no such purpose), not for its size.
    assert resp.status_code == 422, resp.get_json()
    assert resp.get_json()["errors"][0]["field"] == "0.purpose"
