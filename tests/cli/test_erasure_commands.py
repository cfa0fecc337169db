"""``consent-ledger erase`` and ``consent-ledger retention run`` (issue 14, items 3 and 4).

The person is named on standard input, never on the command line; what they said is then
gone from every table, and the log still verifies.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient, FlaskCliRunner

from app.policy import Policy
from app.services.container import Ledger
from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers

NHS = valid_nhs_numbers(4, start=943_478_400)


@pytest.fixture
def case_system(policy: Policy, make_token: Callable[..., str]) -> str:
    return make_token("tt-leeds", "case_system")


def _consent(client: FlaskClient, token: str, subject: dict[str, Any]) -> dict[str, Any]:
    resp = client.post(
        "/v1/consents",
        json={
            "subject": subject,
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity"],
            "form": "verbal",
        },
        headers=bearer(token),
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


def _consents_of(client: FlaskClient, token: str, nhs: str) -> list[dict[str, Any]]:
    body = client.get("/v1/consents", query_string={"nhs_number": nhs}, headers=bearer(token))
    return body.get_json()["consents"]  # type: ignore[no-any-return]


def _size(client: FlaskClient) -> int:
    return int(client.get("/healthz").get_json()["log_size"])


def test_erase_reads_the_person_from_stdin_and_erases_them(
    runner: FlaskCliRunner, client: FlaskClient, case_system: str
) -> None:
    consent = _consent(client, case_system, {"nhs_number": NHS[0]})
    size = _size(client)
    result = runner.invoke(
        args=["erase", "--reason", "recorded_in_error", "--reference", "IG-2026-7"],
        input=f"{NHS[0]}\n",
    )
    assert result.exit_code == 0, result.output
    assert "erased: 1 log entries now open to nothing" in result.output
    assert NHS[0] not in result.output
    assert _size(client) == size + 1
    assert _consents_of(client, case_system, NHS[0]) == []
    verified = runner.invoke(args=["verify"])
    assert verified.exit_code == 0, verified.output
    assert "(1 erased)" in verified.output
    rebuilt = runner.invoke(args=["rebuild", "--check"])
    assert rebuilt.exit_code == 0, rebuilt.output
    found = runner.invoke(args=["policy", "replay", "policies/default.yaml"])
    assert consent["id"] not in found.output


def test_erase_by_local_identifier(
    runner: FlaskCliRunner, client: FlaskClient, case_system: str
) -> None:
    subject = {"local_id": {"system": "tt-leeds", "value": "MRN-0042"}}
    _consent(client, case_system, subject)
    result = runner.invoke(
        args=[
            "erase",
            "--local-system",
            "tt-leeds",
            "--reason",
            "recorded_in_error",
            "--reference",
            "IG-2026-8",
        ],
        input="MRN-0042\n",
    )
    assert result.exit_code == 0, result.output
    again = runner.invoke(
        args=[
            *("erase", "--local-system", "tt-leeds"),
            *("--reason", "recorded_in_error", "--reference", "IG-2026-8"),
        ],
        input="MRN-0042\n",
    )
    assert again.exit_code == 1
    assert "no records of this person" in again.output


@pytest.mark.parametrize(
    ("args", "stdin", "said"),
    [
        (["--reason", "data_subject_request", "--reference", "SAR-1"], "NHS0", "rule R1"),
        (["--reason", "recorded_in_error", "--reference", "9434765919"], "NHS0", "NHS number"),
        (["--reason", "recorded_in_error", "--reference", "943-476-5919"], "NHS0", "NHS number"),
        (["--reason", "recorded_in_error", "--reference", "SAR-1"], "1234567890", "check digit"),
        (["--reason", "recorded_in_error", "--reference", "SAR-1"], "", "no identifier"),
    ],
)
def test_erase_refuses_with_one_line_and_changes_nothing(
    runner: FlaskCliRunner,
    client: FlaskClient,
    case_system: str,
    args: list[str],
    stdin: str,
    said: str,
) -> None:
    _consent(client, case_system, {"nhs_number": NHS[0]})
    size = _size(client)
    result = runner.invoke(args=["erase", *args], input=stdin.replace("NHS0", NHS[0]) + "\n")
    assert result.exit_code == 1, result.output
    assert said in result.output
    assert NHS[0] not in result.output
    assert _size(client) == size
    assert len(_consents_of(client, case_system, NHS[0])) == 1


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_retention_run_erases_only_people_past_the_period(
    runner: FlaskCliRunner, client: FlaskClient, case_system: str, ledger: Ledger
) -> None:
    real = ledger.clock
    try:
        # Recorded 21 years ago: past the 20 years the shipped policy keeps referral records.
        ledger.clock = lambda: real() - timedelta(days=365 * 21)
        old = _consent(client, case_system, {"nhs_number": NHS[1]})
        withdrawn = client.post(
            f"/v1/consents/{old['id']}/withdraw",
            json={"reason": "person_withdrew"},
            headers=bearer(case_system),
        )
        assert withdrawn.status_code == 200
    finally:
        ledger.clock = real
    recent = _consent(client, case_system, {"nhs_number": NHS[2]})
    size = _size(client)

    dry = runner.invoke(args=["retention", "run", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run: 1 of 2 people are past retention" in dry.output
    assert "rule R1" in dry.output
    assert "checked 2/2 people" in dry.output
    assert _size(client) == size

    ran = runner.invoke(args=["retention", "run"])
    assert ran.exit_code == 0, ran.output
    assert "erased 1 of 2 people past retention" in ran.output
    assert _size(client) == size + 1
    assert _consents_of(client, case_system, NHS[1]) == []
    assert [c["id"] for c in _consents_of(client, case_system, NHS[2])] == [recent["id"]]
    auditor = runner.invoke(args=["verify"])
    assert auditor.exit_code == 0, auditor.output
    assert "(2 erased)" in auditor.output  # the consent and its withdrawal
    rebuilt = runner.invoke(args=["rebuild", "--check"])
    assert rebuilt.exit_code == 0, rebuilt.output

    # A run with no one to erase still says, in the log, that retention was enforced.
    empty = runner.invoke(args=["retention", "run", "--quiet"])
    assert empty.exit_code == 0, empty.output
    assert "erased 0 of 1 people" in empty.output
    assert "checked" not in empty.output
    assert _size(client) == size + 2


def test_retention_run_keeps_a_person_whose_objection_is_in_force(
    runner: FlaskCliRunner, client: FlaskClient, case_system: str, ledger: Ledger
) -> None:
    real = ledger.clock
    try:
        ledger.clock = lambda: real() - timedelta(days=365 * 30)
        resp = client.post(
            "/v1/objections",
            json={"subject": {"nhs_number": NHS[3]}, "scope": "national_data_opt_out"},
            headers=bearer(case_system),
        )
        assert resp.status_code == 201
    finally:
        ledger.clock = real
    ran = runner.invoke(args=["retention", "run", "--quiet"])
    assert ran.exit_code == 0, ran.output
    assert "erased 0 of 1 people" in ran.output
    found = client.get(
        "/v1/consents", query_string={"nhs_number": NHS[3]}, headers=bearer(case_system)
    ).get_json()
    assert [o["id"] for o in found["objections"]] == [resp.get_json()["id"]]


def test_retention_run_finds_people_whose_entries_are_from_before_format_2(
    runner: FlaskCliRunner,
    client: FlaskClient,
    case_system: str,
    ledger: Ledger,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.services.log import log_store

    monkeypatch.setattr(log_store, "COMMITTED_TYPES", frozenset())  # a log from before
    real = ledger.clock
    try:
        ledger.clock = lambda: real() - timedelta(days=365 * 21)
        old = _consent(client, case_system, {"nhs_number": NHS[0]})
        client.post(
            f"/v1/consents/{old['id']}/withdraw",
            json={"reason": "person_withdrew"},
            headers=bearer(case_system),
        )
        _consent(client, case_system, {"nhs_number": NHS[1]})  # in force: kept
    finally:
        ledger.clock = real
        monkeypatch.undo()
    ran = runner.invoke(args=["retention", "run"])
    assert ran.exit_code == 0, ran.output
    assert "erased 1 of 2 people" in ran.output
    assert _consents_of(client, case_system, NHS[0]) == []
    assert len(_consents_of(client, case_system, NHS[1])) == 1
    verified = runner.invoke(args=["verify"])
    assert verified.exit_code == 0, verified.output
    assert "(2 erased)" in verified.output
