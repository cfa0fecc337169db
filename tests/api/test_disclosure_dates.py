"""``since`` and ``until`` on the disclosure history: RFC 3339, or a plain date meaning the start
of that day in UTC, on the API and on the IG disclosures page alike."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient

from app.policy import Policy
from app.services.container import Ledger
from tests.helpers import BOTH, bearer, ig_sign_in
from tests.nhs import valid_nhs_numbers

NHS = valid_nhs_numbers(2, start=943_476_800)
# Two shares half an hour either side of midnight UTC, 11 December 2026.
LATE = datetime(2026, 12, 10, 23, 30, tzinfo=UTC)
EARLY = datetime(2026, 12, 11, 0, 30, tzinfo=UTC)


@pytest.fixture
def shares(
    client: FlaskClient, ledger: Ledger, policy: Policy, make_token: Callable[..., str]
) -> dict[str, str]:
    """The disclosure ids, by when they were made (``late`` on the 10th, ``early`` on the 11th)."""
    tt = bearer(make_token("tt-leeds", "case_system"))
    made = {}
    for name, at, nhs in (("late", LATE, NHS[0]), ("early", EARLY, NHS[1])):
        ledger.clock = lambda at=at: at
        resp = client.post(
            "/v1/consents",
            headers=tt,
            json={
                "subject": {"nhs_number": nhs},
                "purpose": "referral",
                "recipients": ["ea-tt-leeds"],
                "data_categories": ["identity"],
                "form": "verbal",
            },
        )
        assert resp.status_code == 201, resp.get_json()
        decision = client.post(
            "/v1/decisions",
            headers=tt,
            json={
                "subject": {"nhs_number": nhs},
                "from": "tt-leeds",
                "to": "ea-tt-leeds",
                "purpose": "referral",
                "data_categories": ["identity"],
            },
        ).get_json()
        assert decision["decision"] == "permit", decision
        shared = client.post(
            "/v1/disclosures",
            headers=tt,
            json={"decision_id": decision["id"], "data_categories": ["identity"]},
        )
        assert shared.status_code == 201, shared.get_json()
        made[name] = shared.get_json()["id"]
    return made


# Each way of writing midnight at the start of 11 December 2026, UTC.
THE_ELEVENTH = [
    pytest.param("2026-12-11", id="plain-date"),
    pytest.param("2026-12-11T00:00:00Z", id="rfc3339-z"),
    pytest.param("2026-12-11T01:00:00%2B01:00", id="rfc3339-offset"),
]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
@pytest.mark.parametrize("eleventh", THE_ELEVENTH)
@pytest.mark.parametrize(("key", "found"), [("since", "early"), ("until", "late")])
def test_the_history_api_takes_a_date_as_the_start_of_that_day_in_utc(
    client: FlaskClient,
    make_token: Callable[..., str],
    shares: dict[str, str],
    eleventh: str,
    key: str,
    found: str,
) -> None:
    ig = bearer(make_token("tt-leeds", "ig_lead"))
    resp = client.get(f"/v1/disclosures?{key}={eleventh}", headers=ig)
    assert resp.status_code == 200, resp.get_json()
    assert [item["id"] for item in resp.get_json()["items"]] == [shares[found]]


@pytest.mark.parametrize(
    "bad",
    ["2026-13-01", "2026-12-32", "2026-12-1", "11/12/2026", "2026-12-11T00:00:00", "1899-12-31"],
)
@pytest.mark.parametrize("key", ["since", "until"])
def test_the_history_api_refuses_a_bad_date_naming_the_field_and_the_forms(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str], bad: str, key: str
) -> None:
    resp = client.get(
        f"/v1/disclosures?{key}={bad}", headers=bearer(make_token("tt-leeds", "ig_lead"))
    )
    # 400 as for every other query argument at fault; a body's fields get 422.
    assert resp.status_code == 400
    (error,) = resp.get_json()["errors"]
    assert error["field"] == key
    assert error["location"] == "query"
    if bad != "1899-12-31":
        assert "2026-12-01" in error["message"]  # says what a date looks like


@pytest.mark.parametrize("eleventh", THE_ELEVENTH)
@pytest.mark.parametrize(("key", "found"), [("since", "early"), ("until", "late")])
def test_the_disclosures_page_takes_a_date_or_an_rfc3339_time(
    client: FlaskClient,
    make_token: Callable[..., str],
    shares: dict[str, str],
    eleventh: str,
    key: str,
    found: str,
) -> None:
    ig_sign_in(client, make_token("tt-leeds", "ig_lead"))
    page = client.get(f"/ig/disclosures?{key}={eleventh}")
    assert page.status_code == 200
    assert 'aria-invalid="true"' not in page.text
    shown = {name for name, when in (("late", "23:30"), ("early", "00:30")) if when in page.text}
    assert shown == {found}
