"""``consent-ledger import FILE --as CLIENT_ID`` (issue 17 item 2): the same transaction Bundle
as ``POST /fhir/r4``, or a CSV with the documented header; all or nothing, progress on
stderr, faults named by row and column."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient, FlaskCliRunner

from app.policy import Policy
from app.services.container import Ledger
from tests.fhir.test_fhir_import import (
    historical,
    log_size,
    odd_entries,
    search,
    transaction,
    v1_consents,
)
from tests.nhs import valid_nhs_numbers
from tests.support.fhir_check import check_uk_core_consent

PERSON, OTHER = valid_nhs_numbers(2, start=943_476_900)
HEADER = (
    "nhs_number,local_system,local_value,purpose,recipients,data_categories,form,"
    "evidence_sha256,given_at,valid_from,expires_at"
)
EVIDENCE = "ef" * 32


@pytest.fixture
def case_system(policy: Policy, make_token: Callable[..., str]) -> tuple[str, str]:
    token = make_token("tt-leeds", "case_system")
    return token.split(".")[0], token


def run_import(runner: FlaskCliRunner, path: Path, client_id: str) -> Any:
    return runner.invoke(args=["import", str(path), "--as", client_id])


def test_a_csv_of_historical_consents_reads_back_as_fhir_and_v1(
    runner: FlaskCliRunner, client: FlaskClient, case_system: tuple[str, str], tmp_path: Path
) -> None:
    client_id, token = case_system
    f = tmp_path / "paper.csv"
    f.write_text(
        f"{HEADER}\n"
        f"{PERSON},,,referral,ea-tt-leeds;tt-leeds,identity;service_status,written,{EVIDENCE},"
        "2024-03-01,,2025-03-01\n"
        f"{OTHER},,,referral,ea-tt-leeds,identity,verbal,,2025-06-01T09:30:00Z,,\n"
    )
    result = run_import(runner, f, client_id)
    assert result.exit_code == 0, result.output
    assert "imported 2 consents" in result.stdout
    assert PERSON not in result.output
    (v1,) = v1_consents(client, token, PERSON)
    assert (v1["given_at"], v1["valid_from"], v1["expires_at"]) == (
        "2024-03-01T00:00:00.000000Z",
        None,
        "2025-03-01T00:00:00.000000Z",
    )
    assert (v1["recipients"], v1["data_categories"]) == (
        ["ea-tt-leeds", "tt-leeds"],
        ["identity", "service_status"],
    )
    assert (v1["form"], v1["evidence_sha256"], v1["recorded_by"]) == (
        "written",
        EVIDENCE,
        "tt-leeds",
    )
    (entry,) = search(client, token, PERSON)["entry"]
    check_uk_core_consent(entry["resource"])
    assert entry["resource"]["dateTime"] == "2024-03-01T00:00:00.000000Z"
    (other,) = v1_consents(client, token, OTHER)
    assert other["given_at"] == "2025-06-01T09:30:00.000000Z"


def test_a_bad_row_rejects_the_file_naming_row_and_column(
    runner: FlaskCliRunner, client: FlaskClient, case_system: tuple[str, str], tmp_path: Path
) -> None:
    client_id, token = case_system
    f = tmp_path / "paper.csv"
    f.write_text(
        f"{HEADER}\n"
        f"{PERSON},,,referral,ea-tt-leeds,identity,verbal,,2024-03-01,,\n"
        f"{OTHER},,,gossip,ea-tt-leeds,identity,verbal,,2024-03-01,,\n"
        f"{OTHER},,,referral,nobody-here,identity,verbal,,2024-03-01,,\n"
    )
    size = log_size(client)
    result = run_import(runner, f, client_id)
    assert result.exit_code == 1
    assert "row 2 (line 3), column purpose: " in result.stderr
    assert "row 3 (line 4), column recipients: is not a registered organisation id" in (
        result.stderr
    )
    assert "nothing was recorded" in result.stderr
    assert log_size(client) == size
    assert v1_consents(client, token, PERSON) == []


def test_a_csv_with_another_header_is_refused(
    runner: FlaskCliRunner, case_system: tuple[str, str], tmp_path: Path
) -> None:
    f = tmp_path / "paper.csv"
    f.write_text("nhs,purpose\n1,referral\n")
    result = run_import(runner, f, case_system[0])
    assert result.exit_code == 1
    assert HEADER in result.stderr


def test_a_bundle_file_imports_as_post_fhir_r4_does_with_progress(
    runner: FlaskCliRunner,
    client: FlaskClient,
    case_system: tuple[str, str],
    tmp_path: Path,
    ledger: Ledger,
) -> None:
    client_id, token = case_system
    people = valid_nhs_numbers(120, start=943_477_000)
    f = tmp_path / "bundle.json"
    f.write_text(
        json.dumps(transaction(*(historical(n, "2024-03-01", None, None) for n in people)))
    )
    result = run_import(runner, f, client_id)
    assert result.exit_code == 0, result.output
    assert "imported 120 consents" in result.stdout
    assert "read 100 of 120" in result.stderr  # progress
    assert len(v1_consents(client, token, people[-1])) == 1


@pytest.mark.parametrize(
    ("who", "message"),
    [("cl_0000000000000000", "there is no client"), ("auditor", "role case_system")],
)
def test_it_records_only_as_an_existing_case_system_client(
    runner: FlaskCliRunner,
    make_token: Callable[..., str],
    policy: Policy,
    tmp_path: Path,
    who: str,
    message: str,
) -> None:
    if who == "auditor":
        who = make_token("tt-leeds", "auditor").split(".")[0]
    f = tmp_path / "paper.csv"
    f.write_text(f"{HEADER}\n{PERSON},,,referral,ea-tt-leeds,identity,verbal,,2024-03-01,,\n")
    result = run_import(runner, f, who)
    assert result.exit_code == 1
    assert message in result.stderr


def test_a_log_with_entries_before_and_after_given_at_verifies_and_rebuilds(
    runner: FlaskCliRunner, client: FlaskClient, case_system: tuple[str, str], tmp_path: Path
) -> None:
    # A consent recorded through /v1 is written as every entry before given_at existed (no
    # key); an imported one carries it. verify re-reads, re-hashes and replays both, and
    # rebuild --check re-derives consents.given_at from the log.
    client_id, token = case_system
    recorded = client.post(
        "/v1/consents",
        json={
            "subject": {"nhs_number": OTHER},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity"],
            "form": "verbal",
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert recorded.status_code == 201
    assert recorded.get_json()["given_at"] == recorded.get_json()["recorded_at"]
    f = tmp_path / "paper.csv"
    f.write_text(f"{HEADER}\n{PERSON},,,referral,ea-tt-leeds,identity,verbal,,2024-03-01,,\n")
    assert run_import(runner, f, client_id).exit_code == 0
    verified = runner.invoke(args=["verify"])
    assert verified.exit_code == 0, verified.output
    rebuilt = runner.invoke(args=["rebuild", "--check"])
    assert rebuilt.exit_code == 0, rebuilt.output


def test_a_bundle_larger_than_post_fhir_r4_takes_imports_from_the_command(
    runner: FlaskCliRunner,
    client: FlaskClient,
    case_system: tuple[str, str],
    tmp_path: Path,
) -> None:
    """README: the command takes a file of any size; only the HTTP Bundle has a cap (1,000)."""
    client_id, token = case_system
    people = valid_nhs_numbers(1001, start=943_478_000)
    f = tmp_path / "bundle.json"
    f.write_text(
        json.dumps(transaction(*(historical(n, "2024-03-01", None, None) for n in people)))
    )
    result = run_import(runner, f, client_id)
    assert result.exit_code == 0, result.output[-500:]
    assert "imported 1001 consents" in result.stdout
    assert "read 1000 of 1001" in result.stderr  # progress
    assert len(v1_consents(client, token, people[-1])) == 1


def test_a_csv_not_in_utf8_is_refused_saying_so(
    runner: FlaskCliRunner, case_system: tuple[str, str], tmp_path: Path
) -> None:
    f = tmp_path / "paper.csv"
    row = f"{PERSON},,,referral,ea-tt-leeds,identity,verbal,,2024-03-01,,\n"
    # Excel's "CSV" on Windows: cp1252, where a pound sign or an accent is not UTF-8.
    f.write_bytes(f"{HEADER}\n{row}".replace("verbal", "verbal£").encode("cp1252"))
    result = run_import(runner, f, case_system[0])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert "UTF-8" in result.stderr
    assert "line 2" in result.stderr


def test_a_utf8_csv_with_excels_byte_order_mark_imports(
    runner: FlaskCliRunner, client: FlaskClient, case_system: tuple[str, str], tmp_path: Path
) -> None:
    client_id, token = case_system
    f = tmp_path / "paper.csv"
    row = f"{PERSON},,,referral,ea-tt-leeds,identity,verbal,,2024-03-01,,\n"
    f.write_bytes(f"{HEADER}\n{row}".encode("utf-8-sig"))
    result = run_import(runner, f, client_id)
    assert result.exit_code == 0, result.output
    assert len(v1_consents(client, token, PERSON)) == 1


def test_odd_json_in_a_bundle_file_is_named_never_a_traceback(
    runner: FlaskCliRunner, case_system: tuple[str, str], tmp_path: Path
) -> None:
    f = tmp_path / "bundle.json"
    f.write_text(json.dumps(transaction(*odd_entries())))
    result = run_import(runner, f, case_system[0])
    assert result.exit_code == 1, result.output[-500:]
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert "nothing was recorded" in result.stderr
