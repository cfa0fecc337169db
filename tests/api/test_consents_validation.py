"""Recording, withdrawing and confirming consents and objections over HTTP: what a caller is told
when a request is refused, that a refused request writes nothing, that an NHS number is never
echoed back, and that ``Idempotency-Key`` makes a retry safe."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers, with_check_digit

# Confirmation (G6) reads the policy in force, as a deployment's would.
pytestmark = pytest.mark.usefixtures("policy")

PROBLEM = "application/problem+json"
EVIDENCE = "0123456789abcdef" * 4  # a SHA-256 in 64 lower-case hex digits
FUTURE = "2099-01-01T00:00:00Z"
RECORDER = "jcp-leeds-city"  # dwp: its consents need a health organisation's confirmation (G6)
HEALTH = "tt-leeds"


def first_without_a_check_digit() -> str:
    """Ten digits whose first nine need a check digit of 10: never a valid NHS number."""
    n = 999_000_000
    while with_check_digit(str(n)) is not None:
        n += 1
    return f"{n}0"


PERSON, OTHER_PERSON = valid_nhs_numbers(2)  # the 999 range is never issued to patients
PERSON_SPACED = f"{PERSON[:3]} {PERSON[3:6]} {PERSON[6:]}"
WRONG_CHECK_DIGIT = PERSON[:9] + str((int(PERSON[9]) + 1) % 10)
NO_CHECK_DIGIT_FITS = first_without_a_check_digit()


def test_the_test_numbers_follow_the_modulus_11_rule() -> None:
    assert with_check_digit("943476591") == "9434765919"  # the published test number
    assert with_check_digit("123456789") is None
    assert len({PERSON, OTHER_PERSON, WRONG_CHECK_DIGIT, NO_CHECK_DIGIT_FITS}) == 4
    assert all(len(n) == 10 for n in (PERSON, WRONG_CHECK_DIGIT, NO_CHECK_DIGIT_FITS))


# -- helpers ---------------------------------------------------------------------------------------


def log_size(client: FlaskClient) -> int:
    size = client.get("/healthz").get_json()["log_size"]
    assert isinstance(size, int)
    return size


def consent_body(**changes: Any) -> dict[str, Any]:
    """A valid written consent for PERSON; ``changes`` replace fields (None removes one)."""
    body: dict[str, Any] = {
        "subject": {"nhs_number": PERSON},
        "purpose": "referral",
        "recipients": [HEALTH, "ea-tt-leeds"],
        "data_categories": ["identity", "employment_status"],
        "form": "written",
        "evidence_sha256": EVIDENCE,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def assert_problem(
    resp: TestResponse, status: int, slug: str, fields: set[str] | None = None
) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.mimetype == PROBLEM
    body = resp.get_json()
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    assert body["title"]
    if fields is not None:
        named = {e["field"] for e in body.get("errors", [])}
        assert fields <= named, body
    assert isinstance(body, dict)
    return body


def assert_no_nhs_number(resp: TestResponse) -> None:
    for number in (PERSON, PERSON_SPACED, OTHER_PERSON, WRONG_CHECK_DIGIT):
        assert number not in resp.text
    for value in resp.headers.values():
        assert PERSON not in value


@pytest.fixture
def auth(make_token: Callable[..., str]) -> dict[str, str]:
    """A Jobcentre case system."""
    return bearer(make_token(RECORDER, "case_system"))


@pytest.fixture
def health_auth(make_token: Callable[..., str]) -> dict[str, str]:
    return bearer(make_token(HEALTH, "case_system"))


@pytest.fixture
def auditor(make_token: Callable[..., str]) -> dict[str, str]:
    return bearer(make_token(HEALTH, "auditor"))


def record(client: FlaskClient, auth: dict[str, str], **changes: Any) -> dict[str, Any]:
    resp = client.post("/v1/consents", json=consent_body(**changes), headers=auth)
    assert resp.status_code == 201, resp.text
    body = resp.get_json()
    assert isinstance(body, dict)
    return body


# -- recording a consent: every refusal names the field --------------------------------------------

BAD_CONSENTS: list[Any] = [
    # (the change to a valid body, fields that must be named, a word from the reason)
    pytest.param({"subject": None}, {"subject"}, "", id="no-subject"),
    pytest.param(
        {"subject": {"nhs_number": PERSON[:9]}}, {"subject.nhs_number"}, "10 digits", id="nhs-9"
    ),
    pytest.param(
        {"subject": {"nhs_number": PERSON + "1"}},
        {"subject.nhs_number"},
        "10 digits",
        id="nhs-11",
    ),
    pytest.param(
        {"subject": {"nhs_number": WRONG_CHECK_DIGIT}},
        {"subject.nhs_number"},
        "check digit",
        id="nhs-check-digit",
    ),
    pytest.param(
        {"subject": {"nhs_number": NO_CHECK_DIGIT_FITS}},
        {"subject.nhs_number"},
        "check digit",
        id="nhs-check-digit-10",
    ),
    pytest.param(
        {"subject": {"nhs_number": "943-476-5919"}},
        {"subject.nhs_number"},
        "digits",
        id="nhs-dashes",
    ),
    pytest.param(
        {"subject": {"nhs_number": "94347659l9"}}, {"subject.nhs_number"}, "digits", id="nhs-letter"
    ),
    pytest.param(
        {"subject": {"nhs_number": int(PERSON)}}, {"subject.nhs_number"}, "", id="nhs-not-string"
    ),
    pytest.param({"subject": {}}, {"subject"}, "exactly one", id="subject-empty"),
    pytest.param(
        {"subject": {"nhs_number": PERSON, "local_id": {"system": RECORDER, "value": "A1"}}},
        {"subject"},
        "exactly one",
        id="subject-both",
    ),
    pytest.param(
        {"subject": {"nhs": PERSON}}, {"subject.nhs"}, "Unknown field", id="subject-unknown-field"
    ),
    pytest.param(
        {"subject": {"local_id": {"system": "no-such-org", "value": "A1"}}},
        {"subject.local_id.system"},
        "not a registered organisation",
        id="local-id-unregistered-system",
    ),
    pytest.param(
        {"subject": {"local_id": {"system": RECORDER}}},
        {"subject.local_id.value"},
        "",
        id="local-id-no-value",
    ),
    pytest.param({"purpose": "marketing"}, {"purpose"}, "", id="unknown-purpose"),
    pytest.param({"recipients": []}, {"recipients"}, "", id="zero-recipients"),
    pytest.param(
        {"recipients": [HEALTH, "no-such-org"]},
        {"recipients.1"},
        "not a registered organisation",
        id="unregistered-recipient",
    ),
    pytest.param({"recipients": [HEALTH, HEALTH]}, {"recipients.1"}, "twice", id="recipient-twice"),
    pytest.param({"recipients": HEALTH}, {"recipients"}, "", id="recipients-not-a-list"),
    pytest.param({"data_categories": []}, {"data_categories"}, "", id="zero-categories"),
    pytest.param(
        {"data_categories": ["shoe_size"]}, {"data_categories.0"}, "", id="unknown-category"
    ),
    pytest.param(
        {"data_categories": ["identity", "identity"]},
        {"data_categories.1"},
        "twice",
        id="category-twice",
    ),
    pytest.param({"form": "oral"}, {"form"}, "", id="unknown-form"),
    pytest.param(
        {"evidence_sha256": None},
        {"evidence_sha256"},
        "required for a written consent: the SHA-256",
        id="written-no-hash",
    ),
    pytest.param(
        {"form": "electronic", "evidence_sha256": None},
        {"evidence_sha256"},
        "required for an electronic consent: the SHA-256",
        id="electronic-no-hash",
    ),
    pytest.param(
        {"evidence_sha256": EVIDENCE.upper()}, {"evidence_sha256"}, "hex", id="hash-upper-case"
    ),
    pytest.param(
        {"valid_from": "2098-01-01T00:00:00Z", "expires_at": "2097-01-01T00:00:00Z"},
        {"expires_at"},
        "valid_from",
        id="expires-before-valid-from",
    ),
    pytest.param(
        {"valid_from": FUTURE, "expires_at": FUTURE},
        {"expires_at"},
        "valid_from",
        id="expires-at-valid-from",
    ),
    pytest.param(
        {"expires_at": "2020-01-01T00:00:00Z"}, {"expires_at"}, "past", id="expires-in-the-past"
    ),
    pytest.param(
        {"valid_from": "2030-01-01T00:00:00"}, {"valid_from"}, "", id="valid-from-no-timezone"
    ),
    pytest.param({"recorded_by": HEALTH}, {"recorded_by"}, "Unknown", id="unknown-recorded-by"),
    pytest.param({"notes": "said yes"}, {"notes"}, "Unknown", id="unknown-field"),
    pytest.param(
        {"subject": None, "nhs_number": PERSON},
        {"subject", "nhs_number"},
        "Unknown",
        id="nhs-number-outside-subject",
    ),
]


@pytest.mark.parametrize(("changes", "fields", "reason"), BAD_CONSENTS)
def test_an_invalid_consent_is_refused_naming_the_field(
    client: FlaskClient,
    auth: dict[str, str],
    changes: dict[str, Any],
    fields: set[str],
    reason: str,
) -> None:
    before = log_size(client)
    resp = client.post("/v1/consents", json=consent_body(**changes), headers=auth)
    body = assert_problem(resp, 422, "invalid-request", fields)
    messages = " ".join(e["message"] for e in body["errors"] if e["field"] in fields)
    assert reason in messages
    assert all(e.get("location") == "json" for e in body["errors"])
    assert_no_nhs_number(resp)
    assert log_size(client) == before


def test_every_field_at_fault_is_named_at_once(client: FlaskClient, auth: dict[str, str]) -> None:
    """Also: purpose, recipients, data_categories and form are required."""
    before = log_size(client)
    resp = client.post(
        "/v1/consents",
        json={"subject": {"nhs_number": WRONG_CHECK_DIGIT}, "purpose": "x", "extra": 1},
        headers=auth,
    )
    assert_problem(
        resp,
        422,
        "invalid-request",
        {"subject.nhs_number", "purpose", "recipients", "data_categories", "form", "extra"},
    )
    assert_no_nhs_number(resp)
    assert log_size(client) == before


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({}, id="written"),
        pytest.param({"form": "electronic"}, id="electronic"),
        pytest.param({"form": "verbal", "evidence_sha256": None}, id="verbal-without-hash"),
        pytest.param({"subject": {"nhs_number": PERSON_SPACED}}, id="nhs-number-with-spaces"),
        pytest.param(
            {"subject": {"local_id": {"system": RECORDER, "value": "CLAIM-0042"}}}, id="local-id"
        ),
        pytest.param(
            {"valid_from": "2020-01-01T00:00:00Z", "expires_at": FUTURE}, id="valid-from-past"
        ),
        pytest.param(
            {"purpose": "evaluation", "recipients": ["eval-northern-uni"]}, id="evaluation"
        ),
    ],
)
def test_a_valid_consent_is_recorded_with_a_ledger_receipt(
    client: FlaskClient, auth: dict[str, str], changes: dict[str, Any]
) -> None:
    before = log_size(client)
    sent = consent_body(**changes)
    resp = client.post("/v1/consents", json=sent, headers=auth)
    assert resp.status_code == 201, resp.text
    assert resp.mimetype == "application/json"
    assert "Idempotent-Replayed" not in resp.headers
    body = resp.get_json()
    assert body["status"] == "active"
    assert body["recorded_by"] == RECORDER  # the caller's organisation
    assert body["purpose"] == sent["purpose"]
    assert body["recipients"] == sent["recipients"]
    assert body["data_categories"] == sent["data_categories"]
    assert body["form"] == sent["form"]
    assert body["evidence_sha256"] == sent.get("evidence_sha256")
    assert body["subject_ref"].startswith("sub_")
    assert [e["event"] for e in body["history"]] == ["granted"]
    receipt = body["ledger"]
    assert receipt["index"] == before
    assert len(receipt["leaf_hash"]) == 64
    assert f"\n{before + 1}\n" in receipt["checkpoint"]  # a checkpoint that includes the entry
    assert log_size(client) == before + 1
    assert_no_nhs_number(resp)


def test_an_nhs_number_with_spaces_is_the_same_person(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    plain = record(client, auth)
    spaced = record(client, auth, subject={"nhs_number": PERSON_SPACED})
    other = record(client, auth, subject={"nhs_number": OTHER_PERSON})
    assert plain["subject_ref"] == spaced["subject_ref"]
    assert other["subject_ref"] != plain["subject_ref"]


# -- the NHS number is never echoed back -----------------------------------------------------------


def test_no_response_or_log_entry_repeats_the_nhs_number(
    client: FlaskClient,
    auth: dict[str, str],
    health_auth: dict[str, str],
    auditor: dict[str, str],
) -> None:
    responses = []
    consent = client.post("/v1/consents", json=consent_body(), headers=auth)
    responses.append(consent)
    cid = consent.get_json()["id"]
    responses.append(client.post(f"/v1/consents/{cid}/confirm", headers=health_auth))
    responses.append(client.post(f"/v1/consents/{cid}/confirm", headers=health_auth))  # 409
    responses.append(client.post(f"/v1/consents/{cid}/withdraw", headers=auth))
    responses.append(client.post(f"/v1/consents/{cid}/withdraw", headers=auth))  # 409
    subject = {"nhs_number": PERSON_SPACED}
    objection = client.post(
        "/v1/objections", json={"subject": subject, "scope": "direct_care"}, headers=auth
    )
    responses.append(objection)
    responses.append(
        client.post(
            "/v1/objections", json={"subject": subject, "scope": "direct_care"}, headers=auth
        )
    )  # 409
    responses.append(
        client.post(f"/v1/objections/{objection.get_json()['id']}/withdraw", headers=auth)
    )
    responses.append(client.get(f"/v1/consents?nhs_number={PERSON}", headers=auditor))
    responses.append(
        client.get("/v1/consents", query_string={"nhs_number": PERSON_SPACED}, headers=auditor)
    )
    assert [r.status_code for r in responses] == [201, 200, 409, 200, 409, 201, 409, 200, 200, 200]
    size = log_size(client)
    for index in range(size):
        entry = client.get(f"/v1/log/entries/{index}", headers=auditor)
        assert entry.status_code == 200
        responses.append(entry)
        assert PERSON.encode() not in base64.b64decode(entry.get_json()["leaf"])
    for resp in responses:
        assert_no_nhs_number(resp)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"recipients": [PERSON]}, "recipients.0", id="as-a-recipient"),
        pytest.param(
            {"subject": {"local_id": {"system": PERSON, "value": "A1"}}},
            "subject.local_id.system",
            id="as-a-local-id-system",
        ),
    ],
)
def test_an_nhs_number_put_in_the_wrong_field_is_not_echoed(
    client: FlaskClient, auth: dict[str, str], changes: dict[str, Any], field: str
) -> None:
    resp = client.post("/v1/consents", json=consent_body(**changes), headers=auth)
    assert_problem(resp, 422, "invalid-request", {field})
    # An NHS number put in an organisation field (an easy mapping mistake) must not be echoed:
    # the field path already says which entry is at fault.
    assert_no_nhs_number(resp)


# -- withdrawing a consent ------------------------------------------------------------------------


def test_a_withdrawal_records_its_reason_code(client: FlaskClient, auth: dict[str, str]) -> None:
    for reason in [
        "person_withdrew",
        "recorded_in_error",
        "superseded",
        "no_longer_needed",
        "other",
        None,
    ]:
        cid = record(client, auth)["id"]
        before = log_size(client)
        kwargs: dict[str, Any] = {} if reason is None else {"json": {"reason": reason}}
        resp = client.post(f"/v1/consents/{cid}/withdraw", headers=auth, **kwargs)
        assert resp.status_code == 200, (reason, resp.text)
        body = resp.get_json()
        assert body["status"] == "withdrawn"
        assert body["withdrawn_at"]
        assert body["notify"] == []
        assert body["ledger"]["index"] == before
        withdrawn = body["history"][-1]
        assert withdrawn["event"] == "withdrawn"
        assert withdrawn["organisation"] == RECORDER
        assert withdrawn.get("reason") == reason
        assert log_size(client) == before + 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"reason": "she changed her mind"}, "reason", id="free-text-reason"),
        pytest.param({"reason": 3}, "reason", id="reason-not-a-string"),
        pytest.param({"why": "other"}, "why", id="unknown-field"),
    ],
)
def test_a_withdrawal_with_a_bad_body_is_refused(
    client: FlaskClient, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    cid = record(client, auth)["id"]
    before = log_size(client)
    resp = client.post(f"/v1/consents/{cid}/withdraw", json=body, headers=auth)
    assert_problem(resp, 422, "invalid-request", {field})
    assert "changed her mind" not in resp.text  # free text is neither stored nor repeated
    assert log_size(client) == before


# -- objections ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"subject": {"nhs_number": PERSON}}, "scope", id="no-scope"),
        pytest.param(
            {"subject": {"nhs_number": PERSON}, "scope": "everything"}, "scope", id="bad-scope"
        ),
        pytest.param(
            {"subject": {"nhs_number": WRONG_CHECK_DIGIT}, "scope": "direct_care"},
            "subject.nhs_number",
            id="bad-nhs-number",
        ),
        pytest.param(
            {
                "subject": {"local_id": {"system": "no-such-org", "value": "1"}},
                "scope": "direct_care",
            },
            "subject.local_id.system",
            id="unregistered-local-system",
        ),
        pytest.param(
            {"subject": {"nhs_number": PERSON}, "scope": "direct_care", "note": "x"},
            "note",
            id="unknown-field",
        ),
    ],
)
def test_an_invalid_objection_is_refused_naming_the_field(
    client: FlaskClient, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    before = log_size(client)
    resp = client.post("/v1/objections", json=body, headers=auth)
    assert_problem(resp, 422, "invalid-request", {field})
    assert_no_nhs_number(resp)
    assert log_size(client) == before


@pytest.mark.parametrize("scope", ["direct_care", "national_data_opt_out"])
def test_a_second_active_objection_of_the_same_scope_is_a_conflict(
    client: FlaskClient, auth: dict[str, str], scope: str
) -> None:
    other_scope = {"direct_care": "national_data_opt_out"}.get(scope, "direct_care")
    first = client.post(
        "/v1/objections", json={"subject": {"nhs_number": PERSON}, "scope": scope}, headers=auth
    )
    assert first.status_code == 201, first.text
    assert first.get_json()["status"] == "active"
    before = log_size(client)

    again = client.post(
        "/v1/objections",
        json={"subject": {"nhs_number": PERSON_SPACED}, "scope": scope},
        headers=auth,
    )
    body = assert_problem(again, 409, "already-objected")
    assert body["objection_id"] == first.get_json()["id"]
    assert log_size(client) == before

    # another scope, or another person, is a new objection
    for subject, sc in ((PERSON, other_scope), (OTHER_PERSON, scope)):
        resp = client.post(
            "/v1/objections", json={"subject": {"nhs_number": subject}, "scope": sc}, headers=auth
        )
        assert resp.status_code == 201, resp.text
    # once withdrawn, the person may object again
    oid = first.get_json()["id"]
    assert client.post(f"/v1/objections/{oid}/withdraw", headers=auth).status_code == 200
    resp = client.post(
        "/v1/objections", json={"subject": {"nhs_number": PERSON}, "scope": scope}, headers=auth
    )
    assert resp.status_code == 201, resp.text


# -- state conflicts and unknown ids ---------------------------------------------------------------

WITHDRAW = "/v1/consents/{cid}/withdraw"
CONFIRM = "/v1/consents/{cid}/confirm"
WITHDRAW_OBJECTION = "/v1/objections/{oid}/withdraw"


@pytest.mark.parametrize(
    ("done_before", "request_", "status", "slug"),
    [
        # (steps that succeed first, the refused request, its status and problem type)
        pytest.param(
            [(WITHDRAW, "recorder")],
            (WITHDRAW, "recorder"),
            409,
            "already-withdrawn",
            id="withdraw-twice",
        ),
        pytest.param(
            [(WITHDRAW, "recorder")],
            (WITHDRAW, "portal"),
            409,
            "already-withdrawn",
            id="portal-withdraws-a-withdrawn-consent",
        ),
        pytest.param(
            [(CONFIRM, "health")], (CONFIRM, "health"), 409, "already-confirmed", id="confirm-twice"
        ),
        pytest.param(
            [(CONFIRM, "health")],
            (CONFIRM, "other_health"),
            409,
            "already-confirmed",
            id="confirmed-by-another-health-org",
        ),
        pytest.param(
            [(WITHDRAW, "recorder")],
            (CONFIRM, "health"),
            409,
            "already-withdrawn",
            id="confirm-withdrawn",
        ),
        pytest.param(
            [(WITHDRAW_OBJECTION, "recorder")],
            (WITHDRAW_OBJECTION, "recorder"),
            409,
            "already-withdrawn",
            id="withdraw-objection-twice",
        ),
        pytest.param(
            [],
            ("/v1/consents/cns_unknown/withdraw", "recorder"),
            404,
            "not-found",
            id="withdraw-unknown",
        ),
        pytest.param(
            [],
            ("/v1/consents/cns_unknown/confirm", "health"),
            404,
            "not-found",
            id="confirm-unknown",
        ),
        pytest.param(
            [],
            ("/v1/objections/obj_unknown/withdraw", "recorder"),
            404,
            "not-found",
            id="withdraw-unknown-objection",
        ),
    ],
)
def test_a_request_that_conflicts_with_the_state_changes_nothing(
    client: FlaskClient,
    make_token: Callable[..., str],
    auth: dict[str, str],
    done_before: list[tuple[str, str]],
    request_: tuple[str, str],
    status: int,
    slug: str,
) -> None:
    callers = {
        "recorder": auth,
        "portal": bearer(make_token("asc-leeds", "patient_portal")),
        "health": bearer(make_token(HEALTH, "case_system")),
        "other_health": bearer(make_token("cmht-leeds-west", "ig_lead")),
    }
    # Both health organisations are named: only a named one may confirm (G6).
    ids = {"cid": record(client, auth, recipients=[HEALTH, "cmht-leeds-west"])["id"]}
    objection = client.post(
        "/v1/objections",
        json={"subject": {"nhs_number": PERSON}, "scope": "direct_care"},
        headers=auth,
    )
    ids["oid"] = objection.get_json()["id"]
    for path, who in done_before:
        assert client.post(path.format(**ids), headers=callers[who]).status_code == 200
    before = log_size(client)
    path, who = request_
    resp = client.post(path.format(**ids), headers=callers[who])
    assert_problem(resp, status, slug)
    assert log_size(client) == before


@pytest.mark.parametrize(
    ("recorder", "status", "said"),
    [
        ("jcp-leeds-city", 200, None),  # dwp
        ("whp-leeds", 200, None),  # employment_dwp
        ("ea-tt-leeds", 409, "recorded by an employment_nhs organisation"),
        ("cmht-leeds-west", 409, "recorded by a health organisation"),
        ("asc-leeds", 409, "recorded by a social_care organisation"),
    ],
)
def test_only_consents_recorded_by_dwp_or_dwp_funded_providers_need_confirming(
    client: FlaskClient,
    make_token: Callable[..., str],
    recorder: str,
    status: int,
    said: str | None,
) -> None:
    cid = record(client, bearer(make_token(recorder, "case_system")))["id"]
    health = bearer(make_token(HEALTH, "ig_lead"))
    before = log_size(client)
    resp = client.post(f"/v1/consents/{cid}/confirm", headers=health)
    if status == 409:
        assert said in assert_problem(resp, 409, "not-confirmable")["detail"]
        assert log_size(client) == before
        return
    assert resp.status_code == 200, resp.text
    body = resp.get_json()
    assert body["confirmed_by"] == HEALTH
    assert body["confirmed_at"]
    assert body["status"] == "active"
    assert [e["event"] for e in body["history"]] == ["granted", "confirmed"]
    assert body["ledger"]["index"] == before
    assert log_size(client) == before + 1


@pytest.mark.parametrize("backend", BOTH, indirect=True)
@pytest.mark.parametrize(
    ("confirmer", "status", "slug"),
    [
        (HEALTH, 200, None),  # health, and named by the consent
        ("cmht-leeds-west", 403, "forbidden"),  # health, but the consent does not name it
        ("ea-tt-leeds", 403, "forbidden"),  # named, but not a health organisation
    ],
)
def test_only_a_health_organisation_the_consent_names_may_confirm_it(
    client: FlaskClient,
    make_token: Callable[..., str],
    auth: dict[str, str],
    confirmer: str,
    status: int,
    slug: str | None,
) -> None:
    cid = record(client, auth, recipients=[HEALTH, "ea-tt-leeds"])["id"]
    confirming = bearer(make_token(confirmer, "case_system"))
    before = log_size(client)
    resp = client.post(f"/v1/consents/{cid}/confirm", headers=confirming)
    stored = client.get(f"/v1/consents?nhs_number={PERSON}", headers=auth).get_json()
    (consent,) = (c for c in stored["consents"] if c["id"] == cid)
    if slug is None:
        assert resp.status_code == status, resp.text
        assert consent["confirmed_by"] == confirmer
        assert log_size(client) == before + 1
        return
    problem = assert_problem(resp, status, slug)
    assert confirmer in problem["detail"]
    assert consent["confirmed_by"] is None
    assert log_size(client) == before


# -- reading: a bad query names the parameter ------------------------------------------------------

QUERY_PARAMETERS = {"nhs_number", "local_system", "local_value"}


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        # (the query, parameters of which the problem must name at least one)
        pytest.param({}, QUERY_PARAMETERS, id="neither"),
        pytest.param(
            {"nhs_number": PERSON, "local_system": RECORDER, "local_value": "A1"},
            QUERY_PARAMETERS,
            id="both",
        ),
        pytest.param({"local_system": RECORDER}, {"local_value"}, id="system-without-value"),
        pytest.param({"local_value": "A1"}, {"local_system"}, id="value-without-system"),
        pytest.param({"nhs_number": WRONG_CHECK_DIGIT}, {"nhs_number"}, id="check-digit"),
        pytest.param({"nhs_number": PERSON[:9]}, {"nhs_number"}, id="nine-digits"),
    ],
)
def test_a_bad_query_is_a_400_naming_the_parameter(
    client: FlaskClient,
    auditor: dict[str, str],
    query: dict[str, str],
    fields: set[str],
) -> None:
    resp = client.get("/v1/consents", query_string=query, headers=auditor)
    body = assert_problem(resp, 400, "invalid-argument")
    assert_no_nhs_number(resp)
    assert all(e.get("location") == "query" for e in body["errors"])
    named = {e["field"] for e in body["errors"]}
    # With neither or both forms (or half a local identifier) the problem still names a
    # query parameter, not a "(body)" this request does not have.
    assert named <= QUERY_PARAMETERS, body
    assert named & fields, body


@pytest.mark.parametrize(
    ("path", "query", "unknown"),
    [
        # A misspelt filter must not answer with everything, unfiltered.
        pytest.param("/v1/disclosures", "form_org=tt-leeds", "form_org", id="misspelt-filter"),
        pytest.param("/v1/consents", f"nhs_number={PERSON}&x=1", "x", id="extra-argument"),
        pytest.param("/v1/disclosures", "from_org=tt-leeds&=", '""', id="argument-without-name"),
    ],
)
def test_a_query_argument_the_operation_does_not_take_is_refused_by_name(
    client: FlaskClient, auditor: dict[str, str], path: str, query: str, unknown: str
) -> None:
    resp = client.get(f"{path}?{query}", headers=auditor)
    body = assert_problem(resp, 400, "invalid-argument")
    assert body["errors"] == [{"field": unknown, "location": "query", "message": "Unknown field."}]


def test_a_person_never_seen_has_an_empty_history(
    client: FlaskClient, auth: dict[str, str], auditor: dict[str, str]
) -> None:
    record(client, auth)
    before = log_size(client)
    resp = client.get("/v1/consents", query_string={"nhs_number": OTHER_PERSON}, headers=auditor)
    assert resp.status_code == 200
    assert resp.get_json()["consents"] == []
    assert resp.get_json()["objections"] == []
    assert log_size(client) == before  # looking someone up creates nothing
    assert_no_nhs_number(resp)


# -- Idempotency-Key: a retry returns the first response and writes nothing ----------------------

KEY = "retry-7f3c2a"


@pytest.fixture
def setup(
    client: FlaskClient, make_token: Callable[..., str], auth: dict[str, str]
) -> dict[str, Any]:
    """A confirmable consent and a direct-care objection for PERSON, and who acts on them."""
    cid = record(client, auth)["id"]
    objection = client.post(
        "/v1/objections",
        json={"subject": {"nhs_number": PERSON}, "scope": "direct_care"},
        headers=auth,
    )
    assert objection.status_code == 201
    return {
        "cid": cid,
        "oid": objection.get_json()["id"],
        "recorder": auth,
        "health": bearer(make_token(HEALTH, "case_system")),
        "auditor": bearer(make_token(HEALTH, "auditor")),
    }


def history(client: FlaskClient, setup: dict[str, Any]) -> Any:
    resp = client.get("/v1/consents", query_string={"nhs_number": PERSON}, headers=setup["auditor"])
    assert resp.status_code == 200
    return resp.get_json()


RETRIABLE = [
    # (path, body, who, status of the first response, status of a repeat without the key)
    pytest.param("/v1/consents", consent_body(), "recorder", 201, 201, id="record-consent"),
    pytest.param(
        WITHDRAW, {"reason": "person_withdrew"}, "recorder", 200, 409, id="withdraw-consent"
    ),
    pytest.param(WITHDRAW, None, "recorder", 200, 409, id="withdraw-consent-no-body"),
    pytest.param(CONFIRM, None, "health", 200, 409, id="confirm-consent"),
    pytest.param(
        "/v1/objections",
        {"subject": {"nhs_number": PERSON}, "scope": "national_data_opt_out"},
        "recorder",
        201,
        409,
        id="record-objection",
    ),
    pytest.param(WITHDRAW_OBJECTION, None, "recorder", 200, 409, id="withdraw-objection"),
]


@pytest.mark.parametrize(("path", "body", "who", "status", "unkeyed_status"), RETRIABLE)
def test_a_retry_with_the_same_key_returns_the_first_response_and_writes_nothing(
    client: FlaskClient,
    setup: dict[str, Any],
    path: str,
    body: dict[str, Any] | None,
    who: str,
    status: int,
    unkeyed_status: int,
) -> None:
    url = path.format(**setup)
    headers = {**setup[who], "Idempotency-Key": KEY}
    kwargs: dict[str, Any] = {} if body is None else {"json": body}
    first = client.post(url, headers=headers, **kwargs)
    assert first.status_code == status, first.text
    assert "Idempotent-Replayed" not in first.headers
    size, seen = log_size(client), history(client, setup)

    for _ in range(2):
        retry = client.post(url, headers=headers, **kwargs)
        assert retry.status_code == status, retry.text  # not a 409: the first answer again
        assert retry.headers.get("Idempotent-Replayed") == "true"
        assert retry.mimetype == "application/json"
        assert retry.get_json() == first.get_json()
        assert_no_nhs_number(retry)
    assert log_size(client) == size
    assert history(client, setup) == seen

    # without the key the same request is a new request: written again, or refused as a conflict
    again = client.post(url, headers=setup[who], **kwargs)
    assert again.status_code == unkeyed_status, again.text
    assert "Idempotent-Replayed" not in again.headers
    assert log_size(client) == size + (unkeyed_status == 201)


@pytest.mark.parametrize(
    ("second_path", "second_body"),
    [
        pytest.param("/v1/consents", consent_body(purpose="case_conferencing"), id="other-body"),
        pytest.param(
            "/v1/objections",
            {"subject": {"nhs_number": PERSON}, "scope": "direct_care"},
            id="other-endpoint",
        ),
        pytest.param(WITHDRAW, None, id="other-endpoint-no-body"),
    ],
)
def test_the_same_key_with_a_different_request_is_refused(
    client: FlaskClient,
    setup: dict[str, Any],
    second_path: str,
    second_body: dict[str, Any] | None,
) -> None:
    headers = {**setup["recorder"], "Idempotency-Key": KEY}
    first = client.post("/v1/consents", json=consent_body(), headers=headers)
    assert first.status_code == 201
    size, seen = log_size(client), history(client, setup)

    kwargs: dict[str, Any] = {} if second_body is None else {"json": second_body}
    resp = client.post(second_path.format(**setup), headers=headers, **kwargs)
    body = assert_problem(resp, 422, "idempotency-key-reused", {"Idempotency-Key"})
    assert body["errors"][0]["location"] == "headers"
    assert_no_nhs_number(resp)
    assert log_size(client) == size
    assert history(client, setup) == seen

    # the first request can still be retried
    retry = client.post("/v1/consents", json=consent_body(), headers=headers)
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.get_json() == first.get_json()


def test_keys_are_per_client(
    client: FlaskClient, make_token: Callable[..., str], auth: dict[str, str]
) -> None:
    colleague = bearer(make_token(RECORDER, "case_system"))  # same organisation, another client
    before = log_size(client)
    mine = client.post(
        "/v1/consents", json=consent_body(), headers={**auth, "Idempotency-Key": KEY}
    )
    theirs = client.post(
        "/v1/consents", json=consent_body(), headers={**colleague, "Idempotency-Key": KEY}
    )
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.get_json()["id"] != mine.get_json()["id"]
    assert log_size(client) == before + 2


def test_a_refused_request_is_not_remembered_under_its_key(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    headers = {**auth, "Idempotency-Key": KEY}
    before = log_size(client)
    bad = consent_body(recipients=["no-such-org"])
    for _ in range(2):
        assert_problem(
            client.post("/v1/consents", json=bad, headers=headers), 422, "invalid-request"
        )
    assert log_size(client) == before
    # nothing was written under the key, so the corrected request goes through with it
    good = client.post("/v1/consents", json=consent_body(), headers=headers)
    assert good.status_code == 201, good.text
    assert log_size(client) == before + 1


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("has space", id="space"),
        pytest.param("k" * 201, id="too-long"),
    ],
)
def test_a_malformed_key_is_refused(client: FlaskClient, auth: dict[str, str], key: str) -> None:
    before = log_size(client)
    resp = client.post(
        "/v1/consents", json=consent_body(), headers={**auth, "Idempotency-Key": key}
    )
    body = assert_problem(resp, 400, "invalid-argument", {"Idempotency-Key"})
    assert body["errors"][0]["location"] == "headers"
    assert log_size(client) == before
