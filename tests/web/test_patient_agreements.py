"""Issue 15 item 5 on the patient page: each agreement shows what can actually be shared with
whom, and marks, in plain words, what never can be."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers

pytestmark = pytest.mark.usefixtures("policy")

PERSON = valid_nhs_numbers(1, start=943_478_300)[0]
EVIDENCE = "0123456789abcdef" * 4
EMPLOYER = "Acme Logistics Ltd (example employer)"
EVALUATOR = "Northern University evaluation team (example)"
IN_WORK = "whether you are in work, off sick or out of work"
NOTES = "notes from your therapy or care"
NAME = "your name, date of birth and NHS number"
SCORES = "your questionnaire scores (such as PHQ-9 and GAD-7)"


def _text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _agreements(page: str) -> list[str]:
    """Each agreement's card, in the page's order (oldest first)."""
    card = r'<section class="card[^"]*" aria-labelledby="consent-.*?</section>'
    cards = re.findall(card, page, re.S)
    return cards


def _never(card: str) -> list[str]:
    return [_text(li) for li in re.findall(r'<li class="never">(.*?)</li>', card, re.S)]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_each_agreement_shows_what_can_and_what_can_never_be_shared(
    client: FlaskClient, make_token: Callable[..., str]
) -> None:
    def record(org: str, purpose: str, recipients: list[str], categories: list[str]) -> None:
        resp = client.post(
            "/v1/consents",
            headers=bearer(make_token(org, "case_system")),
            json={
                "subject": {"nhs_number": PERSON},
                "purpose": purpose,
                "recipients": recipients,
                "data_categories": categories,
                "form": "written",
                "evidence_sha256": EVIDENCE,
            },
        )
        assert resp.status_code == 201, resp.get_json()

    record(
        "ea-tt-leeds",
        "employer_contact",
        ["employer-acme-logistics"],
        ["employment_status", "clinical_notes"],
    )
    record("tt-leeds", "employer_contact", ["employer-acme-logistics"], ["employment_status"])
    record("tt-leeds", "evaluation", ["eval-northern-uni"], ["identity", "outcome_measures"])
    link = client.post(
        "/v1/subjects/access-links",
        headers=bearer(make_token("tt-leeds", "patient_portal")),
        json={"subject": {"nhs_number": PERSON}},
    )
    assert link.status_code == 201, link.get_json()
    page = client.get(f"/p/{link.get_json()['url'].rsplit('/p/', 1)[1]}").text
    specialist, therapy, evaluation = _agreements(page)

    # The employment specialist may tell the employer about work, never the therapy notes.
    assert f"{EMPLOYER}: {IN_WORK}" in _text(specialist)
    (never,) = _never(specialist)
    assert never.startswith(f"Never shared with {EMPLOYER}: {NOTES}")
    assert "even if you agree" in never

    # Therapy services never contact an employer: nothing at all goes under that agreement.
    (never,) = _never(therapy)
    assert never.startswith(f"Nothing is shared with {EMPLOYER} under this agreement")
    assert f"{EMPLOYER}: " not in _text(therapy)
    # What the person agreed to is still shown as they gave it.
    assert IN_WORK in _text(therapy)

    # An evaluator gets scores, never who you are.
    assert f"{EVALUATOR}: {SCORES}" in _text(evaluation)
    (never,) = _never(evaluation)
    assert never.startswith(f"Never shared with {EVALUATOR}: {NAME}")
