"""Obligations and notifications (issue 15, item 1): a withdrawal, an objection and an erasure
tell every organisation that must act, in the same transaction; each reads its own feed and
acknowledges, and the acknowledgement is logged."""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.policy import Policy
from tests.helpers import BOTH, bearer, form_token, ig_sign_in
from tests.nhs import valid_nhs_numbers

NHS = valid_nhs_numbers(4, start=943_479_000)
Tokens = dict[str, str]
EVALUATOR = "eval-northern-uni"


@pytest.fixture
def tokens(policy: Policy, make_token: Callable[..., str]) -> Tokens:
    return {
        "tt": make_token("tt-leeds", "case_system"),
        "tt_ig": make_token("tt-leeds", "ig_lead"),
        "ea": make_token("ea-tt-leeds", "case_system"),
        "eval": make_token(EVALUATOR, "case_system"),
        "eval_ig": make_token(EVALUATOR, "ig_lead"),
        "cmht": make_token("cmht-leeds-west", "case_system"),
        "portal": make_token("tt-leeds", "patient_portal"),
        "auditor": make_token("tt-leeds", "auditor"),
    }


def _text(html_fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", html_fragment)).split())


def _post(client: FlaskClient, token: str, path: str, body: dict[str, Any] | None = None) -> Any:
    resp = client.post(path, json=body or {}, headers=bearer(token))
    assert resp.status_code in (200, 201), (path, resp.get_json())
    return resp.get_json()


def _feed(client: FlaskClient, token: str, **query: Any) -> dict[str, Any]:
    resp = client.get("/v1/notifications", query_string=query, headers=bearer(token))
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


def _shared_for_evaluation(client: FlaskClient, tokens: Tokens, nhs: str) -> dict[str, Any]:
    """A signed evaluation consent, and outcome measures disclosed to the evaluator under it."""
    subject = {"nhs_number": nhs}
    consent = _post(
        client,
        tokens["tt"],
        "/v1/consents",
        {
            "subject": subject,
            "purpose": "evaluation",
            "recipients": [EVALUATOR],
            "data_categories": ["outcome_measures"],
            "form": "written",
            "evidence_sha256": "b" * 64,
        },
    )
    decision = _post(
        client,
        tokens["tt"],
        "/v1/decisions",
        {
            "subject": subject,
            "from": "tt-leeds",
            "to": EVALUATOR,
            "purpose": "evaluation",
            "data_categories": ["outcome_measures"],
        },
    )
    assert decision["decision"] == "permit", decision
    disclosure = _post(
        client,
        tokens["tt"],
        "/v1/disclosures",
        {"decision_id": decision["id"], "data_categories": ["outcome_measures"]},
    )
    return {"consent": consent, "disclosure": disclosure}


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_withdrawing_evaluation_consent_obliges_the_evaluator_to_erase_and_it_says_so(
    client: FlaskClient, tokens: Tokens
) -> None:
    shared = _shared_for_evaluation(client, tokens, NHS[0])
    consent, disclosure = shared["consent"], shared["disclosure"]
    # The person withdraws through the portal: the evaluator must erase, the recorder note it.
    withdrawn = _post(
        client,
        tokens["portal"],
        f"/v1/consents/{consent['id']}/withdraw",
        {"reason": "person_withdrew"},
    )

    (erase,) = _feed(client, tokens["eval"])["items"]
    assert erase["obligation"] == "cease_processing_and_erase"
    assert erase["state"] == "open"
    assert erase["cause"] == {
        "type": "consent.withdrawn",
        "ledger_index": withdrawn["ledger"]["index"],
    }
    assert (erase["consent_id"], erase["purpose"]) == (consent["id"], "evaluation")
    assert [d["id"] for d in erase["disclosures"]] == [disclosure["id"]]
    assert erase["disclosures"][0]["data_categories"] == ["outcome_measures"]
    # Nothing that names the person: no NHS number, no subject reference.
    text = json.dumps(erase)
    assert NHS[0] not in text
    assert consent["subject_ref"] not in text
    (note,) = _feed(client, tokens["tt"])["items"]
    assert (note["obligation"], note["disclosures"]) == ("note_withdrawal", [])
    assert _feed(client, tokens["ea"])["items"] == []  # received nothing under it

    # Erased is the only way to close it, and only with evidence.
    path = f"/v1/notifications/{erase['id']}/acknowledge"
    for body, field in (
        ({"outcome": "noted"}, "outcome"),
        ({"outcome": "erased"}, "evidence_sha256"),
        ({"outcome": "erased", "evidence_sha256": "not-a-hash"}, "evidence_sha256"),
    ):
        bad = client.post(path, json=body, headers=bearer(tokens["eval"]))
        assert bad.status_code == 422, bad.get_json()
        assert field in {e["field"] for e in bad.get_json()["errors"]}
    elsewhere = client.post(path, json={"outcome": "noted"}, headers=bearer(tokens["tt"]))
    assert elsewhere.status_code == 404

    evidence = hashlib.sha256(b"destruction certificate 42").hexdigest()
    done = _post(client, tokens["eval"], path, {"outcome": "erased", "evidence_sha256": evidence})
    assert done["state"] == "acknowledged"
    assert done["acknowledgement"]["evidence_sha256"] == evidence
    assert done["acknowledgement"]["ledger_index"] == done["ledger"]["index"]
    entry = client.get(
        f"/v1/log/entries/{done['ledger']['index']}", headers=bearer(tokens["auditor"])
    ).get_json()
    assert entry["state"] == "clear"
    assert entry["entry"]["type"] == "obligation.acknowledged"
    assert entry["entry"]["data"]["obligation_id"] == erase["id"]
    assert entry["entry"]["data"]["cause_index"] == withdrawn["ledger"]["index"]
    again = client.post(path, json={"outcome": "erased", "evidence_sha256": evidence},
                        headers=bearer(tokens["eval"]))  # fmt: skip
    assert again.status_code == 409
    assert again.get_json()["type"] == "/problems/already-acknowledged"
    assert _feed(client, tokens["eval"])["items"] == []
    assert [n["id"] for n in _feed(client, tokens["eval"], state="acknowledged")["items"]] == [
        erase["id"]
    ]

    # The person's page says who was told and who confirmed the destruction.
    link = _post(
        client, tokens["portal"], "/v1/subjects/access-links", {"subject": {"nhs_number": NHS[0]}}
    )
    page = client.get(link["url"].split("localhost", 1)[-1]).get_data(as_text=True)
    told = _text(page.split("Who has been told that you withdrew it", 1)[1].split("</ul>", 1)[0])
    assert "Northern University evaluation team (example), told" in told
    assert "confirmed on" in told
    assert "that it destroyed what it held" in told
    # The subject access report says, per disclosure, that its recipient was told and confirmed.
    ig_sign_in(client, tokens["auditor"])
    csrf = form_token(client.get("/ig/report").text)
    report = client.post("/ig/report", data={"csrf_token": csrf, "nhs_number": NHS[0]})
    row = _text(report.get_data(as_text=True).split("Who received this person", 1)[1])
    assert "consent withdrawn: told" in row
    assert "erasure confirmed" in row
    # The dashboards: the evaluator has nothing waiting; the recorder must still note it.
    for token, waiting in (("eval_ig", False), ("tt_ig", True)):
        dashboard_client = client.application.test_client()
        ig_sign_in(dashboard_client, tokens[token])
        board = _text(dashboard_client.get("/ig/dashboard").get_data(as_text=True))
        section = board.split("Still to act on", 1)[1].split("Decisions on a legal basis", 1)[0]
        assert ("note withdrawal" in section) is waiting, section
        assert ("Nothing is waiting" in section) is not waiting


def test_an_objection_tells_those_who_received_data_on_implied_consent(
    client: FlaskClient, tokens: Tokens
) -> None:
    subject = {"nhs_number": NHS[1]}
    decision = _post(
        client,
        tokens["tt"],
        "/v1/decisions",
        {
            "subject": subject,
            "from": "tt-leeds",
            "to": "cmht-leeds-west",
            "purpose": "referral",
            "data_categories": ["identity"],
        },
    )
    assert decision["decision"] == "permit"  # implied consent for direct care (P1)
    disclosure = _post(
        client,
        tokens["tt"],
        "/v1/disclosures",
        {"decision_id": decision["id"], "data_categories": ["identity"]},
    )
    objection = _post(
        client, tokens["tt"], "/v1/objections", {"subject": subject, "scope": "direct_care"}
    )
    (told,) = _feed(client, tokens["cmht"])["items"]
    assert told["obligation"] == "notify_recipient"
    assert told["cause"]["type"] == "objection.recorded"
    assert told["objection_id"] == objection["id"]
    assert [d["id"] for d in told["disclosures"]] == [disclosure["id"]]
    assert (
        _post(
            client,
            tokens["cmht"],
            f"/v1/notifications/{told['id']}/acknowledge",
            {"outcome": "noted"},
        )["state"]
        == "acknowledged"
    )


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_an_erasure_obliges_every_recipient_to_erase_naming_no_one(
    client: FlaskClient, tokens: Tokens
) -> None:
    shared = _shared_for_evaluation(client, tokens, NHS[2])
    body = {"subject": {"nhs_number": NHS[2]}, "reason": "recorded_in_error", "reference": "E1"}
    erased = _post(client, tokens["auditor"], "/v1/subjects/erasures", body)
    (erase,) = _feed(client, tokens["eval"])["items"]
    assert erase["obligation"] == "cease_processing_and_erase"
    assert erase["cause"] == {"type": "subject.erased", "ledger_index": erased["ledger"]["index"]}
    assert [d["id"] for d in erase["disclosures"]] == [shared["disclosure"]["id"]]


def test_the_feed_is_paged_with_a_cursor_newest_last(client: FlaskClient, tokens: Tokens) -> None:
    for nhs in NHS[:3]:
        consent = _post(
            client,
            tokens["tt"],
            "/v1/consents",
            {
                "subject": {"nhs_number": nhs},
                "purpose": "referral",
                "recipients": ["ea-tt-leeds"],
                "data_categories": ["identity"],
                "form": "verbal",
            },
        )
        _post(client, tokens["portal"], f"/v1/consents/{consent['id']}/withdraw")
    first = _feed(client, tokens["tt"], limit=2)
    assert len(first["items"]) == 2
    assert first["next"] == first["items"][-1]["cursor"]
    rest = _feed(client, tokens["tt"], limit=2, after=first["next"])
    assert len(rest["items"]) == 1
    assert rest["next"] is None
    every = [n["consent_id"] for n in first["items"] + rest["items"]]
    assert len(set(every)) == 3
    bad = client.get(
        "/v1/notifications", query_string={"state": "closed"}, headers=bearer(tokens["tt"])
    )
    assert bad.status_code == 400
    assert bad.get_json()["errors"][0]["field"] == "state"


def test_an_objection_tells_those_who_received_data_on_a_consent_it_now_overrides(
    client: FlaskClient, tokens: Tokens
) -> None:
    subject = {"nhs_number": NHS[3]}
    _post(
        client,
        tokens["tt"],
        "/v1/consents",
        {
            "subject": subject,
            "purpose": "referral",
            "recipients": ["cmht-leeds-west"],
            "data_categories": ["identity"],
            "form": "verbal",
        },
    )
    decision = _post(
        client,
        tokens["tt"],
        "/v1/decisions",
        {
            "subject": subject,
            "from": "tt-leeds",
            "to": "cmht-leeds-west",
            "purpose": "referral",
            "data_categories": ["identity"],
        },
    )
    assert decision["decision"] == "permit"
    disclosure = _post(
        client,
        tokens["tt"],
        "/v1/disclosures",
        {"decision_id": decision["id"], "data_categories": ["identity"]},
    )
    assert disclosure["basis"] == "consent"  # the consent, given before any objection
    _post(client, tokens["tt"], "/v1/objections", {"subject": subject, "scope": "direct_care"})
    (told,) = _feed(client, tokens["cmht"])["items"]
    assert [d["id"] for d in told["disclosures"]] == [disclosure["id"]]


def test_one_event_makes_one_obligation_per_organisation(
    client: FlaskClient, tokens: Tokens
) -> None:
    subject = {"nhs_number": NHS[0]}
    consent = _post(
        client,
        tokens["tt"],
        "/v1/consents",
        {
            "subject": subject,
            "purpose": "sms_contact",
            "recipients": ["tt-leeds"],
            "data_categories": ["contact_details"],
            "form": "verbal",
        },
    )
    decision = _post(
        client,
        tokens["tt"],
        "/v1/decisions",
        {
            "subject": subject,
            "from": "tt-leeds",
            "to": "tt-leeds",
            "purpose": "sms_contact",
            "data_categories": ["contact_details"],
        },
    )
    _post(
        client,
        tokens["tt"],
        "/v1/disclosures",
        {"decision_id": decision["id"], "data_categories": ["contact_details"]},
    )
    _post(client, tokens["portal"], f"/v1/consents/{consent['id']}/withdraw")
    (only,) = _feed(client, tokens["tt"])["items"]
    assert only["obligation"] == "notify_recipient"


def test_an_erasure_keeps_what_was_still_to_do_and_names_no_one(
    client: FlaskClient, tokens: Tokens
) -> None:
    shared = _shared_for_evaluation(client, tokens, NHS[1])
    _post(client, tokens["portal"], f"/v1/consents/{shared['consent']['id']}/withdraw")
    (note,) = _feed(client, tokens["tt"])["items"]
    body = {"subject": {"nhs_number": NHS[1]}, "reason": "recorded_in_error", "reference": "E2"}
    _post(client, tokens["auditor"], "/v1/subjects/erasures", body)
    # The recorder must still note the withdrawal, under the id it was given.
    assert [n["id"] for n in _feed(client, tokens["tt"])["items"]] == [note["id"]]
    done = _post(
        client, tokens["tt"], f"/v1/notifications/{note['id']}/acknowledge", {"outcome": "noted"}
    )
    assert done["state"] == "acknowledged"
    # The evaluator has both: erase what it received (the withdrawal), and erase it (the
    # erasure); neither names the person.
    causes = sorted(n["cause"]["type"] for n in _feed(client, tokens["eval"])["items"])
    assert causes == ["consent.withdrawn", "subject.erased"]
