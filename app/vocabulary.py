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
PURPOSES: Final = (
    "referral",
    "case_conferencing",
    "evaluation",
    "sms_contact",
    "employer_contact",
)
DATA_CATEGORIES: Final = (
    "identity",
    "contact_details",
    "service_status",
    "employment_status",
    "work_needs",
    "condition",
    "outcome_measures",
    "clinical_notes",
)
CONSENT_FORMS: Final = ("verbal", "written", "electronic")
SIGNED_FORMS: Final = ("written", "electronic")
OBJECTION_SCOPES: Final = ("direct_care", "national_data_opt_out")
# Why a consent was withdrawn: codes, not free text, so nothing identifying enters the log.
WITHDRAWAL_REASONS: Final = (
    "person_withdrew",
    "recorded_in_error",
    "superseded",
    "no_longer_needed",
    "other",
)
