"""Words put together into sentences people read."""

from __future__ import annotations

import pytest

from app.text import with_article
from app.vocabulary import CONSENT_FORMS, ORGANISATION_KINDS, ROLES

SAID = {
    # consent forms
    "verbal": "a verbal",
    "written": "a written",
    "electronic": "an electronic",
    # organisation kinds
    "health": "a health",
    "social_care": "a social_care",
    "employment_nhs": "an employment_nhs",
    "employment_dwp": "an employment_dwp",
    "dwp": "a dwp",
    "employer": "an employer",
    "evaluator": "an evaluator",
    # client roles
    "case_system": "a case_system",
    "ig_lead": "an ig_lead",
    "patient_portal": "a patient_portal",
    "auditor": "an auditor",
    "admin": "an admin",
    # entry types
    "objection.recorded": "an objection.recorded",
    "consent.granted": "a consent.granted",
}


@pytest.mark.parametrize(("word", "said"), SAID.items())
def test_a_word_takes_the_article_it_is_said_with(word: str, said: str) -> None:
    assert with_article(word) == said


def test_every_word_of_the_vocabularies_put_after_an_article_is_in_the_table() -> None:
    # A new form, kind or role must be added above, so its article is checked by ear.
    assert {*CONSENT_FORMS, *ORGANISATION_KINDS, *ROLES} <= SAID.keys()
