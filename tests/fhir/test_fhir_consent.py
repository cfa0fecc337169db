"""Consents as FHIR R4 (issue 17 item 1): search, read and history, mapped to UK Core Consent,
with v1's visibility; and the CodeSystems the mapping refers to."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.errors import PROBLEM_TYPES
from app.fhir import codes
from app.policy import Policy
from app.vocabulary import (
    CONSENT_FORMS,
    DATA_CATEGORIES,
    OBJECTION_SCOPES,
    PURPOSES,
    WITHDRAWAL_REASONS,
)
from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers
from tests.support.fhir_check import check_resource, check_uk_core_consent

PERSON, OTHER = valid_nhs_numbers(2, start=943_476_600)
EVIDENCE = "ab" * 32
Tokens = dict[str, str]


def search_path(nhs: str) -> str:
    return f"/fhir/r4/Consent?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}"


@pytest.fixture
def tokens(policy: Policy, make_token: Callable[..., str]) -> Tokens:
    return {
        "whp": make_token("whp-leeds", "case_system"),  # DWP-funded: needs confirmation (G6)
        "whp_ig": make_token("whp-leeds", "ig_lead"),
        "tt": make_token("tt-leeds", "case_system"),  # health, named: may confirm
        "asc": make_token("asc-leeds", "case_system"),  # unrelated
        "portal": make_token("asc-leeds", "patient_portal"),
        "auditor": make_token("asc-leeds", "auditor"),
    }


def record(client: FlaskClient, token: str, nhs: str = PERSON, **over: Any) -> dict[str, Any]:
    body = {
        "subject": {"nhs_number": nhs},
        "purpose": "referral",
        "recipients": ["tt-leeds", "ea-tt-leeds"],
        "data_categories": ["identity", "work_needs"],
        "form": "written",
        "evidence_sha256": EVIDENCE,
        "expires_at": "2099-01-01T00:00:00Z",
        **over,
    }
    resp = client.post("/v1/consents", json=body, headers=bearer(token))
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


def fhir_get(client: FlaskClient, path: str, token: str) -> Any:
    resp = client.get(path, headers=bearer(token))
    assert resp.mimetype == "application/fhir+json"
    return resp


def log_entry(resource: dict[str, Any]) -> dict[str, Any]:
    (ext,) = [e for e in resource["extension"] if e["url"] == codes.LOG_ENTRY_EXTENSION]
    return {
        e["url"]: next(v for k, v in e.items() if k.startswith("value")) for e in ext["extension"]
    }


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_consent_found_by_nhs_number_is_uk_core_and_never_echoes_it(
    client: FlaskClient, tokens: Tokens
) -> None:
    v1 = record(client, tokens["whp"])
    resp = fhir_get(client, search_path(PERSON), tokens["whp"])
    assert resp.status_code == 200
    assert PERSON not in resp.get_data(as_text=True)
    bundle = check_resource(resp.get_json(force=True))
    assert (bundle["type"], bundle["total"]) == ("searchset", 1)
    (entry,) = bundle["entry"]
    consent = entry["resource"]
    check_uk_core_consent(consent)
    assert entry["search"] == {"mode": "match"}
    assert consent["id"] == v1["id"].replace("_", "-")
    assert entry["fullUrl"] == f"http://localhost/fhir/r4/Consent/{consent['id']}"
    assert consent["status"] == "active"
    assert consent["patient"]["identifier"] == {
        "system": codes.SUBJECT_ID_SYSTEM,
        "value": v1["subject_ref"],
    }
    assert consent["dateTime"] == v1["recorded_at"]
    recorder = {"system": codes.ORGANISATION_ID_SYSTEM, "value": "whp-leeds"}
    assert [p["identifier"] for p in consent["performer"]] == [recorder]
    assert [o["identifier"] for o in consent["organization"]] == [recorder]
    assert consent["category"][1]["coding"] == [
        {"system": codes.CONSENT_FORM_SYSTEM, "code": "written"}
    ]
    assert consent["sourceAttachment"]["extension"] == [
        {"url": codes.SHA256_EXTENSION, "valueString": EVIDENCE}
    ]
    assert "hash" not in consent["sourceAttachment"]  # SHA-1 by definition: not ours
    (policy,) = consent["policy"]
    assert policy["uri"].startswith(codes.POLICY_URN_PREFIX)
    provision = consent["provision"]
    assert provision["type"] == "permit"
    assert provision["period"] == {"start": v1["recorded_at"], "end": v1["expires_at"]}
    assert [a["role"]["coding"][0]["code"] for a in provision["actor"]] == ["IRCP", "IRCP"]
    assert [a["reference"]["identifier"]["value"] for a in provision["actor"]] == [
        "tt-leeds",
        "ea-tt-leeds",
    ]
    assert provision["purpose"] == [
        {"system": codes.PURPOSE_SYSTEM, "code": "referral"},
        {"system": codes.PURPOSE_OF_USE_SYSTEM, "code": "COC"},
    ]
    assert provision["class"] == [
        {"system": codes.DATA_CATEGORY_SYSTEM, "code": "identity"},
        {"system": codes.DATA_CATEGORY_SYSTEM, "code": "work_needs"},
    ]
    assert log_entry(consent) == {
        "index": v1["ledger"]["index"],
        "leafHash": v1["ledger"]["leaf_hash"],
    }
    assert consent["meta"]["versionId"] == str(v1["ledger"]["index"])


def test_a_verbal_consent_has_no_source_attachment(client: FlaskClient, tokens: Tokens) -> None:
    record(client, tokens["whp"], form="verbal", evidence_sha256=None, expires_at=None)
    (entry,) = fhir_get(client, search_path(PERSON), tokens["whp"]).get_json(force=True)["entry"]
    check_uk_core_consent(entry["resource"])
    assert "sourceAttachment" not in entry["resource"]
    assert "end" not in entry["resource"]["provision"]["period"]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_confirmation_and_withdrawal_are_versions_in_the_history(
    client: FlaskClient, tokens: Tokens
) -> None:
    v1 = record(client, tokens["whp"])
    confirmed = client.post(f"/v1/consents/{v1['id']}/confirm", headers=bearer(tokens["tt"]))
    assert confirmed.status_code == 200, confirmed.get_json()
    withdrawn = client.post(
        f"/v1/consents/{v1['id']}/withdraw",
        json={"reason": "person_withdrew"},
        headers=bearer(tokens["whp"]),
    )
    assert withdrawn.status_code == 200, withdrawn.get_json()
    rid = v1["id"].replace("_", "-")

    resp = fhir_get(client, f"/fhir/r4/Consent/{rid}/_history", tokens["whp"])
    assert resp.status_code == 200
    bundle = check_resource(resp.get_json(force=True))
    assert (bundle["type"], bundle["total"]) == ("history", 3)
    versions = [e["resource"] for e in bundle["entry"]]
    for version in versions:
        check_uk_core_consent(version)
    # newest first: withdrawn, confirmed, recorded
    assert [v["status"] for v in versions] == ["inactive", "active", "active"]
    indexes = [
        e["ledger_index"]
        for e in client.get(
            "/v1/consents", query_string={"nhs_number": PERSON}, headers=bearer(tokens["whp"])
        ).get_json()["consents"][0]["history"]
    ]
    assert [int(v["meta"]["versionId"]) for v in versions] == sorted(indexes, reverse=True)
    assert [log_entry(v)["index"] for v in versions] == sorted(indexes, reverse=True)
    assert [e["request"]["method"] for e in bundle["entry"]] == ["PUT", "PUT", "POST"]
    assert [e["response"]["etag"] for e in bundle["entry"]] == [
        f'W/"{i}"' for i in sorted(indexes, reverse=True)
    ]
    urls = {e["url"] for e in versions[1]["extension"]}
    assert codes.CONFIRMATION_EXTENSION in urls
    assert codes.CONFIRMATION_EXTENSION not in {e["url"] for e in versions[2]["extension"]}
    assert {"url": codes.WITHDRAWAL_REASON_EXTENSION,
            "valueCoding": {"system": codes.WITHDRAWAL_REASON_SYSTEM, "code": "person_withdrew"}
            } in versions[0]["extension"]  # fmt: skip

    # A read answers the newest version, with its version as the ETag.
    read = fhir_get(client, f"/fhir/r4/Consent/{rid}", tokens["whp"])
    assert read.status_code == 200
    assert check_resource(read.get_json(force=True)) == versions[0]
    assert read.headers["ETag"] == f'W/"{versions[0]["meta"]["versionId"]}"'
    assert read.headers["Last-Modified"].endswith("GMT")
    # The search shows the newest version too.
    (entry,) = fhir_get(client, search_path(PERSON), tokens["whp"]).get_json(force=True)["entry"]
    assert entry["resource"] == versions[0]
    # Each version is read on its own (vread), as the history shows it.
    for version in versions:
        path = f"/fhir/r4/Consent/{rid}/_history/{version['meta']['versionId']}"
        vread = fhir_get(client, path, tokens["whp"])
        assert vread.status_code == 200, vread.get_json(force=True)
        assert check_resource(vread.get_json(force=True)) == version
        assert vread.headers["ETag"] == f'W/"{version["meta"]["versionId"]}"'


@pytest.mark.parametrize("version", ["1", "0", "x", "-1", "99999"])
def test_a_version_the_consent_never_had_is_not_found(
    client: FlaskClient, tokens: Tokens, version: str
) -> None:
    v1 = record(client, tokens["whp"])
    rid = v1["id"].replace("_", "-")
    resp = fhir_get(client, f"/fhir/r4/Consent/{rid}/_history/{version}", tokens["whp"])
    assert resp.status_code == 404
    assert check_resource(resp.get_json(force=True))["resourceType"] == "OperationOutcome"


def test_a_consent_withdrawn_as_recorded_in_error_is_entered_in_error(
    client: FlaskClient, tokens: Tokens
) -> None:
    v1 = record(client, tokens["whp"])
    client.post(
        f"/v1/consents/{v1['id']}/withdraw",
        json={"reason": "recorded_in_error"},
        headers=bearer(tokens["whp"]),
    )
    read = fhir_get(client, f"/fhir/r4/Consent/{v1['id'].replace('_', '-')}", tokens["whp"])
    assert check_resource(read.get_json(force=True))["status"] == "entered-in-error"


# caller -> whether GET /v1/consents lists the consent (recorded by whp-leeds, naming tt-leeds
# and ea-tt-leeds) for that caller
VISIBILITY = [
    ("whp", True),  # recorder
    ("whp_ig", True),
    ("tt", True),  # named recipient
    ("asc", False),  # unrelated organisation
    ("portal", True),  # whole record
    ("auditor", True),
]


@pytest.mark.parametrize(("caller", "sees"), VISIBILITY)
def test_search_read_and_history_show_what_v1_shows(
    client: FlaskClient, tokens: Tokens, caller: str, sees: bool
) -> None:
    v1 = record(client, tokens["whp"])
    listed = client.get(
        "/v1/consents", query_string={"nhs_number": PERSON}, headers=bearer(tokens[caller])
    ).get_json()["consents"]
    assert [c["id"] for c in listed] == ([v1["id"]] if sees else [])

    token = tokens[caller]
    rid = v1["id"].replace("_", "-")
    bundle = fhir_get(client, search_path(PERSON), token).get_json(force=True)
    assert [e["resource"]["id"] for e in check_resource(bundle).get("entry", [])] == (
        [rid] if sees else []
    )
    version = v1["history"][0]["ledger_index"]
    for path in (
        f"/fhir/r4/Consent/{rid}",
        f"/fhir/r4/Consent/{rid}/_history",
        f"/fhir/r4/Consent/{rid}/_history/{version}",
    ):
        resp = fhir_get(client, path, token)
        assert resp.status_code == (200 if sees else 404)
        check_resource(resp.get_json(force=True))


def test_an_unknown_person_and_an_unknown_consent_look_like_an_unseen_one(
    client: FlaskClient, tokens: Tokens
) -> None:
    bundle = fhir_get(client, search_path(OTHER), tokens["auditor"]).get_json(force=True)
    assert check_resource(bundle)["total"] == 0
    for path in ("/fhir/r4/Consent/cns-0f1e2d3c4b5a6978a796a5b4c3d2e1f0", "/fhir/r4/Consent/x"):
        resp = fhir_get(client, path, tokens["auditor"])
        assert resp.status_code == 404
        assert check_resource(resp.get_json(force=True))["issue"][0]["code"] == "not-found"


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_an_erased_persons_consents_are_gone_as_for_a_stranger(
    client: FlaskClient, tokens: Tokens
) -> None:
    v1 = record(client, tokens["whp"])
    rid = v1["id"].replace("_", "-")
    assert fhir_get(client, f"/fhir/r4/Consent/{rid}", tokens["auditor"]).status_code == 200
    erased = client.post(
        "/v1/subjects/erasures",
        json={
            "subject": {"nhs_number": PERSON},
            "reference": "SAR-2026-0042",
            "reason": "recorded_in_error",
        },
        headers=bearer(tokens["whp_ig"]),
    )
    assert erased.status_code == 201, erased.get_json()
    version = v1["history"][0]["ledger_index"]
    for path in (
        f"/fhir/r4/Consent/{rid}",
        f"/fhir/r4/Consent/{rid}/_history",
        f"/fhir/r4/Consent/{rid}/_history/{version}",
    ):
        assert fhir_get(client, path, tokens["auditor"]).status_code == 404
    bundle = fhir_get(client, search_path(PERSON), tokens["auditor"]).get_json(force=True)
    assert bundle["total"] == 0


# -- CodeSystems --

EXPECTED_CODES = {
    "purpose": set(PURPOSES),
    "data-category": set(DATA_CATEGORIES),
    "consent-form": set(CONSENT_FORMS),
    "withdrawal-reason": set(WITHDRAWAL_REASONS),
    "objection-scope": set(OBJECTION_SCOPES),
}


@pytest.mark.parametrize("cs_id", [*EXPECTED_CODES, "obligation", "problem-type"])
def test_each_code_system_is_served_complete(
    client: FlaskClient, tokens: Tokens, policy: Policy, cs_id: str
) -> None:
    resp = fhir_get(client, f"/fhir/r4/CodeSystem/{cs_id}", tokens["asc"])
    assert resp.status_code == 200
    cs = check_resource(resp.get_json(force=True))
    assert cs["url"] == f"{codes.CANONICAL_BASE}/CodeSystem/{cs_id}"
    assert cs["content"] == "complete"
    served = {c["code"] for c in cs["concept"]}
    if cs_id == "problem-type":
        assert served == set(PROBLEM_TYPES)
    elif cs_id == "obligation":
        in_policy = {o for rule in policy.rules for o in rule.obligations}
        assert in_policy | {"notify_recipient", "cease_processing_and_erase"} <= served
    else:
        assert served == EXPECTED_CODES[cs_id]
    if cs_id == "data-category":
        tiers = {c["code"]: c["property"][0]["valueCode"] for c in cs["concept"]}
        assert tiers == {c: policy.categories[c] for c in DATA_CATEGORIES}


def test_every_code_of_ours_a_consent_uses_is_in_a_served_code_system(
    client: FlaskClient, tokens: Tokens
) -> None:
    v1 = record(client, tokens["whp"])
    client.post(
        f"/v1/consents/{v1['id']}/withdraw", json={"reason": "other"}, headers=bearer(tokens["whp"])
    )
    consent = fhir_get(client, search_path(PERSON), tokens["whp"]).get_json(force=True)["entry"][0]

    def codings(value: Any) -> list[dict[str, Any]]:
        if isinstance(value, dict):
            own = [value] if {"system", "code"} <= set(value) else []
            return own + [c for v in value.values() for c in codings(v)]
        if isinstance(value, list):
            return [c for v in value for c in codings(v)]
        return []

    ours = [c for c in codings(consent) if c["system"].startswith(codes.CANONICAL_BASE)]
    assert len(ours) == 5  # form, withdrawal reason, purpose, two categories
    for coding in ours:
        cs_id = coding["system"].rsplit("/", 1)[1]
        cs = fhir_get(client, f"/fhir/r4/CodeSystem/{cs_id}", tokens["whp"]).get_json(force=True)
        assert coding["code"] in {c["code"] for c in cs["concept"]}, coding


def object_to_sharing(client: FlaskClient, token: str, scope: str) -> dict[str, Any]:
    resp = client.post(
        "/v1/objections",
        json={"subject": {"nhs_number": PERSON}, "scope": scope},
        headers=bearer(token),
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
@pytest.mark.parametrize("scope", ["direct_care", "national_data_opt_out"])
def test_an_objection_is_a_deny_consent_beside_the_consents_it_overrides(
    client: FlaskClient, tokens: Tokens, scope: str
) -> None:
    """v1 tells every client of a person's objections beside their consents (G3): a client
    seeing only the consent, active, would share what the engine now refuses."""
    record(client, tokens["whp"])
    objection = object_to_sharing(client, tokens["portal"], scope)
    rid = objection["id"].replace("_", "-")
    bundle = check_resource(
        fhir_get(client, search_path(PERSON), tokens["tt"]).get_json(force=True)
    )
    shown = [e["resource"] for e in bundle["entry"]]
    assert bundle["total"] == 2
    assert [(r["provision"]["type"], r["status"]) for r in shown] == [
        ("permit", "active"),
        ("deny", "active"),
    ]
    denial = shown[1]
    assert denial["id"] == rid
    assert rid.startswith("obj-")
    assert denial["scope"]["coding"][0]["code"] == "patient-privacy"
    assert {"system": codes.OBJECTION_SCOPE_SYSTEM, "code": scope} in [
        c for category in denial["category"] for c in category["coding"]
    ]
    assert log_entry(denial)["index"] == objection["ledger"]["index"]
    assert PERSON not in json.dumps(bundle)

    # Withdrawn, it is a new version, inactive: read, history and vread as a consent's.
    withdrawn = client.post(
        f"/v1/objections/{objection['id']}/withdraw", headers=bearer(tokens["portal"])
    )
    assert withdrawn.status_code == 200, withdrawn.get_json()
    read = check_resource(
        fhir_get(client, f"/fhir/r4/Consent/{rid}", tokens["tt"]).get_json(force=True)
    )
    assert (read["status"], read["provision"]["type"]) == ("inactive", "deny")
    history = check_resource(
        fhir_get(client, f"/fhir/r4/Consent/{rid}/_history", tokens["tt"]).get_json(force=True)
    )
    assert [e["resource"]["status"] for e in history["entry"]] == ["inactive", "active"]
    first = history["entry"][1]["resource"]
    vread = fhir_get(
        client, f"/fhir/r4/Consent/{rid}/_history/{first['meta']['versionId']}", tokens["tt"]
    )
    assert check_resource(vread.get_json(force=True)) == first


@pytest.mark.parametrize(("caller", "recorder_shown"), [("tt", False), ("portal", True)])
def test_every_reader_sees_an_objection_and_only_some_who_recorded_it(
    client: FlaskClient, tokens: Tokens, caller: str, recorder_shown: bool
) -> None:
    """As v1: every client deciding about a share must know of an objection (G3), but which
    organisation recorded it would tell an unrelated one where the person is treated."""
    objection = object_to_sharing(client, tokens["whp"], "direct_care")
    v1 = client.get(
        "/v1/consents", query_string={"nhs_number": PERSON}, headers=bearer(tokens[caller])
    ).get_json()["objections"]
    assert (v1[0]["recorded_by"] is not None) == recorder_shown
    (entry,) = fhir_get(client, search_path(PERSON), tokens[caller]).get_json(force=True)["entry"]
    denial = check_resource(entry["resource"])
    assert ("performer" in denial) == recorder_shown
    # Nor the person's reference, which would let it follow them through other lists (v1).
    assert ("patient" in denial) == recorder_shown
    assert ("whp-leeds" in json.dumps(denial)) == recorder_shown
    read = fhir_get(client, f"/fhir/r4/Consent/{objection['id'].replace('_', '-')}", tokens[caller])
    assert check_resource(read.get_json(force=True)) == denial
