"""Log format 2 (issue 14): leaves about a person hold only a commitment, and a person can be
erased without changing a leaf.

Checked from outside: every leaf is fetched through the API and read with the independent
verifiers in ``tests/support`` (RFC 9162 and C2SP checkpoints; the commitment format), never
with the service's own code.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient, FlaskCliRunner

from app.policy import Policy
from app.services.container import Ledger
from tests.helpers import BOTH, bearer, form_token
from tests.nhs import valid_nhs_numbers
from tests.support import commitment_verifier as cv
from tests.support import rfc9162_verifier as rfc

NHS = valid_nhs_numbers(6, start=943_478_100)
Tokens = dict[str, str]
# Entry types about a person (design.md, "Log format 2"): each must be a committed leaf.
PERSONAL = {
    "consent.granted",
    "consent.confirmed",
    "consent.withdrawn",
    "objection.recorded",
    "objection.withdrawn",
    "decision.made",
    "disclosure.recorded",
    "access_link.created",
    "access_link.revoked",
}


@pytest.fixture
def tokens(policy: Policy, make_token: Callable[..., str]) -> Tokens:
    return {
        "tt": make_token("tt-leeds", "case_system"),
        "tt_ig": make_token("tt-leeds", "ig_lead"),
        "ea_ig": make_token("ea-tt-leeds", "ig_lead"),
        "jcp": make_token("jcp-leeds-city", "case_system"),
        "portal": make_token("tt-leeds", "patient_portal"),
        "auditor": make_token("tt-leeds", "auditor"),
    }


@dataclass
class Person:
    """What the flows made about one person, as the callers were told."""

    nhs: str
    receipts: list[dict[str, Any]] = field(default_factory=list)  # ledger receipts
    ids: list[str] = field(default_factory=list)  # consent, decision, disclosure... ids
    link_url: str = ""


def _post(client: FlaskClient, token: str, path: str, body: dict[str, Any] | None = None) -> Any:
    resp = client.post(path, json=body or {}, headers=bearer(token))
    assert resp.status_code in (200, 201), (path, resp.get_json())
    return resp.get_json()


def run_flows(client: FlaskClient, tokens: Tokens, nhs: str) -> Person:
    """Every kind of entry about one person, through the API as the case systems, the IG lead
    and the portal make them."""
    person = Person(nhs)
    subject = {"nhs_number": nhs}

    def keep(body: dict[str, Any]) -> dict[str, Any]:
        person.ids.append(body["id"])
        person.receipts.append(body["ledger"])
        return body

    consent = keep(
        _post(
            client,
            tokens["tt"],
            "/v1/consents",
            {
                "subject": subject,
                "purpose": "referral",
                "recipients": ["ea-tt-leeds"],
                "data_categories": ["identity", "service_status"],
                "form": "verbal",
            },
        )
    )
    decision = keep(
        _post(
            client,
            tokens["tt"],
            "/v1/decisions",
            {
                "subject": subject,
                "from": "tt-leeds",
                "to": "ea-tt-leeds",
                "purpose": "referral",
                "data_categories": ["identity", "service_status"],
            },
        )
    )
    assert decision["decision"] == "permit"
    keep(
        _post(
            client,
            tokens["tt"],
            "/v1/disclosures",
            {"decision_id": decision["id"], "data_categories": ["identity"]},
        )
    )
    # A consent taken by DWP, confirmed by a health organisation (G6).
    dwp = keep(
        _post(
            client,
            tokens["jcp"],
            "/v1/consents",
            {
                "subject": subject,
                "purpose": "referral",
                "recipients": ["tt-leeds"],
                "data_categories": ["identity"],
                "form": "written",
                "evidence_sha256": "a" * 64,
            },
        )
    )
    _post(client, tokens["tt"], f"/v1/consents/{dwp['id']}/confirm")
    objection = keep(
        _post(client, tokens["tt"], "/v1/objections", {"subject": subject, "scope": "direct_care"})
    )
    _post(client, tokens["tt"], f"/v1/objections/{objection['id']}/withdraw")
    link = _post(client, tokens["portal"], "/v1/subjects/access-links", {"subject": subject})
    person.link_url = link["url"]
    spare = _post(client, tokens["tt"], "/v1/subjects/access-links", {"subject": subject})
    _post(client, tokens["tt"], f"/v1/subjects/access-links/{spare['id']}/revoke")
    _post(
        client,
        tokens["tt"],
        f"/v1/consents/{consent['id']}/withdraw",
        {"reason": "person_withdrew"},
    )
    return person


def _entries(client: FlaskClient, token: str) -> list[dict[str, Any]]:
    size = client.get("/healthz").get_json()["log_size"]
    out = []
    for index in range(size):
        resp = client.get(f"/v1/log/entries/{index}", headers=bearer(token))
        assert resp.status_code == 200, resp.get_json()
        out.append(resp.get_json())
    return out


def _identifying_strings(entry: dict[str, Any]) -> set[str]:
    """What a personal entry says that a leaf must not: the person's reference, the
    organisations, categories and purposes in it (every string value of its payload)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str) and len(value) > 3:
            found.add(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(entry["data"])
    return found


def test_no_leaf_of_an_end_to_end_log_holds_anything_about_a_person(
    client: FlaskClient, tokens: Tokens
) -> None:
    for nhs in NHS[:2]:
        run_flows(client, tokens, nhs)
    entries = _entries(client, tokens["auditor"])
    committed = [e for e in entries if e["state"] == "opened"]
    types = {cv.open_leaf(base64.b64decode(e["leaf"]), e["opening"])["type"] for e in committed}
    assert types == PERSONAL, "every kind of entry about a person was made, and committed"

    for e in entries:
        leaf = base64.b64decode(e["leaf"])
        assert rfc.leaf_hash(leaf).hex() == e["leaf_hash"]
        if e["state"] == "clear":
            assert e["entry"]["type"] not in PERSONAL, e["index"]
            assert e["opening"] is None
            continue
        # Only version, type and commitment; the commitment re-computed from the opening.
        assert set(json.loads(leaf)) == {"v", "type", "commitment"}
        opened = cv.open_leaf(leaf, e["opening"])
        assert opened == e["entry"]
        secrets = _identifying_strings(opened)
        assert opened["data"]["subject_ref"] in secrets
        assert {"tt-leeds", "referral", "identity"} & secrets or opened["type"].startswith(
            ("objection.", "access_link.", "consent.withdrawn", "consent.confirmed")
        )
        assert [s for s in secrets if s.encode() in leaf] == [], e["index"]
        assert opened["time"].encode() not in leaf


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_an_erased_person_is_gone_and_every_proof_issued_before_still_verifies(
    client: FlaskClient,
    tokens: Tokens,
    runner: FlaskCliRunner,
    ledger: Ledger,
) -> None:
    erased, kept = run_flows(client, tokens, NHS[2]), run_flows(client, tokens, NHS[3])
    vkey = client.get("/v1/log/key").get_data(as_text=True).strip()
    before = client.get("/v1/log/checkpoint").get_data(as_text=True)
    old = rfc.verify_checkpoint(before, vkey)
    old_entries = _entries(client, tokens["auditor"])
    retried = client.post(
        "/v1/objections",
        json={"subject": {"nhs_number": erased.nhs}, "scope": "national_data_opt_out"},
        headers={**bearer(tokens["tt"]), "Idempotency-Key": "objection-1"},
    )
    assert retried.status_code == 201
    erased.receipts.append(retried.get_json()["ledger"])

    _signed_in(client, tokens["auditor"])
    report_before = _report(client, erased.nhs)
    assert f"(log {erased.receipts[0]['index']})" in report_before  # the consent's history
    replayed_before = runner.invoke(args=["policy", "replay", "policies/default.yaml"]).output
    assert "2 decisions replayed" in replayed_before

    # The records are kept for the policy's retention period (and while a consent is in
    # force): a person's request is refused, naming the rule, and nothing changes.
    asked = {"subject": {"nhs_number": erased.nhs}, "reference": "SAR-2026-0042"}
    refused = client.post(
        "/v1/subjects/erasures",
        json={**asked, "reason": "data_subject_request"},
        headers=bearer(tokens["auditor"]),
    )
    assert refused.status_code == 409, refused.get_json()
    problem = refused.get_json()
    assert problem["type"] == "/problems/retention-applies"
    assert problem["rule"] == "R1"
    assert "R1" in problem["detail"]
    assert client.get("/healthz").get_json()["log_size"] == old.size + 1

    # Recorded in error: erased by an auditor (two organisations made records about them).
    resp = client.post(
        "/v1/subjects/erasures",
        json={**asked, "reason": "recorded_in_error"},
        headers=bearer(tokens["auditor"]),
    )
    assert resp.status_code == 201, resp.get_json()
    erasure = resp.get_json()
    assert erasure["count"] == len(erasure["indexes"]) >= len(erased.receipts)
    assert {r["index"] for r in erased.receipts} <= set(erasure["indexes"])

    # Every leaf is as it was; the erased ones open to nothing now, and say who erased them.
    after = _entries(client, tokens["auditor"])
    assert [e["leaf"] for e in after[: len(old_entries)]] == [e["leaf"] for e in old_entries]
    for index in erasure["indexes"]:
        e = after[index]
        assert (e["state"], e["entry"], e["opening"]) == ("erased", None, None)
        assert e["erased_by"] == erasure["ledger"]["index"]
    record = after[erasure["ledger"]["index"]]
    assert record["state"] == "clear"
    assert record["entry"]["type"] == "subject.erased"
    leaf_text = base64.b64decode(record["leaf"]).decode()
    assert erased.nhs not in leaf_text
    assert all(i not in leaf_text for i in erased.ids)

    # Receipts and checkpoints captured before verify after, with the independent verifier.
    newest = rfc.verify_checkpoint(client.get("/v1/log/checkpoint").get_data(as_text=True), vkey)
    for receipt in erased.receipts + kept.receipts:
        if "checkpoint" in receipt:
            signed = rfc.verify_checkpoint(receipt["checkpoint"], vkey)
            assert signed.size > receipt["index"]
        proof = client.get(
            "/v1/log/proof/inclusion",
            query_string={"index": receipt["index"], "size": newest.size},
            headers=bearer(tokens["auditor"]),
        ).get_json()
        rfc.verify_inclusion(
            bytes.fromhex(receipt["leaf_hash"]),
            receipt["index"],
            newest.size,
            [bytes.fromhex(h) for h in proof["hashes"]],
            newest.root_hash,
        )
    consistency = client.get(
        "/v1/log/proof/consistency",
        query_string={"from": old.size, "to": newest.size},
        headers=bearer(tokens["auditor"]),
    ).get_json()
    rfc.verify_consistency(
        old.size,
        newest.size,
        [bytes.fromhex(h) for h in consistency["hashes"]],
        old.root_hash,
        newest.root_hash,
    )

    verified = runner.invoke(args=["verify"])
    assert verified.exit_code == 0, verified.output
    assert f"{erasure['count']} erased" in verified.output
    checked = runner.invoke(args=["rebuild", "--check"])
    assert checked.exit_code == 0, checked.output

    # Nothing about the person through any endpoint, page or command.
    for token in ("tt", "tt_ig", "portal", "auditor"):
        found = client.get(
            "/v1/consents",
            query_string={"nhs_number": erased.nhs},
            headers=bearer(token := tokens[token]),
        ).get_json()
        assert (found["consents"], found["objections"]) == ([], []), token
    shares = client.get(
        "/v1/disclosures",
        query_string={"nhs_number": erased.nhs},
        headers=bearer(tokens["auditor"]),
    ).get_json()
    assert shares["total"] == 0
    assert client.get(erased.link_url.split("localhost", 1)[-1]).status_code in (403, 404, 410)
    again = client.post(
        "/v1/objections",
        json={"subject": {"nhs_number": erased.nhs}, "scope": "national_data_opt_out"},
        headers={**bearer(tokens["tt"]), "Idempotency-Key": "objection-1"},
    )
    assert again.status_code == 410, again.get_json()
    assert again.get_json()["type"] == "/problems/erased"
    # The report on the person is the report on a stranger; replay finds one decision fewer.
    assert _report(client, erased.nhs) == _report(client, NHS[5])
    replayed = runner.invoke(args=["policy", "replay", "policies/default.yaml"]).output
    assert "1 decisions replayed" in replayed
    # The other person's records are all there.
    theirs = client.get(
        "/v1/consents", query_string={"nhs_number": kept.nhs}, headers=bearer(tokens["auditor"])
    ).get_json()
    assert {c["id"] for c in theirs["consents"]} <= set(kept.ids)
    assert len(theirs["consents"]) == 2

    # A new consent for the person starts afresh, under a new reference.
    fresh = _post(
        client,
        tokens["tt"],
        "/v1/consents",
        {
            "subject": {"nhs_number": erased.nhs},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity"],
            "form": "verbal",
        },
    )
    found = client.get(
        "/v1/consents", query_string={"nhs_number": erased.nhs}, headers=bearer(tokens["auditor"])
    ).get_json()
    assert [c["id"] for c in found["consents"]] == [fresh["id"]]
    old_refs = {e["entry"]["data"]["subject_ref"] for e in old_entries if e["state"] == "opened"}
    assert found["consents"][0]["subject_ref"] not in old_refs


def _report(client: FlaskClient, nhs: str) -> str:
    """The IG report page on a person, without the lines that name the number asked for."""
    csrf = form_token(client.get("/ig/report").text)
    page = client.post("/ig/report", data={"csrf_token": csrf, "nhs_number": nhs})
    assert page.status_code == 200
    spaced = f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}"
    return "\n".join(
        line
        for line in page.get_data(as_text=True).splitlines()
        if nhs not in line and spaced not in line and "Produced" not in line
    )


def _signed_in(client: FlaskClient, token: str) -> None:
    form = client.get("/ig/")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf
    resp = client.post("/ig/sign-in", data={"csrf_token": csrf.group(1), "token": token})
    assert resp.status_code in (302, 303), resp.status_code


def test_erasure_waits_for_the_retention_period_then_is_allowed(
    client: FlaskClient, tokens: Tokens, ledger: Ledger
) -> None:
    person = run_flows(client, tokens, NHS[4])
    asked = {
        "subject": {"nhs_number": person.nhs},
        "reason": "data_subject_request",
        "reference": "SAR-2026-0043",
    }
    real = ledger.clock
    # A consent in force binds decisions: it is kept, whatever its age.
    ledger.clock = lambda: real() + timedelta(days=365 * 30)
    try:
        kept = client.post("/v1/subjects/erasures", json=asked, headers=bearer(tokens["auditor"]))
    finally:
        ledger.clock = real
    assert kept.status_code == 409, kept.get_json()
    assert f"still in force ({person.ids[3]})" in kept.get_json()["detail"]
    _post(
        client,
        tokens["jcp"],
        f"/v1/consents/{person.ids[3]}/withdraw",
        {"reason": "person_withdrew"},
    )
    try:
        # Referral records are kept 20 years after the last event (policies/default.yaml, R1).
        ledger.clock = lambda: real() + timedelta(days=365 * 20 - 2)
        early = client.post("/v1/subjects/erasures", json=asked, headers=bearer(tokens["auditor"]))
        assert early.status_code == 409, early.get_json()
        ledger.clock = lambda: real() + timedelta(days=365 * 20 + 6)
        late = client.post("/v1/subjects/erasures", json=asked, headers=bearer(tokens["auditor"]))
        assert late.status_code == 201, late.get_json()
    finally:
        ledger.clock = real


@pytest.mark.parametrize(
    ("change", "field", "why"),
    [
        ({"reference": "943 476 5919"}, "reference", "letters, digits"),
        ({"reference": "SAR-9434765919"}, "reference", "NHS number check"),
        ({"reference": "NHS:943-476-5919"}, "reference", "NHS number check"),
        ({"reference": "943.476.5919"}, "reference", "NHS number check"),
        ({"reference": "943/476/5919"}, "reference", "NHS number check"),
        ({"reference": ""}, "reference", "letters, digits"),
        ({"reason": "because"}, "reason", "Must be one of"),
        ({"subject": {"nhs_number": "123"}}, "subject.nhs_number", "10 digits"),
    ],
)
def test_a_bad_erasure_request_names_its_field_and_erases_nothing(
    client: FlaskClient, tokens: Tokens, change: dict[str, Any], field: str, why: str
) -> None:
    person = run_flows(client, tokens, NHS[5])
    size = client.get("/healthz").get_json()["log_size"]
    body = {
        "subject": {"nhs_number": person.nhs},
        "reason": "recorded_in_error",
        "reference": "IG-1",
        **change,
    }
    resp = client.post("/v1/subjects/erasures", json=body, headers=bearer(tokens["auditor"]))
    assert resp.status_code == 422, resp.get_json()
    problem = resp.get_json()
    assert problem["type"] == "/problems/invalid-request"
    (error,) = problem["errors"]
    assert error["field"] == field
    assert why in error["message"], error
    assert "5919" not in json.dumps(problem)
    assert client.get("/healthz").get_json()["log_size"] == size


def _consent_body(nhs: str) -> dict[str, Any]:
    return {
        "subject": {"nhs_number": nhs},
        "purpose": "referral",
        "recipients": ["ea-tt-leeds"],
        "data_categories": ["identity"],
        "form": "verbal",
    }


def test_an_ig_lead_erases_only_a_person_whose_records_its_organisation_alone_made(
    client: FlaskClient, tokens: Tokens, make_token: Callable[..., str]
) -> None:
    ours, shared = NHS[0], NHS[1]
    _post(client, tokens["tt"], "/v1/consents", _consent_body(ours))
    theirs = _post(client, tokens["jcp"], "/v1/consents", _consent_body(shared))
    jcp_ig = make_token("jcp-leeds-city", "ig_lead")

    def erase(nhs: str, token: str) -> Any:
        body = {"subject": {"nhs_number": nhs}, "reason": "recorded_in_error", "reference": "X1"}
        return client.post("/v1/subjects/erasures", json=body, headers=bearer(token))

    # Asking a decision about someone makes a record, but not a right to erase their records:
    # jcp's consent (and anything else another organisation holds) is not tt-leeds' to erase.
    decision = {
        "subject": {"nhs_number": shared},
        "from": "tt-leeds",
        "to": "ea-tt-leeds",
        "purpose": "referral",
        "data_categories": ["identity"],
    }
    _post(client, tokens["tt"], "/v1/decisions", decision)
    refused = erase(shared, tokens["tt_ig"])
    assert refused.status_code == 403, refused.get_json()
    assert "only an auditor" in refused.get_json()["detail"]
    assert "kept_until" not in refused.get_json()
    assert erase(shared, jcp_ig).status_code == 403  # tt-leeds' decision is not jcp's either
    found = client.get(
        "/v1/consents", query_string={"nhs_number": shared}, headers=bearer(tokens["auditor"])
    ).get_json()
    assert [c["id"] for c in found["consents"]] == [theirs["id"]]
    # An organisation that made nothing about the person is told what a stranger is told.
    made_nothing = erase(ours, tokens["ea_ig"])
    stranger = erase(NHS[2], tokens["ea_ig"])
    assert made_nothing.status_code == stranger.status_code == 404
    assert made_nothing.get_json()["detail"] == stranger.get_json()["detail"]
    # Its own person, it erases.
    assert erase(ours, tokens["tt_ig"]).status_code == 201


def test_a_person_mapped_under_two_keys_is_erased_under_both(
    client: FlaskClient,
    tokens: Tokens,
    ledger: Ledger,
    runner: FlaskCliRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.services.container import Ledger as LedgerClass
    from app.services.log.keys import IdentifierKeys

    nhs = NHS[2]
    _post(client, tokens["tt"], "/v1/consents", _consent_body(nhs))
    old = ledger.identifier_keys
    assert runner.invoke(args=["keys", "rotate-identifier"]).exit_code == 0
    assert runner.invoke(args=["keys", "rotate-identifier", "--rekey", "--quiet"]).exit_code == 0
    # A host the new key was not yet copied to maps the person afresh under the old key.
    stale = property(lambda _: IdentifierKeys(old.all))
    monkeypatch.setattr(LedgerClass, "identifier_keys", stale)
    _post(client, tokens["jcp"], "/v1/consents", _consent_body(nhs))
    monkeypatch.undo()
    body = {"subject": {"nhs_number": nhs}, "reason": "recorded_in_error", "reference": "X8"}
    erased = client.post("/v1/subjects/erasures", json=body, headers=bearer(tokens["auditor"]))
    assert erased.status_code == 201, erased.get_json()
    assert erased.get_json()["count"] == 2
    monkeypatch.setattr(LedgerClass, "identifier_keys", stale)
    for _ in range(2):  # as the stale host, then as an up-to-date one
        found = client.get(
            "/v1/consents", query_string={"nhs_number": nhs}, headers=bearer(tokens["auditor"])
        ).get_json()
        assert found["consents"] == []
        monkeypatch.undo()


def test_an_erasure_refused_to_an_ig_lead_runs_the_same_queries_for_a_stranger(
    client: FlaskClient, tokens: Tokens, ledger: Ledger
) -> None:
    from tests.helpers import recorded_statements

    _post(client, tokens["jcp"], "/v1/consents", _consent_body(NHS[3]))  # not tt-leeds'
    ran = {}
    for who, nhs in (("known to another organisation", NHS[3]), ("stranger", NHS[4])):
        body = {"subject": {"nhs_number": nhs}, "reason": "recorded_in_error", "reference": "T1"}
        with recorded_statements(ledger) as seen:
            resp = client.post("/v1/subjects/erasures", json=body, headers=bearer(tokens["tt_ig"]))
        assert resp.status_code == 404
        ran[who] = [s.split(" WHERE")[0] for s in seen]
    assert ran["known to another organisation"] == ran["stranger"]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_person_with_entries_from_before_format_2_is_erased_whole(
    client: FlaskClient,
    tokens: Tokens,
    ledger: Ledger,
    runner: FlaskCliRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.services.log import log_store

    # A log begun before format 2: its entries about people are leaves in the clear.
    monkeypatch.setattr(log_store, "COMMITTED_TYPES", frozenset())
    consent = _post(client, tokens["tt"], "/v1/consents", _consent_body(NHS[0]))
    other = _post(client, tokens["tt"], "/v1/consents", _consent_body(NHS[1]))
    monkeypatch.undo()
    withdrawn = _post(
        client,
        tokens["tt"],
        f"/v1/consents/{consent['id']}/withdraw",
        {"reason": "person_withdrew"},
    )
    clear = client.get(
        f"/v1/log/entries/{consent['ledger']['index']}", headers=bearer(tokens["auditor"])
    ).get_json()
    assert clear["state"] == "clear"

    body = {"subject": {"nhs_number": NHS[0]}, "reason": "recorded_in_error", "reference": "X9"}
    erased = client.post("/v1/subjects/erasures", json=body, headers=bearer(tokens["auditor"]))
    assert erased.status_code == 201, erased.get_json()
    assert erased.get_json()["indexes"] == [
        consent["ledger"]["index"],
        withdrawn["ledger"]["index"],
    ]

    # The clear leaf stays (no leaf changes), but the service reads it no more, shows it to no
    # one but an auditor, and neither rebuild nor verify brings the consent back.
    entry = client.get(
        f"/v1/log/entries/{consent['ledger']['index']}", headers=bearer(tokens["auditor"])
    ).get_json()
    assert (entry["state"], entry["entry"]) == ("erased", None)
    refused = client.get(
        f"/v1/log/entries/{consent['ledger']['index']}", headers=bearer(tokens["ea_ig"])
    )
    assert refused.status_code == 403
    verified = runner.invoke(args=["verify"])
    assert verified.exit_code == 0, verified.output
    assert "(2 erased)" in verified.output
    assert runner.invoke(args=["rebuild"]).exit_code == 0
    checked = runner.invoke(args=["rebuild", "--check"])
    assert checked.exit_code == 0, checked.output
    found = client.get(
        "/v1/consents", query_string={"nhs_number": NHS[0]}, headers=bearer(tokens["auditor"])
    ).get_json()
    assert found["consents"] == []
    kept = client.get(
        "/v1/consents", query_string={"nhs_number": NHS[1]}, headers=bearer(tokens["auditor"])
    ).get_json()
    assert [c["id"] for c in kept["consents"]] == [other["id"]]
