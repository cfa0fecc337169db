"""Regressions from review: leaks between organisations, stale replays, odd input, repairs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import marshmallow as ma
import pytest
from flask.testing import FlaskClient, FlaskCliRunner

from app.api.disclosures import to_csv
from app.policy import Policy
from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers

NHS = valid_nhs_numbers(3, start=943_476_900)


@pytest.fixture
def tok(policy: Policy, make_token: Callable[..., str]) -> dict[str, str]:
    return {
        "tt": make_token("tt-leeds", "case_system"),
        "tt_ig": make_token("tt-leeds", "ig_lead"),
        "employer": make_token("employer-acme-logistics", "case_system"),
        "portal": make_token("tt-leeds", "patient_portal"),
    }


def _consent(client: FlaskClient, token: str, nhs: str, **over: Any) -> dict[str, Any]:
    body = {
        "subject": {"nhs_number": nhs},
        "purpose": "referral",
        "recipients": ["ea-tt-leeds"],
        "data_categories": ["identity"],
        "form": "verbal",
        **over,
    }
    resp = client.post("/v1/consents", json=body, headers=bearer(token))
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


def test_an_unrelated_organisation_does_not_learn_who_recorded_an_objection(
    client: FlaskClient, tok: dict[str, str]
) -> None:
    client.post(
        "/v1/objections",
        headers=bearer(tok["tt"]),
        json={"subject": {"nhs_number": NHS[0]}, "scope": "national_data_opt_out"},
    )
    seen = client.get(f"/v1/consents?nhs_number={NHS[0]}", headers=bearer(tok["employer"]))
    body = seen.get_json()
    assert "tt-leeds" not in seen.text
    assert body["objections"][0]["scope"] == "national_data_opt_out"
    assert body["objections"][0]["recorded_by"] is None
    assert "subject_ref" not in body
    unknown = client.get(f"/v1/consents?nhs_number={NHS[2]}", headers=bearer(tok["employer"]))
    assert set(unknown.get_json()) == set(body)  # known or not, the same shape
    own = client.get(f"/v1/consents?nhs_number={NHS[0]}", headers=bearer(tok["tt"])).get_json()
    assert own["objections"][0]["recorded_by"] == "tt-leeds"


def test_a_retried_decision_never_replays_a_permit_a_withdrawal_made_untrue(
    client: FlaskClient, tok: dict[str, str]
) -> None:
    given = _consent(client, tok["tt"], NHS[1])
    body = {
        "subject": {"nhs_number": NHS[1]},
        "from": "tt-leeds",
        "to": "ea-tt-leeds",
        "purpose": "referral",
        "data_categories": ["identity"],
    }
    headers = {**bearer(tok["tt"]), "Idempotency-Key": "decide-1"}
    first = client.post("/v1/decisions", json=body, headers=headers)
    assert first.get_json()["decision"] == "permit"
    assert (
        client.post("/v1/decisions", json=body, headers=headers).headers.get("Idempotent-Replayed")
        == "true"
    )
    client.post(f"/v1/consents/{given['id']}/withdraw", headers=bearer(tok["portal"]))
    replay = client.post("/v1/decisions", json=body, headers=headers)
    assert replay.status_code == 409
    assert replay.get_json()["type"] == "/problems/consent-withdrawn"


@pytest.mark.parametrize(
    "reference",
    ["Order re 9434765919", "Case 943 476 5919", "x" * 81, "=HYPERLINK(1)", "line\nbreak"],
)
def test_a_legal_basis_reference_cannot_carry_an_identifier_or_markup(
    client: FlaskClient, tok: dict[str, str], reference: str
) -> None:
    size = client.get("/healthz").get_json()["log_size"]
    resp = client.post(
        "/v1/decisions",
        headers=bearer(tok["tt_ig"]),
        json={
            "subject": {"nhs_number": NHS[0]},
            "from": "tt-leeds",
            "to": "asc-leeds",
            "purpose": "referral",
            "data_categories": ["identity"],
            "legal_basis": {"type": "court_order", "reference": reference},
        },
    )
    assert resp.status_code == 422
    assert resp.get_json()["errors"][0]["field"] == "legal_basis.reference"
    assert "9434765919" not in resp.text
    assert client.get("/healthz").get_json()["log_size"] == size


@pytest.mark.parametrize("backend", BOTH, indirect=True)
@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/consents", {"valid_from": "0001-01-01T00:00:00+14:00"}, 422),
        ("/v1/consents", {"expires_at": "9999-12-31T23:59:59-12:00"}, 422),
        ("/v1/consents", {"recipients": ["tt\u0000leeds"]}, 422),
        ("/v1/consents", {"subject": {"local_id": {"system": "tt-leeds", "value": "\ud800"}}}, 422),
        ("/v1/consents/%00/withdraw", None, 404),
        ("/v1/disclosures?since=0001-01-01T00:00:00%2B14:00", None, 400),
        ("/v1/disclosures?until=10000-01-01T00:00:00Z", None, 400),
        ("/v1/disclosures?since=%C2%B2%C2%B2%C2%B2%C2%B2-01-01T00:00:00Z", None, 400),
        ("/v1/disclosures?from_org=%00", None, 400),
    ],
)
def test_odd_input_is_a_client_error_not_a_500(
    client: FlaskClient,
    tok: dict[str, str],
    path: str,
    body: dict[str, Any] | None,
    status: int,
) -> None:
    if path.startswith("/v1/disclosures?"):
        resp = client.get(path, headers=bearer(tok["tt_ig"]))
    elif body is None:
        resp = client.post(path, headers=bearer(tok["tt"]))
    else:
        full = {
            "subject": {"nhs_number": NHS[0]},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity"],
            "form": "verbal",
            **body,
        }
        resp = client.post(path, json=full, headers=bearer(tok["tt"]))
    assert resp.status_code == status, resp.get_json()
    assert resp.mimetype == "application/problem+json"


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_rebuild_repairs_projections_when_disclosures_exist_and_times_have_offsets(
    client: FlaskClient, runner: FlaskCliRunner, tok: dict[str, str], ledger: Any
) -> None:
    from sqlalchemy import text

    given = _consent(client, tok["tt"], NHS[2], valid_from="2020-01-01T00:00:00+05:00")
    assert given["valid_from"] == "2019-12-31T19:00:00.000000Z"
    d = client.post(
        "/v1/decisions",
        headers=bearer(tok["tt"]),
        json={
            "subject": {"nhs_number": NHS[2]},
            "from": "tt-leeds",
            "to": "ea-tt-leeds",
            "purpose": "referral",
            "data_categories": ["identity"],
        },
    ).get_json()
    assert (
        client.post(
            "/v1/disclosures",
            headers=bearer(tok["tt"]),
            json={"decision_id": d["id"], "data_categories": ["identity"]},
        ).status_code
        == 201
    )
    assert runner.invoke(args=["rebuild", "--check"]).exit_code == 0
    with ledger.db.write_engine.begin() as conn:
        conn.execute(text("UPDATE consents SET status = 'withdrawn'"))
    assert runner.invoke(args=["rebuild", "--check"]).exit_code == 1
    repaired = runner.invoke(args=["rebuild"])
    assert repaired.exit_code == 0, repaired.output
    assert runner.invoke(args=["rebuild", "--check"]).exit_code == 0


def test_csv_cells_that_look_like_formulas_are_neutralised() -> None:
    out = to_csv(
        [{"from": "=cmd|' /C calc'!A0", "to": "+1", "purpose": "@sum", "data_categories": ["-2"]}]
    )
    row = out.splitlines()[1]
    assert "'=cmd" in row
    assert ",'+1," in row
    assert "'@sum" in row
    assert "'-2" in row


@pytest.mark.parametrize(
    "value",
    [7.5, 7.0, "7", "\u0667", "7 ", " 7", "\u00b2", "7_0", True, "9" * 5000],
    ids=repr,
)
def test_an_integer_in_a_body_must_be_a_json_integer(
    client: FlaskClient, tok: dict[str, str], value: Any
) -> None:
    size = client.get("/healthz").get_json()["log_size"]
    resp = client.post(
        "/v1/subjects/access-links",
        headers=bearer(tok["tt"]),
        json={"subject": {"nhs_number": NHS[0]}, "expires_in_days": value},
    )
    assert resp.status_code == 422, resp.get_json()
    assert resp.mimetype == "application/problem+json"
    assert [e["field"] for e in resp.get_json()["errors"]] == ["expires_in_days"]
    assert client.get("/healthz").get_json()["log_size"] == size  # no link was issued


@pytest.mark.parametrize(
    ("path", "argument"),
    [
        (f"/v1/disclosures?page={value}", "page")
        for value in ("%D9%A7", "7%20", "%207", "%C2%B2", "7.0", "7_0", "+7", "9" * 5000)
    ]
    + [
        ("/v1/log/proof/inclusion?index=%D9%A7", "index"),
        ("/v1/log/proof/consistency?from=1&to=%C2%B2", "to"),
    ],
)
def test_an_integer_in_a_query_must_be_ascii_digits(
    client: FlaskClient, tok: dict[str, str], path: str, argument: str
) -> None:
    _consent(client, tok["tt"], NHS[0])  # a log with entries, so a proof could be served
    resp = client.get(path, headers=bearer(tok["tt_ig"]))
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["type"] == "/problems/invalid-argument"
    assert [e["field"] for e in resp.get_json()["errors"]] == [argument]


def test_an_integer_argument_in_plain_digits_is_still_accepted(
    client: FlaskClient, tok: dict[str, str]
) -> None:
    _consent(client, tok["tt"], NHS[0])
    _consent(client, tok["tt"], NHS[1])
    assert client.get("/v1/disclosures?page=2", headers=bearer(tok["tt_ig"])).status_code == 200
    proof = client.get("/v1/log/proof/consistency?from=1&to=2", headers=bearer(tok["tt_ig"]))
    assert proof.status_code == 200, proof.get_json()
    link = client.post(
        "/v1/subjects/access-links",
        headers=bearer(tok["tt"]),
        json={"subject": {"nhs_number": NHS[0]}, "expires_in_days": 3},
    )
    assert link.status_code == 201, link.get_json()


def test_every_integer_field_of_every_api_schema_is_the_strict_one() -> None:
    def subclasses(cls: type[ma.Schema]) -> list[type[ma.Schema]]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    lenient = [
        f"{schema.__name__}.{name}"
        for schema in subclasses(ma.Schema)
        if schema.__module__.startswith("app.")
        for name, field in schema._declared_fields.items()
        if isinstance(field, ma.fields.Integer) and not field.strict
    ]
    assert lenient == []


@pytest.mark.parametrize("index", ["%D9%A0", "%EF%BC%90", "9" * 5000])
def test_an_integer_in_a_path_must_be_ascii_digits(
    client: FlaskClient, tok: dict[str, str], index: str
) -> None:
    _consent(client, tok["tt"], NHS[0])
    assert client.get("/v1/log/entries/0", headers=bearer(tok["tt_ig"])).status_code == 200
    resp = client.get(f"/v1/log/entries/{index}", headers=bearer(tok["tt_ig"]))
    assert resp.status_code == 404
    assert resp.mimetype == "application/problem+json"
