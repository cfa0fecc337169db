"""No string that passes the NHS-number check leaves in an error body or a log line.

A caller can put an NHS number anywhere: a path id, a JSON field name, a bad value, a query
argument's name. Each is refused; the refusal, and the request's log line, say ``[redacted]``
where the number was, with or without the spaces the API accepts in NHS numbers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.ids import new_id
from app.policy import Policy
from app.redaction import REDACTED, redact
from tests.helpers import bearer
from tests.nhs import valid_nhs_numbers

NHS = valid_nhs_numbers(1, start=943_476_500)[0]
SPACED = f"{NHS[:3]} {NHS[3:6]} {NHS[6:]}"
DECISION = {
    "subject": {"local_id": {"system": "tt-leeds", "value": "case-1"}},
    "from": "tt-leeds",
    "to": "ea-tt-leeds",
    "purpose": "referral",
    "data_categories": ["identity"],
}


def _forms(number: str) -> list[str]:
    return [number, f"{number[:3]} {number[3:6]} {number[6:]}"]


# (name, method, url, query, json body, role, expected status)
CASES: list[tuple[str, str, str, dict[str, str] | None, Any, str, int]] = [
    ("path id", "POST", f"/v1/consents/{NHS}/withdraw", None, None, "case_system", 404),
    ("spaced path id", "POST", f"/v1/objections/{SPACED}/withdraw", None, None, "case_system", 404),
    ("path id, revoke", "POST", f"/v1/subjects/access-links/x{NHS}x/revoke", None, None,
     "patient_portal", 404),
    ("json field name", "POST", "/v1/decisions", None, {**DECISION, NHS: 1}, "ig_lead", 422),
    ("spaced json field name", "POST", "/v1/decisions", None, {**DECISION, SPACED: 1}, "ig_lead",
     422),
    ("bad value", "POST", "/v1/decisions", None, {**DECISION, "purpose": f"p{NHS}"}, "ig_lead",
     422),
    ("bad value repeated", "POST", "/v1/decisions", None,
     {**DECISION, "data_categories": [SPACED, SPACED]}, "ig_lead", 422),
    ("query argument name", "GET", "/v1/consents", {NHS: "1", "nhs_number": NHS}, None,
     "case_system", 400),
    ("spaced query argument name", "GET", "/v1/disclosures", {SPACED: "1"}, None, "ig_lead", 400),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "url", "query", "body", "role", "status"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_an_nhs_number_anywhere_in_a_request_is_redacted_in_the_refusal_and_the_log(
    client: FlaskClient,
    policy: Policy,
    make_token: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
    method: str,
    url: str,
    query: dict[str, str] | None,
    body: Any,
    role: str,
    status: int,
) -> None:
    token = make_token("tt-leeds", role)
    caplog.set_level(logging.DEBUG)
    resp = client.open(url, method=method, query_string=query, json=body, headers=bearer(token))
    assert resp.status_code == status
    assert resp.mimetype == "application/problem+json"
    text = resp.get_data(as_text=True)
    assert REDACTED in text
    logged = caplog.text + json.dumps([getattr(r, "fields", None) for r in caplog.records])
    for form in _forms(NHS):
        assert form not in text
        assert form not in logged


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (NHS, REDACTED),
        (SPACED, REDACTED),
        (f"no consent '{NHS}'", f"no consent '{REDACTED}'"),
        (f"a{NHS}b", f"a{REDACTED}b"),
        (f"12 {NHS} 7", f"12 {REDACTED} 7"),  # inside a longer run of digits and spaces
        ("  ".join(NHS), REDACTED),  # any number of spaces, as the API accepts
        (NHS[:9] + str((int(NHS[9]) + 1) % 10), NHS[:9] + str((int(NHS[9]) + 1) % 10)),
        ("log size 16, index 1234567", "log size 16, index 1234567"),
        ("9" * 200, REDACTED),  # too long to search window by window: hidden whole
        # An id shaped around a number is no hiding place (a caller chooses the path).
        (f"cns_{NHS}abcdefabcdefabcdefab", f"cns_{REDACTED}abcdefabcdefabcdefab"),
        (f"request 0123{NHS}ab", f"request 0123{REDACTED}ab"),
        (f"x{NHS}ab", f"x{REDACTED}ab"),
        (f"{NHS}{NHS}", REDACTED),
    ],
)
def test_redact_hides_every_run_of_digits_that_is_an_nhs_number(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_the_services_own_ids_are_never_redacted() -> None:
    """Ids go into problem bodies a client acts on (``consents`` of a 409): none may come out
    mangled. (Drawn plainly, about one 32-hex-digit id in sixty would.)"""
    for prefix, nbytes in [("cns", 16), ("cl", 8)] * 2000:
        made = new_id(prefix, nbytes)
        assert redact(made) == made
