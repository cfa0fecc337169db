"""Closed vocabularies from ig-rules.md that the storage layer validates against.

The policy file (``policies/``) states the same kinds; the policy loader checks that the two
agree, so an organisation can never be registered with a kind the policy cannot reason about.
"""

from __future__ import annotations

from typing import Final

ORGANISATION_KINDS: Final = (
    "health",
    "social_care",
    "employment_nhs",
    "employment_dwp",
    "dwp",
    "employer",
    "evaluator",
)
FUNDERS: Final = ("nhs", "dwp", "local_authority", "ohid", "other")
ROLES: Final = ("case_system", "ig_lead", "patient_portal", "auditor", "admin")
