"""Per-client rate limits on writes and decisions: 429 with Retry-After, nothing recorded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import create_app, get_ledger
from app.models import LogEntry
from app.policy import Policy
from app.services.access.rate_limits import parse_limit
from tests.fhir.test_fhir_import import historical, transaction
from tests.helpers import bearer
from tests.nhs import valid_nhs_numbers

NHS = valid_nhs_numbers(2, start=943_476_700)
CONSENT = {
    "subject": {"nhs_number": NHS[0]},
    "purpose": "referral",
    "recipients": ["ea-tt-leeds"],
    "data_categories": ["identity"],
    "form": "verbal",
}
DECISION = {
    "subject": {"nhs_number": NHS[0]},
    "from": "tt-leeds",
    "to": "ea-tt-leeds",
    "purpose": "referral",
    "data_categories": ["identity"],
}


@pytest.fixture
def limited(
    app: Flask, instance_path: Path, database_url: str, policy: Policy
) -> Iterator[FlaskClient]:
    """The same instance and database, served with small limits."""
    small = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(instance_path),
            "DATABASE_URL": database_url,
            "WRITE_RATE_LIMIT": "3/minute",
            "DECISION_RATE_LIMIT": "2 per minute",
        }
    )
    yield small.test_client()
    get_ledger(small).db.dispose()


def _log_size(app: Flask) -> int:
    with get_ledger(app).db.read() as session:
        return int(session.scalar(select(func.count()).select_from(LogEntry)) or 0)


def test_writes_over_the_limit_get_429_with_retry_after_and_record_nothing(
    limited: FlaskClient, make_token: Callable[..., str], app: Flask
) -> None:
    tt = make_token("tt-leeds", "case_system")
    for _ in range(3):
        assert limited.post("/v1/consents", json=CONSENT, headers=bearer(tt)).status_code == 201
    size = _log_size(app)
    refused = limited.post("/v1/consents", json=CONSENT, headers=bearer(tt))
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    body: dict[str, Any] = refused.get_json()
    assert body["type"] == "/problems/rate-limited"
    # The first of the three writes was moments ago and the window is a minute: the caller is
    # told to wait until that write leaves the window, not a token second and not forever.
    retry_after = int(refused.headers["Retry-After"])
    assert 50 <= retry_after <= 60
    assert body["retry_after"] == retry_after
    assert _log_size(app) == size
    # Reads are not limited, and another client of the same organisation has its own count.
    got = limited.get("/v1/consents", query_string={"nhs_number": NHS[0]}, headers=bearer(tt))
    assert got.status_code == 200
    other = make_token("tt-leeds", "case_system")
    assert limited.post("/v1/consents", json=CONSENT, headers=bearer(other)).status_code == 201


def test_decisions_have_their_own_limit(
    limited: FlaskClient, make_token: Callable[..., str]
) -> None:
    tt = make_token("tt-leeds", "case_system")
    assert limited.post("/v1/consents", json=CONSENT, headers=bearer(tt)).status_code == 201
    for _ in range(2):
        assert limited.post("/v1/decisions", json=DECISION, headers=bearer(tt)).status_code == 200
    refused = limited.post("/v1/decisions", json=DECISION, headers=bearer(tt))
    assert refused.status_code == 429
    assert "decisions" in refused.get_json()["detail"]
    # The writes bucket is untouched by decisions: two more consents still go through.
    for _ in range(2):
        assert limited.post("/v1/consents", json=CONSENT, headers=bearer(tt)).status_code == 201


def test_a_list_of_decisions_counts_each_decision_against_the_limit(
    limited: FlaskClient, make_token: Callable[..., str], app: Flask
) -> None:
    tt = make_token("tt-leeds", "case_system")
    size = _log_size(app)
    # Three decisions are more than the whole limit (two a minute): never one request's worth.
    refused = limited.post("/v1/decisions", json=[DECISION] * 3, headers=bearer(tt))
    assert refused.status_code == 429
    assert "3 decisions" in refused.get_json()["detail"]
    assert _log_size(app) == size
    assert limited.post("/v1/decisions", json=[DECISION] * 2, headers=bearer(tt)).status_code == 200
    # The list of two used up the window: a single decision now waits too.
    again = limited.post("/v1/decisions", json=DECISION, headers=bearer(tt))
    assert again.status_code == 429
    assert 50 <= int(again.headers["Retry-After"]) <= 60
    assert _log_size(app) == size + 2


def test_unauthenticated_requests_do_not_use_up_a_clients_limit(
    limited: FlaskClient, make_token: Callable[..., str]
) -> None:
    tt = make_token("tt-leeds", "case_system")
    forged = tt.split(".")[0] + "." + "A" * 43
    for _ in range(5):
        assert limited.post("/v1/consents", json=CONSENT, headers=bearer(forged)).status_code == 401
    assert limited.post("/v1/consents", json=CONSENT, headers=bearer(tt)).status_code == 201


@pytest.mark.parametrize(
    ("setting", "value"),
    [("WRITE_RATE_LIMIT", "lots"), ("DECISION_RATE_LIMIT", "10 per fortnight")],
)
def test_a_limit_that_cannot_be_read_stops_start_up_with_its_name(
    instance_path: Path, setting: str, value: str
) -> None:
    with pytest.raises(ValueError, match=f"CONSENT_LEDGER_{setting}="):
        create_app({"INSTANCE_PATH": str(instance_path), setting: value})


@pytest.mark.parametrize(
    ("text", "amount"), [("off", None), ("0", None), ("600/minute", 600), ("20 per second", 20)]
)
def test_limits_are_read_in_limits_notation_or_switched_off(text: str, amount: int | None) -> None:
    item = parse_limit(text, "CONSENT_LEDGER_WRITE_RATE_LIMIT")
    assert (item.amount if item else None) == amount


def test_a_fhir_import_counts_each_consent_against_the_write_limit(
    limited: FlaskClient, make_token: Callable[..., str], app: Flask
) -> None:
    # Issue 17 item 2: a transaction Bundle is as many writes as it has entries, as v1 counts.
    tt = make_token("tt-leeds", "case_system")
    people = valid_nhs_numbers(6, start=943_478_000)
    size = _log_size(app)
    bundle = transaction(*(historical(n, "2024-03-01", None, None) for n in people[:4]))
    refused = limited.post("/fhir/r4", json=bundle, headers=bearer(tt))
    assert refused.status_code == 429
    assert "4 writes" in refused.get_json(force=True)["issue"][0]["diagnostics"]
    assert _log_size(app) == size
    two = transaction(*(historical(n, "2024-03-01", None, None) for n in people[4:]))
    assert limited.post("/fhir/r4", json=two, headers=bearer(tt)).status_code == 200
    assert limited.post("/v1/consents", json=CONSENT, headers=bearer(tt)).status_code == 201
    assert limited.post("/fhir/r4", json=two, headers=bearer(tt)).status_code == 429
