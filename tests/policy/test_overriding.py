"""Which objections override an earlier consent (G3), as the import's check asks the engine."""

from __future__ import annotations

import pytest

from app.policy.engine import overriding_scopes
from app.services.decisions.policies import DEFAULT_POLICY_FILE, parse_policy_file

POLICY = parse_policy_file(DEFAULT_POLICY_FILE)


@pytest.mark.parametrize(
    ("purpose", "scopes"),
    [
        ("referral", {"direct_care"}),
        ("case_conferencing", {"direct_care"}),
        # No consent rule for these names overridden_by_later_objection.
        ("evaluation", set()),
        ("sms_contact", set()),
        ("employer_contact", set()),
    ],
)
def test_only_the_scopes_the_consent_rules_name_override_an_earlier_consent(
    purpose: str, scopes: set[str]
) -> None:
    assert overriding_scopes(POLICY, purpose) == scopes
