"""Decisions and disclosures through the API: answers explained, recorded, and re-checked."""

from __future__ import annotations

import base64
import csv
import io
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient

from app.policy import Policy
from app.services.container import Ledger
from app.services.decisions import policies
from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers

NHS = valid_nhs_numbers(4, start=943_476_500)
Tokens = dict[str, str]


@pytest.fixture
def tokens(policy: Policy, make_token: Callable[..., str]) -> Tokens:
    return {
        "tt": make_token("tt-leeds", "case_system"),
        "tt_ig": make_token("tt-leeds", "ig_lead"),
        "ea": make_token("ea-tt-leeds", "case_system"),
        "ea_ig": make_token("ea-tt-leeds", "ig_lead"),
        "jcp": make_token("jcp-leeds-city", "case_system"),
        "whp": make_token("whp-leeds", "case_system"),
        "portal": make_token("tt-leeds", "patient_portal"),
        "auditor": make_token("tt-leeds", "auditor"),
    }


def consent(client: FlaskClient, token: str, nhs: str, **over: Any) -> dict[str, Any]:
    body = {
        "subject": {"nhs_number": nhs},
        "purpose": "referral",
        "recipients": ["ea-tt-leeds"],
        "data_categories": ["identity", "service_status"],
        "form": "verbal",
        **over,
    }
    resp = client.post("/v1/consents", json=body, headers=bearer(token))
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


def decide(
    client: FlaskClient,
    token: str,
    nhs: str,
    frm: str = "tt-leeds",
    to: str = "ea-tt-leeds",
    purpose: str = "referral",
    categories: tuple[str, ...] = ("identity", "service_status"),
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Any:
    return client.post(
        "/v1/decisions",
        headers={**bearer(token), **(headers or {})},
        json={
            "subject": {"nhs_number": nhs},
            "from": frm,
            "to": to,
            "purpose": purpose,
            "data_categories": list(categories),
            **extra,
        },
    )


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_permit_is_explained_recorded_and_then_disclosed(
    client: FlaskClient, tokens: Tokens, policy: Policy
) -> None:
    given = consent(client, tokens["tt"], NHS[0])
    resp = decide(client, tokens["tt"], NHS[0])
    assert resp.status_code == 200
    d = resp.get_json()
    assert d["decision"] == "permit"
    assert d["permitted_categories"] == ["identity", "service_status"]
    assert d["denied_categories"] == []
    assert d["consents"] == [given["id"]]
    assert d["policy_version"] == policy.version
    assert any(r["rule"] == "P2" and "UK GDPR" in r["message"] for r in d["reasons"])

    entry = client.get(
        f"/v1/log/entries/{d['ledger']['index']}", headers=bearer(tokens["auditor"])
    ).get_json()
    assert entry["entry"]["type"] == "decision.made"
    assert entry["entry"]["data"]["decision_id"] == d["id"]
    assert entry["leaf_hash"] == d["ledger"]["leaf_hash"]
    assert NHS[0] not in base64.b64decode(entry["leaf"]).decode()

    shared = client.post(
        "/v1/disclosures",
        headers=bearer(tokens["tt"]),
        json={"decision_id": d["id"], "data_categories": ["identity"]},
    )
    assert shared.status_code == 201, shared.get_json()
    body = shared.get_json()
    assert body["to"] == "ea-tt-leeds"
    assert body["consents"] == [given["id"]]
    entry = client.get(
        f"/v1/log/entries/{body['ledger']['index']}", headers=bearer(tokens["auditor"])
    ).get_json()
    assert entry["entry"]["type"] == "disclosure.recorded"


def test_a_deny_is_an_answer_not_an_error(client: FlaskClient, tokens: Tokens) -> None:
    resp = decide(client, tokens["tt"], NHS[0])
    assert resp.status_code == 200
    d = resp.get_json()
    assert d["decision"] == "deny"
    assert d["denied_categories"] == [
        {"category": "identity", "reason": "no_consent", "rule": "P2"},
        {"category": "service_status", "reason": "no_consent", "rule": "P2"},
    ]
    assert d["ledger"]["index"] >= 0
    refused = client.post(
        "/v1/disclosures",
        headers=bearer(tokens["tt"]),
        json={"decision_id": d["id"], "data_categories": ["identity"]},
    )
    assert refused.status_code == 409
    assert refused.get_json()["type"] == "/problems/decision-denied"


def _a_deny(client: FlaskClient, tokens: Tokens, ledger: Ledger) -> dict[str, Any]:
    return decide(client, tokens["tt"], NHS[0]).get_json()  # type: ignore[no-any-return]


def _a_permit_since_expired(client: FlaskClient, tokens: Tokens, ledger: Ledger) -> dict[str, Any]:
    consent(
        client, tokens["tt"], NHS[0], expires_at=(ledger.clock() + timedelta(days=1)).isoformat()
    )
    permit = decide(client, tokens["tt"], NHS[0]).get_json()
    assert permit["decision"] == "permit", permit
    _expire(client, tokens, ledger, {})
    return permit  # type: ignore[no-any-return]


@pytest.mark.parametrize("made", [_a_deny, _a_permit_since_expired])
def test_a_decision_denied_body_carries_every_field_its_problem_type_describes(
    client: FlaskClient,
    tokens: Tokens,
    ledger: Ledger,
    made: Callable[[FlaskClient, Tokens, Ledger], dict[str, Any]],
) -> None:
    # A caller reads /problems/decision-denied to learn what the 409 tells it; every field the
    # page names must be there, saying why with rule ids.
    decision = made(client, tokens, ledger)
    refused = client.post(
        "/v1/disclosures",
        headers=bearer(tokens["tt"]),
        json={"decision_id": decision["id"], "data_categories": ["identity"]},
    )
    assert refused.status_code == 409
    body = refused.get_json()
    assert body["type"] == "/problems/decision-denied"
    page = client.get("/problems/decision-denied").text
    named = set(re.findall(r"`([a-z_]+)`", page))
    assert {"reasons", "denied_categories"} <= named
    assert named <= body.keys(), page
    assert body["reasons"]
    assert all(r["rule"] for r in body["reasons"])
    assert {d["category"] for d in body["denied_categories"]} >= {"identity"}


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_withdrawal_stops_a_disclosure_under_an_earlier_permit_and_names_who_to_tell(
    client: FlaskClient, tokens: Tokens
) -> None:
    given = consent(client, tokens["tt"], NHS[1])
    first = decide(client, tokens["tt"], NHS[1]).get_json()
    done = client.post(
        "/v1/disclosures",
        headers=bearer(tokens["tt"]),
        json={"decision_id": first["id"], "data_categories": ["identity"]},
    )
    assert done.status_code == 201
    second = decide(client, tokens["tt"], NHS[1]).get_json()
    assert second["decision"] == "permit"
    size = client.get("/healthz").get_json()["log_size"]

    withdrawn = client.post(
        f"/v1/consents/{given['id']}/withdraw", headers=bearer(tokens["portal"])
    )
    assert withdrawn.status_code == 200
    assert withdrawn.get_json()["notify"] == [
        {"organisation": "ea-tt-leeds", "obligation": "notify_recipient"}
    ]
    refused = client.post(
        "/v1/disclosures",
        headers=bearer(tokens["tt"]),
        json={"decision_id": second["id"], "data_categories": ["identity"]},
    )
    assert refused.status_code == 409
    problem = refused.get_json()
    assert problem["type"] == "/problems/consent-withdrawn"
    assert problem["consents"] == [given["id"]]
    assert client.get("/healthz").get_json()["log_size"] == size + 1  # the withdrawal only
    after = decide(client, tokens["tt"], NHS[1]).get_json()
    assert after["decision"] == "deny"
    assert after["denied_categories"][0]["reason"] == "consent_withdrawn"


def test_evaluation_withdrawal_obliges_the_evaluator_to_erase(
    client: FlaskClient, tokens: Tokens
) -> None:
    given = consent(
        client,
        tokens["tt"],
        NHS[2],
        purpose="evaluation",
        recipients=["eval-northern-uni"],
        data_categories=["outcome_measures"],
        form="electronic",
        evidence_sha256="ab" * 32,
    )
    d = decide(
        client,
        tokens["tt"],
        NHS[2],
        to="eval-northern-uni",
        purpose="evaluation",
        categories=("outcome_measures",),
    ).get_json()
    assert d["decision"] == "permit", d
    client.post(
        "/v1/disclosures",
        headers=bearer(tokens["tt"]),
        json={"decision_id": d["id"], "data_categories": ["outcome_measures"]},
    )
    withdrawn = client.post(f"/v1/consents/{given['id']}/withdraw", headers=bearer(tokens["tt"]))
    assert withdrawn.get_json()["notify"] == [
        {"organisation": "eval-northern-uni", "obligation": "cease_processing_and_erase"}
    ]


def test_an_objection_after_the_decision_stops_the_disclosure(
    client: FlaskClient, tokens: Tokens
) -> None:
    d = decide(
        client, tokens["tt"], NHS[3], to="cmht-leeds-west", categories=("identity", "condition")
    ).get_json()
    assert d["decision"] == "permit"
    assert d["basis"] == "implied"
    client.post(
        "/v1/objections",
        headers=bearer(tokens["portal"]),
        json={"subject": {"nhs_number": NHS[3]}, "scope": "direct_care"},
    )
    refused = client.post(
        "/v1/disclosures",
        headers=bearer(tokens["tt"]),
        json={"decision_id": d["id"], "data_categories": ["identity"]},
    )
    assert refused.status_code == 409
    assert refused.get_json()["type"] == "/problems/objection-recorded"


def _withdraw(client: FlaskClient, tokens: Tokens, ledger: Ledger, given: dict[str, Any]) -> None:
    resp = client.post(f"/v1/consents/{given['id']}/withdraw", headers=bearer(tokens["portal"]))
    assert resp.status_code == 200


def _expire(client: FlaskClient, tokens: Tokens, ledger: Ledger, given: dict[str, Any]) -> None:
    real = ledger.clock
    ledger.clock = lambda: real() + timedelta(days=2)  # the consent expires after one day


def _object(client: FlaskClient, tokens: Tokens, ledger: Ledger, given: dict[str, Any]) -> None:
    resp = client.post(
        "/v1/objections",
        headers=bearer(tokens["portal"]),
        json={"subject": {"nhs_number": NHS[0]}, "scope": "direct_care"},
    )
    assert resp.status_code == 201


def _signed_referrals_only(
    client: FlaskClient, tokens: Tokens, ledger: Ledger, given: dict[str, Any]
) -> None:
    doc = yaml.safe_load(policies.DEFAULT_POLICY_FILE.read_text())
    next(r for r in doc["rules"] if r["id"] == "P2")["forms"] = "signed"
    path = ledger.settings.instance_path / "stricter.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    policies.publish(ledger, policies.parse_policy_file(path))


@pytest.mark.parametrize("backend", BOTH, indirect=True)
@pytest.mark.parametrize(
    ("change", "ask", "slug"),
    [
        pytest.param(_withdraw, {}, "consent-withdrawn", id="withdrawal"),
        pytest.param(_expire, {}, "decision-denied", id="expiry"),
        pytest.param(_signed_referrals_only, {}, "decision-denied", id="stricter-policy"),
        pytest.param(
            _object,
            {"to": "cmht-leeds-west", "categories": ("identity", "condition")},
            "objection-recorded",
            id="objection",
        ),
    ],
)
def test_a_retried_decision_never_replays_a_permit_that_is_no_longer_true(
    client: FlaskClient,
    tokens: Tokens,
    ledger: Ledger,
    change: Callable[[FlaskClient, Tokens, Ledger, dict[str, Any]], None],
    ask: dict[str, Any],
    slug: str,
) -> None:
    expires = (ledger.clock() + timedelta(days=1)).isoformat()
    given = consent(client, tokens["tt"], NHS[0], expires_at=expires)
    retry = {"Idempotency-Key": "decide-once"}
    first = decide(client, tokens["tt"], NHS[0], headers=retry, **ask)
    assert first.get_json()["decision"] == "permit", first.get_json()
    again = decide(client, tokens["tt"], NHS[0], headers=retry, **ask)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first.get_json()

    change(client, tokens, ledger, given)
    size = client.get("/healthz").get_json()["log_size"]
    replay = decide(client, tokens["tt"], NHS[0], headers=retry, **ask)
    assert replay.status_code == 409, replay.get_json()
    assert replay.get_json()["type"] == f"/problems/{slug}"
    assert "Idempotent-Replayed" not in replay.headers
    assert client.get("/healthz").get_json()["log_size"] == size


def test_a_replayed_permit_never_names_a_withdrawn_consent_even_if_another_covers_it(
    client: FlaskClient, tokens: Tokens
) -> None:
    first_consent = consent(client, tokens["tt"], NHS[0])
    retry = {"Idempotency-Key": "decide-once"}
    first = decide(client, tokens["tt"], NHS[0], headers=retry).get_json()
    assert first["consents"] == [first_consent["id"]]
    consent(client, tokens["tt"], NHS[0])  # a second consent, as wide as the first
    client.post(f"/v1/consents/{first_consent['id']}/withdraw", headers=bearer(tokens["portal"]))
    replay = decide(client, tokens["tt"], NHS[0], headers=retry)
    assert replay.status_code == 409
    assert replay.get_json()["consents"] == [first_consent["id"]]
    assert decide(client, tokens["tt"], NHS[0]).get_json()["decision"] == "permit"


@pytest.mark.parametrize(
    ("who", "body", "status", "field"),
    [
        ("tt", {"from": "ea-tt-leeds"}, 403, None),
        ("tt", {"legal_basis": {"type": "court_order", "reference": "C-1"}}, 403, None),
        ("tt", {"to": "nowhere"}, 422, "to"),
        ("tt", {"purpose": "marketing"}, 422, "purpose"),
        ("tt", {"data_categories": ["identity", "shoe_size"]}, 422, "data_categories.1"),
        ("tt_ig", {"legal_basis": {"type": "hunch", "reference": "x"}}, 422, "legal_basis.type"),
        ("tt", {"subject": {"nhs_number": "123"}}, 422, "subject.nhs_number"),
        ("portal", {}, 403, None),
        ("auditor", {}, 403, None),
    ],
)
def test_bad_decision_requests_are_refused_and_record_nothing(
    client: FlaskClient,
    tokens: Tokens,
    who: str,
    body: dict[str, Any],
    status: int,
    field: str | None,
) -> None:
    size = client.get("/healthz").get_json()["log_size"]
    request = {
        "subject": {"nhs_number": NHS[0]},
        "from": "tt-leeds",
        "to": "ea-tt-leeds",
        "purpose": "referral",
        "data_categories": ["identity"],
        **body,
    }
    resp = client.post("/v1/decisions", json=request, headers=bearer(tokens[who]))
    assert resp.status_code == status, resp.get_json()
    problem = resp.get_json()
    assert resp.mimetype == "application/problem+json"
    if field:
        assert field in [e["field"] for e in problem["errors"]]
    assert client.get("/healthz").get_json()["log_size"] == size


def test_an_ig_lead_may_rest_a_decision_on_a_legal_basis(
    client: FlaskClient, tokens: Tokens
) -> None:
    d = decide(
        client,
        tokens["tt_ig"],
        NHS[0],
        to="asc-leeds",
        purpose="case_conferencing",
        categories=("identity", "clinical_notes"),
        legal_basis={"type": "court_order", "reference": "Order 2026/117"},
    ).get_json()
    assert d["decision"] == "permit"
    assert d["basis"] in ("legal_basis", "implied")
    assert "notify_subject_unless_prejudicial" in d["obligations"]
    assert any("Order 2026/117" in r["message"] for r in d["reasons"])


def test_disclosure_categories_must_be_a_subset_of_the_permit(
    client: FlaskClient, tokens: Tokens
) -> None:
    consent(client, tokens["tt"], NHS[0])
    d = decide(client, tokens["tt"], NHS[0], categories=("identity",)).get_json()
    resp = client.post(
        "/v1/disclosures",
        headers=bearer(tokens["tt"]),
        json={"decision_id": d["id"], "data_categories": ["identity", "service_status"]},
    )
    assert resp.status_code == 422
    assert [e["field"] for e in resp.get_json()["errors"]] == ["data_categories.1"]
    other = client.post(
        "/v1/disclosures",
        headers=bearer(tokens["ea"]),
        json={"decision_id": d["id"], "data_categories": ["identity"]},
    )
    assert other.status_code == 403
    missing = client.post(
        "/v1/disclosures",
        headers=bearer(tokens["tt"]),
        json={"decision_id": "dec_" + "0" * 32, "data_categories": ["identity"]},
    )
    assert missing.status_code == 404


def _disclose(
    client: FlaskClient, tokens: Tokens, nhs: str, frm: str, to: str, sender: str
) -> None:
    consent(client, tokens[sender], nhs, recipients=[to])
    d = decide(client, tokens[sender], nhs, frm=frm, to=to, categories=("identity",)).get_json()
    assert d["decision"] == "permit", d
    resp = client.post(
        "/v1/disclosures",
        headers=bearer(tokens[sender]),
        json={"decision_id": d["id"], "data_categories": ["identity"]},
    )
    assert resp.status_code == 201


def test_disclosure_history_filters_pages_and_exports_csv(
    client: FlaskClient, tokens: Tokens
) -> None:
    _disclose(client, tokens, NHS[0], "tt-leeds", "ea-tt-leeds", "tt")
    _disclose(client, tokens, NHS[1], "tt-leeds", "ea-tt-leeds", "tt")
    _disclose(client, tokens, NHS[0], "ea-tt-leeds", "tt-leeds", "ea")
    _disclose(client, tokens, NHS[2], "jcp-leeds-city", "whp-leeds", "jcp")

    ig = bearer(tokens["tt_ig"])
    everything = client.get("/v1/disclosures", headers=ig).get_json()
    assert everything["total"] == 3  # from or to tt-leeds; not the Jobcentre's
    person = client.get(f"/v1/disclosures?nhs_number={NHS[0]}", headers=ig).get_json()
    assert {(i["from"], i["to"]) for i in person["items"]} == {
        ("tt-leeds", "ea-tt-leeds"),
        ("ea-tt-leeds", "tt-leeds"),
    }
    page = client.get("/v1/disclosures?page=2&page_size=2", headers=ig).get_json()
    assert (page["total"], len(page["items"])) == (3, 1)
    auditor = client.get(
        "/v1/disclosures?to_org=whp-leeds", headers=bearer(tokens["auditor"])
    ).get_json()
    assert auditor["total"] == 1

    exported = client.get(
        f"/v1/disclosures?nhs_number={NHS[0]}", headers={**ig, "Accept": "text/csv"}
    )
    assert exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["from"], r["to"], r["data_categories"]) for r in rows] == [
        (i["from"], i["to"], ";".join(i["data_categories"])) for i in person["items"]
    ]
    assert NHS[0] not in exported.text

    bad = client.get(
        "/v1/disclosures?since=2026-12-01T00:00:00Z&until=2026-11-01T00:00:00Z", headers=ig
    )
    assert bad.status_code == 400
    assert bad.get_json()["errors"][0]["field"] == "until"
    assert client.get("/v1/disclosures", headers=bearer(tokens["tt"])).status_code == 403


def test_rebuild_check_covers_decisions_and_disclosures(
    client: FlaskClient, runner: Any, tokens: Tokens, ledger: Any
) -> None:
    from sqlalchemy import text

    _disclose(client, tokens, NHS[0], "tt-leeds", "ea-tt-leeds", "tt")
    decide(client, tokens["tt"], NHS[1])  # a deny is recorded too
    ok = runner.invoke(args=["rebuild", "--check"])
    assert ok.exit_code == 0, ok.output
    with ledger.db.write_engine.begin() as conn:
        conn.execute(text("UPDATE disclosures SET to_org = 'asc-leeds'"))
        conn.execute(text("DELETE FROM decisions WHERE decision = 'deny'"))
    bad = runner.invoke(args=["rebuild", "--check"])
    assert bad.exit_code == 1
    assert "to_org is 'asc-leeds' in the table but 'ea-tt-leeds' in the log" in bad.output
    assert "decisions dec_" in bad.output


# -- issue 15 item 4: a deny may still disclose what it permitted (G7) -------------------------

# A referral consent lists identity and service status; the question also asks for clinical
# notes, above what NHS employment support may receive (P2), so the answer is a deny that
# permits the other two.
PARTLY = ("identity", "service_status", "clinical_notes")


def _partly_denied(client: FlaskClient, tokens: Tokens, nhs: str) -> dict[str, Any]:
    given = consent(client, tokens["tt"], nhs)
    d = decide(client, tokens["tt"], nhs, categories=PARTLY).get_json()
    assert d["decision"] == "deny"
    assert d["permitted_categories"] == ["identity", "service_status"]
    assert d["consents"] == [given["id"]]
    return d  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("categories", "status", "named"),
    [
        pytest.param(["identity"], 201, None, id="one-permitted"),
        pytest.param(["identity", "service_status"], 201, None, id="all-permitted"),
        pytest.param(["clinical_notes"], 409, "clinical_notes", id="the-denied-one"),
        pytest.param(["identity", "clinical_notes"], 409, "clinical_notes", id="permitted-and-not"),
        pytest.param(["condition"], 409, "condition", id="never-asked"),
    ],
)
def test_a_deny_may_disclose_exactly_what_it_permitted(
    client: FlaskClient,
    tokens: Tokens,
    runner: Any,
    categories: list[str],
    status: int,
    named: str | None,
) -> None:
    d = _partly_denied(client, tokens, NHS[0])
    size = client.get("/healthz").get_json()["log_size"]
    resp = client.post(
        "/v1/disclosures",
        headers=bearer(tokens["tt"]),
        json={"decision_id": d["id"], "data_categories": categories},
    )
    assert resp.status_code == status, resp.get_json()
    body = resp.get_json()
    if named is None:
        assert body["decision_id"] == d["id"]
        assert body["data_categories"] == categories
        assert body["consents"] == d["consents"]
        assert body["basis"] == "consent"
        # The log proves it: verify re-evaluates the share against the log before it.
        verified = runner.invoke(args=["verify"])
        assert verified.exit_code == 0, verified.output
        return
    assert body["type"] == "/problems/decision-denied"
    assert named in body["detail"]
    assert named in [c["category"] for c in body["denied_categories"]]
    assert all(c["category"] not in d["permitted_categories"] for c in body["denied_categories"])
    assert body["reasons"]
    assert client.get("/healthz").get_json()["log_size"] == size


@pytest.mark.parametrize("backend", BOTH, indirect=True)
@pytest.mark.parametrize(
    ("change", "slug"),
    [
        pytest.param(_withdraw, "consent-withdrawn", id="withdrawal"),
        pytest.param(_object, "objection-recorded", id="objection"),
    ],
)
def test_what_a_deny_permitted_is_re_checked_now_like_a_permit(
    client: FlaskClient,
    tokens: Tokens,
    ledger: Ledger,
    change: Callable[[FlaskClient, Tokens, Ledger, dict[str, Any]], None],
    slug: str,
) -> None:
    d = _partly_denied(client, tokens, NHS[0])
    change(client, tokens, ledger, {"id": d["consents"][0]})
    size = client.get("/healthz").get_json()["log_size"]
    refused = client.post(
        "/v1/disclosures",
        headers=bearer(tokens["tt"]),
        json={"decision_id": d["id"], "data_categories": ["identity"]},
    )
    assert refused.status_code == 409, refused.get_json()
    assert refused.get_json()["type"] == f"/problems/{slug}"
    assert client.get("/healthz").get_json()["log_size"] == size
