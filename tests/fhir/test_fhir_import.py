"""Historical consents imported as a FHIR R4 transaction Bundle (issue 17 item 2): all or
nothing, each consent's original date kept, read back the same through FHIR and /v1."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.fhir import codes, intake
from app.policy import Policy
from app.services.container import Ledger
from tests.fhir.test_fhir_write import ODD_VALUES, _set, consent_resource, element_paths, org
from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers
from tests.support.fhir_check import check_resource, check_uk_core_consent

PERSON, OTHER, THIRD = valid_nhs_numbers(3, start=943_476_800)
Tokens = dict[str, str]


@pytest.fixture
def tokens(policy: Policy, make_token: Callable[..., str]) -> Tokens:
    return {
        "tt": make_token("tt-leeds", "case_system"),
        "portal": make_token("asc-leeds", "patient_portal"),
        "auditor": make_token("asc-leeds", "auditor"),
    }


def historical(nhs: str, given: str, start: str | None, end: str | None) -> dict[str, Any]:
    resource = consent_resource(nhs, dateTime=given)
    resource["provision"]["actor"] = [resource["provision"]["actor"][1]]  # ea-tt-leeds
    period = {k: v for k, v in (("start", start), ("end", end)) if v}
    if period:
        resource["provision"]["period"] = period
    else:
        del resource["provision"]["period"]
    return resource


def transaction(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "POST", "url": "Consent"}} for r in resources
        ],
    }


def post_bundle(client: FlaskClient, token: str, bundle: Any, **headers: str) -> Any:
    return client.post(
        "/fhir/r4",
        json=bundle,
        headers={**bearer(token), "Content-Type": "application/fhir+json", **headers},
    )


def search(client: FlaskClient, token: str, nhs: str) -> dict[str, Any]:
    resp = client.get(
        f"/fhir/r4/Consent?patient:identifier={codes.NHS_NUMBER_SYSTEM}|{nhs}",
        headers=bearer(token),
    )
    assert resp.status_code == 200
    return check_resource(resp.get_json(force=True))


def v1_consents(client: FlaskClient, token: str, nhs: str) -> list[dict[str, Any]]:
    resp = client.get(f"/v1/consents?nhs_number={nhs}", headers=bearer(token))
    return resp.get_json()["consents"]  # type: ignore[no-any-return]


def log_size(client: FlaskClient) -> int:
    return int(client.get("/v1/log/checkpoint").get_data(as_text=True).splitlines()[1])


# (sent: given, period start, period end) -> (v1 given_at, valid_from, expires_at)
HISTORY = [
    (
        (PERSON, "2024-03-01", "2024-03-01", "2025-03-01"),  # expired since: history
        (
            "2024-03-01T00:00:00.000000Z",
            "2024-03-01T00:00:00.000000Z",
            "2025-03-01T00:00:00.000000Z",
        ),
    ),
    (
        (OTHER, "2025-06-01T09:30:00+01:00", None, "2099-01-01T00:00:00Z"),
        ("2025-06-01T08:30:00.000000Z", None, "2099-01-01T00:00:00.000000Z"),
    ),
]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_bundle_of_historical_consents_reads_back_the_same_through_fhir_and_v1(
    client: FlaskClient, tokens: Tokens
) -> None:
    sent = [historical(*s) for s, _ in HISTORY]
    resp = post_bundle(client, tokens["tt"], transaction(*sent))
    assert resp.status_code == 200, resp.get_json(force=True)
    assert PERSON not in resp.get_data(as_text=True)
    answer = check_resource(resp.get_json(force=True))
    assert answer["type"] == "transaction-response"
    assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created"] * 2
    for (source, (given_at, valid_from, expires_at)), entry, resource in zip(
        HISTORY, answer["entry"], sent, strict=True
    ):
        nhs = source[0]
        created = entry["resource"]
        version = created["meta"]["versionId"]
        assert entry["response"]["location"] == f"Consent/{created['id']}/_history/{version}"
        assert entry["response"]["etag"] == f'W/"{version}"'
        # Read back as FHIR: the same resource, UK Core, given when the import said.
        (found,) = search(client, tokens["tt"], nhs)["entry"]
        assert found["resource"] == created
        check_uk_core_consent(created)
        assert created["dateTime"] == given_at
        # The reverse mapping of what was read back is what was sent (the same consent).
        back, out = intake.consent_request(created), intake.consent_request(resource)
        for body in (back.body, out.body):
            body.pop("subject")
        assert {k: v for k, v in back.body.items() if k not in ("valid_from", "expires_at")} == {
            k: v for k, v in out.body.items() if k not in ("valid_from", "expires_at")
        }
        # And through /v1.
        (v1,) = v1_consents(client, tokens["tt"], nhs)
        assert codes.fhir_id(v1["id"]) == created["id"]
        assert (v1["given_at"], v1["valid_from"], v1["expires_at"]) == (
            given_at,
            valid_from,
            expires_at,
        )
        assert (v1["purpose"], v1["recipients"], v1["data_categories"]) == (
            "referral",
            ["ea-tt-leeds"],
            ["identity", "work_needs"],
        )
        assert (v1["form"], v1["evidence_sha256"]) == ("written", "cd" * 32)
        assert v1["recorded_at"] > given_at  # logged now, given then


def test_bad_entries_reject_the_whole_bundle_naming_each_position(
    client: FlaskClient, tokens: Tokens
) -> None:
    good = historical(PERSON, "2024-03-01", None, None)
    bad_purpose = historical(OTHER, "2024-03-01", None, None)
    bad_purpose["provision"]["purpose"][0]["code"] = "gossip"
    bad_recipient = historical(THIRD, "2024-03-01", None, None)
    bad_recipient["provision"]["actor"][0]["reference"] = org("nobody-here")
    size = log_size(client)
    resp = post_bundle(client, tokens["tt"], transaction(good, bad_purpose, bad_recipient))
    assert resp.status_code == 422
    outcome = check_resource(resp.get_json(force=True))
    assert [i["expression"] for i in outcome["issue"]] == [
        ["Bundle.entry[1].resource.provision.purpose[0]"],
        ["Bundle.entry[2].resource.provision.actor[0].reference.identifier.value"],
    ]
    assert "is not a registered organisation id" in outcome["issue"][1]["diagnostics"]
    # Nothing recorded, not even the good entry.
    assert log_size(client) == size
    assert v1_consents(client, tokens["tt"], PERSON) == []


@pytest.mark.parametrize(
    ("bundle", "element"),
    [
        ({"resourceType": "Bundle", "type": "batch", "entry": []}, "Bundle.type"),
        (consent_resource(), "Bundle"),
        (
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "resource": consent_resource(),
                        "request": {"method": "PUT", "url": "Consent/x"},
                    }
                ],
            },
            "Bundle.entry[0].request",
        ),
    ],
)
def test_anything_but_a_transaction_of_consent_posts_is_refused(
    client: FlaskClient, tokens: Tokens, bundle: dict[str, Any], element: str
) -> None:
    resp = post_bundle(client, tokens["tt"], bundle)
    assert resp.status_code in (400, 422)
    (issue,) = check_resource(resp.get_json(force=True))["issue"]
    assert issue["expression"] == [element]


def test_a_consent_given_before_an_objection_in_force_is_refused(
    client: FlaskClient, tokens: Tokens, ledger: Ledger
) -> None:
    objected = client.post(
        "/v1/objections",
        headers=bearer(tokens["portal"]),
        json={"subject": {"nhs_number": PERSON}, "scope": "direct_care"},
    )
    assert objected.status_code == 201
    objected_at = objected.get_json()["recorded_at"]
    resp = post_bundle(
        client, tokens["tt"], transaction(historical(PERSON, "2024-03-01", None, None))
    )
    assert resp.status_code == 422
    (issue,) = check_resource(resp.get_json(force=True))["issue"]
    assert issue["expression"] == ["Bundle.entry[0].resource.dateTime"]
    assert objected_at in issue["diagnostics"]
    assert "record it afresh if the person agrees again" in issue["diagnostics"]
    # Given after the objection (a day later, imported the day after): the person agreed
    # again, and the consent stands.
    real = ledger.clock
    ledger.clock = lambda: real() + timedelta(days=2)
    later = (real() + timedelta(days=1)).isoformat()
    resp = post_bundle(client, tokens["tt"], transaction(historical(PERSON, later, None, None)))
    assert resp.status_code == 200, resp.get_json(force=True)


def test_an_idempotency_key_replays_the_import_and_records_once(
    client: FlaskClient, tokens: Tokens
) -> None:
    bundle = transaction(historical(PERSON, "2024-03-01", None, None))
    first = post_bundle(client, tokens["tt"], bundle, **{"Idempotency-Key": "import-1"})
    again = post_bundle(client, tokens["tt"], bundle, **{"Idempotency-Key": "import-1"})
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json(force=True) == first.get_json(force=True)
    assert len(v1_consents(client, tokens["tt"], PERSON)) == 1


def test_only_a_case_system_imports(client: FlaskClient, tokens: Tokens) -> None:
    bundle = transaction(historical(PERSON, "2024-03-01", None, None))
    assert post_bundle(client, tokens["auditor"], bundle).status_code == 403


def test_an_entry_refused_on_its_own_still_rejects_the_bundle(
    client: FlaskClient, tokens: Tokens
) -> None:
    bad = historical(OTHER, "someday", None, None)
    resp = post_bundle(
        client, tokens["tt"], transaction(historical(PERSON, "2024-03-01", None, None), bad)
    )
    assert resp.status_code == 422
    (issue,) = check_resource(resp.get_json(force=True))["issue"]
    assert issue["expression"] == ["Bundle.entry[1].resource.dateTime"]
    assert v1_consents(client, tokens["tt"], PERSON) == []


# (given, period start, period end): each ends before, or as, it was given (now when there is
# no dateTime), so it was never in force; R4 per-1 too (start before end).
NEVER_IN_FORCE = [
    (None, None, "2024-03-01"),
    ("2025-06-01", None, "2024-03-01"),
    ("2025-06-01", None, "2025-06-01"),
    ("2024-01-01", "2024-06-01", "2024-03-01"),
]


@pytest.mark.parametrize(("given", "start", "end"), NEVER_IN_FORCE)
def test_an_import_that_ends_before_it_was_given_is_refused_naming_the_end(
    client: FlaskClient, tokens: Tokens, given: str | None, start: str | None, end: str
) -> None:
    resource = historical(PERSON, given or "unused", start, end)
    if given is None:
        del resource["dateTime"]
    resp = post_bundle(client, tokens["tt"], transaction(resource))
    assert resp.status_code == 422, resp.get_json(force=True)
    (issue,) = check_resource(resp.get_json(force=True))["issue"]
    assert issue["expression"] == ["Bundle.entry[0].resource.provision.period.end"]
    assert v1_consents(client, tokens["tt"], PERSON) == []


# (the objection in force, the purpose of the consent given before it): the policy never lets
# this objection override a consent for this purpose (only direct_care overrides, and only
# the consent rules with overridden_by_later_objection: policies/default.yaml), so the engine
# uses the consent as it is, and the import records it.
NOT_OVERRIDING = [
    ("national_data_opt_out", "referral"),
    ("direct_care", "evaluation"),
]


@pytest.mark.parametrize(("scope", "purpose"), NOT_OVERRIDING)
def test_an_objection_that_never_overrides_the_consent_does_not_block_its_import(
    client: FlaskClient, tokens: Tokens, scope: str, purpose: str
) -> None:
    objected = client.post(
        "/v1/objections",
        headers=bearer(tokens["portal"]),
        json={"subject": {"nhs_number": PERSON}, "scope": scope},
    )
    assert objected.status_code == 201
    resource = historical(PERSON, "2024-03-01", None, None)
    resource["provision"]["purpose"] = [{"system": codes.PURPOSE_SYSTEM, "code": purpose}]
    resp = post_bundle(client, tokens["tt"], transaction(resource))
    assert resp.status_code == 200, resp.get_json(force=True)
    assert [c["purpose"] for c in v1_consents(client, tokens["tt"], PERSON)] == [purpose]


def odd_entries() -> list[dict[str, Any]]:
    """A historical Consent with each element in turn replaced by each odd JSON value."""
    good = historical(PERSON, "2024-03-01", None, "2099-01-01")
    return [_set(good, path, odd) for path in element_paths(good) for odd in ODD_VALUES]


def test_odd_json_at_any_element_of_an_entry_is_a_client_error_never_a_500(
    client: FlaskClient, tokens: Tokens, make_token: Callable[..., str]
) -> None:
    """Every shape check is total in a Bundle too: one entry per element and odd value, and
    the Bundle itself odd at each of its own elements."""
    entries = odd_entries()
    for start in range(0, len(entries), 100):  # the HTTP cap and the body limit
        resp = post_bundle(client, tokens["tt"], transaction(*entries[start : start + 100]))
        assert resp.status_code in (400, 422), resp.get_data(as_text=True)[:500]
    bundle = transaction(historical(PERSON, "2024-03-01", None, None))
    # Another client of the organisation: each client has 600 writes a minute.
    token = make_token("tt-leeds", "case_system")
    for path in element_paths(bundle):
        for odd in ODD_VALUES:
            resp = post_bundle(client, token, _set(bundle, path, odd))
            assert resp.status_code in (200, 400, 422), (path, odd, resp.get_data(as_text=True))
