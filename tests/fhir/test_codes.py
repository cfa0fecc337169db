"""Our purposes in HL7 v3 PurposeOfUse terms, both ways: our own code is exact; a v3 code is
read back only where it names one purpose of ours."""

from __future__ import annotations

import pytest

from app.fhir.codes import (
    PURPOSE_OF_USE_SYSTEM,
    PURPOSE_SYSTEM,
    purpose_codings,
    purpose_from_codings,
)
from app.vocabulary import PURPOSES


@pytest.mark.parametrize("purpose", PURPOSES)
def test_every_purpose_reads_back_from_its_own_codings(purpose: str) -> None:
    codings = purpose_codings(purpose)
    assert codings[0] == {"system": PURPOSE_SYSTEM, "code": purpose}
    assert purpose_from_codings(codings) == purpose


@pytest.mark.parametrize(
    ("v3", "ours"),
    [
        ("HOUTCOMS", "evaluation"),
        ("PATADMIN", "sms_contact"),
        ("COC", None),  # referral and case conferencing both: ambiguous, so not guessed
        ("TREAT", None),
    ],
)
def test_a_v3_purpose_of_use_alone_maps_only_when_it_names_one_purpose(
    v3: str, ours: str | None
) -> None:
    assert purpose_from_codings([{"system": PURPOSE_OF_USE_SYSTEM, "code": v3}]) == ours


def test_employer_contact_has_no_v3_code_and_a_foreign_system_is_not_read() -> None:
    assert len(purpose_codings("employer_contact")) == 1
    assert purpose_from_codings([{"system": "http://example.org/x", "code": "referral"}]) is None
