"""Hostile bodies: too large, malformed, mistyped, huge, deeply nested or odd Unicode. Each
gets a 4xx problem+json naming what is wrong, and nothing is written."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from app.policy import Policy
from tests.helpers import bearer
from tests.nhs import valid_nhs_numbers

NHS = valid_nhs_numbers(1, start=943_476_900)[0]
VALID = {
    "subject": {"nhs_number": NHS},
    "purpose": "referral",
    "recipients": ["ea-tt-leeds"],
    "data_categories": ["identity"],
    "form": "verbal",
}


def _with(**over: object) -> bytes:
    return json.dumps({**VALID, **over}).encode()


CASES = [
    # (id, raw body, content type, status, problem slug, field named)
    (
        "over-1-MiB",
        _with(form="x" * (1024 * 1024 + 1)),
        "application/json",
        413,
        "payload-too-large",
        None,
    ),
    (
        "truncated-json",
        b'{"subject": {"nhs_number": ',
        "application/json",
        400,
        "invalid-request",
        None,
    ),
    ("not-utf8", b'{"purpose": "\xff\xfe"}', "application/json", 400, "invalid-request", None),
    ("a-list-not-an-object", b"[1, 2, 3]", "application/json", 422, "invalid-request", None),
    (
        "recipients-a-string",
        _with(recipients="ea-tt-leeds"),
        "application/json",
        422,
        "invalid-request",
        "recipients",
    ),
    ("form-a-number", _with(form=7), "application/json", 422, "invalid-request", "form"),
    (
        "huge-array",
        _with(data_categories=["identity"] * 60_000),
        "application/json",
        422,
        "invalid-request",
        "data_categories",
    ),
    (
        "thousands-of-bad-items",
        _with(data_categories=["bogus"] * 60_000),
        "application/json",
        422,
        "invalid-request",
        "data_categories.0",
    ),
    (
        "deep-nesting",
        b'{"subject": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        "application/json",
        400,
        "invalid-request",
        None,
    ),
    (
        # Past Python's int-from-string limit (4300 digits), which json raises as a ValueError.
        "integer-over-4300-digits",
        _with()[:-1] + b', "evidence_sha256": ' + b"9" * 5000 + b"}",
        "application/json",
        400,
        "invalid-request",
        None,
    ),
    (
        "lone-surrogate",
        _with(purpose="\ud800"),
        "application/json",
        422,
        "invalid-request",
        "purpose",
    ),
    (
        "right-to-left-override",
        _with(recipients=["ea-tt-\u202eleeds"]),
        "application/json",
        422,
        "invalid-request",
        "recipients.0",
    ),
    *(
        (
            f"U+{ord(ch):04X}-in-free-text",
            _with(subject={"local_id": {"system": "tt-leeds", "value": f"MRN{ch}123"}}),
            "application/json",
            422,
            "invalid-request",
            "subject.local_id.value",
        )
        # bidirectional override and isolate, a C1 control, zero width space, line separator
        for ch in ("\u202e", "\u2067", "\u009b", "\u200b", "\u2028")
    ),
    (
        "nul-in-id",
        _with(recipients=["ea\u0000"]),
        "application/json",
        422,
        "invalid-request",
        "recipients.0",
    ),
    (
        "unknown-field",
        _with(nhs_number=NHS),
        "application/json",
        422,
        "invalid-request",
        "nhs_number",
    ),
    (
        "form-encoded",
        b"purpose=referral",
        "application/x-www-form-urlencoded",
        422,
        "invalid-request",
        None,
    ),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "slug", "field"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_a_hostile_body_gets_a_clear_problem_and_writes_nothing(
    client: FlaskClient,
    policy: Policy,
    make_token: Callable[..., str],
    body: bytes,
    content_type: str,
    status: int,
    slug: str,
    field: str | None,
) -> None:
    token = make_token("tt-leeds", "case_system")
    size = client.get("/healthz").get_json()["log_size"]
    resp = client.post(
        "/v1/consents", data=body, headers={**bearer(token), "Content-Type": content_type}
    )
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    assert resp.mimetype == "application/problem+json"
    problem = resp.get_json()
    assert problem["type"] == f"/problems/{slug}"
    if field is not None:
        assert field in {e["field"] for e in problem.get("errors", [])}, problem
    assert NHS not in resp.get_data(as_text=True)
    assert len(resp.get_data()) < 20_000  # the refusal does not echo a huge body back
    assert client.get("/healthz").get_json()["log_size"] == size
