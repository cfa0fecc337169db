"""The code systems and identifier systems the FHIR and CDS Hooks faces use, in one place.

Our own vocabularies (``app/vocabulary.py``) are served as FHIR CodeSystems under one canonical
base. The project owns no domain yet, so the base is under ``.example`` (RFC 2606), which says
plainly that it is not resolvable; it is one constant, to change before a national deployment
(every stored resource is rendered on read, so nothing persisted carries it).

Purposes map to HL7 v3 PurposeOfUse where a code exists (HL7/UTG v3-ActReason, CodeSystem
version 4.0.0); two of ours share ``COC``, and ``employer_contact`` has none, so our own code is
always sent first and is the one read back.
"""

from __future__ import annotations

from typing import Final

from app.vocabulary import CONSENT_FORMS, DATA_CATEGORIES, OBJECTION_SCOPES, PURPOSES

CANONICAL_BASE: Final = "https://consent-ledger.example/fhir"

PURPOSE_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/purpose"
DATA_CATEGORY_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/data-category"
CONSENT_FORM_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/consent-form"
OBLIGATION_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/obligation"
WITHDRAWAL_REASON_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/withdrawal-reason"
# What an objection objects to (v1's ``scope``): a Consent of provision type deny names it.
OBJECTION_SCOPE_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/objection-scope"
# The problem types of app/errors.py (``/problems/<slug>``), carried in OperationOutcome details.
PROBLEM_TYPE_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/problem-type"
ORGANISATION_ID_SYSTEM: Final = f"{CANONICAL_BASE}/Id/organisation"
# The service's pseudonymous reference for a person (what v1 returns as ``subject_ref``): the
# FHIR faces never echo an NHS number, which is accepted as input only (README, "Security").
SUBJECT_ID_SYSTEM: Final = f"{CANONICAL_BASE}/Id/subject"
DISCLOSURE_ID_SYSTEM: Final = f"{CANONICAL_BASE}/Id/disclosure"
DECISION_ID_SYSTEM: Final = f"{CANONICAL_BASE}/Id/decision"
LOG_ENTRY_EXTENSION: Final = f"{CANONICAL_BASE}/StructureDefinition/log-entry"
# Attachment.hash is SHA-1 by definition (R4 datatypes): our SHA-256 rides in an extension.
SHA256_EXTENSION: Final = f"{CANONICAL_BASE}/StructureDefinition/sha256"
CONFIRMATION_EXTENSION: Final = f"{CANONICAL_BASE}/StructureDefinition/confirmation"
WITHDRAWAL_REASON_EXTENSION: Final = f"{CANONICAL_BASE}/StructureDefinition/withdrawal-reason"
POLICY_URN_PREFIX: Final = "urn:consent-ledger:policy:"

UK_CORE_CONSENT_PROFILE: Final = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Consent"
BALP_DISCLOSURE_SOURCE_PROFILE: Final = (
    "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PrivacyDisclosure.Source"
)

NHS_NUMBER_SYSTEM: Final = "https://fhir.nhs.uk/Id/nhs-number"
PURPOSE_OF_USE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"

# ours -> HL7 v3 PurposeOfUse (None: no v3 code fits).
PURPOSE_OF_USE: Final[dict[str, str | None]] = {
    "referral": "COC",
    "case_conferencing": "COC",
    "evaluation": "HOUTCOMS",
    "sms_contact": "PATADMIN",
    "employer_contact": None,
}
assert set(PURPOSE_OF_USE) == set(PURPOSES)


def purpose_codings(purpose: str) -> list[dict[str, str]]:
    """The Codings for one of our purposes: ours first, then the v3 PurposeOfUse if one fits."""
    codings = [{"system": PURPOSE_SYSTEM, "code": purpose}]
    v3 = PURPOSE_OF_USE[purpose]
    if v3 is not None:
        codings.append({"system": PURPOSE_OF_USE_SYSTEM, "code": v3})
    return codings


def purpose_from_codings(codings: list[dict[str, str]]) -> str | None:
    """Our purpose from Codings a caller sent: our own code if present (it is exact); else a
    v3 PurposeOfUse code that maps to exactly one of ours; else None (unknown or ambiguous,
    e.g. ``COC``, which is both referral and case conferencing)."""
    for coding in codings:
        if coding.get("system") == PURPOSE_SYSTEM and coding.get("code") in PURPOSES:
            return coding["code"]
    for coding in codings:
        if coding.get("system") == PURPOSE_OF_USE_SYSTEM:
            ours = [p for p, v3 in PURPOSE_OF_USE.items() if v3 == coding.get("code")]
            if len(ours) == 1:
                return ours[0]
    return None


def data_category_coding(category: str) -> dict[str, str]:
    if category not in DATA_CATEGORIES:
        raise ValueError(f"not a data category: {category!r}")
    return {"system": DATA_CATEGORY_SYSTEM, "code": category}


def consent_form_coding(form: str) -> dict[str, str]:
    if form not in CONSENT_FORMS:
        raise ValueError(f"not a consent form: {form!r}")
    return {"system": CONSENT_FORM_SYSTEM, "code": form}


def objection_scope_coding(scope: str) -> dict[str, str]:
    if scope not in OBJECTION_SCOPES:
        raise ValueError(f"not an objection scope: {scope!r}")
    return {"system": OBJECTION_SCOPE_SYSTEM, "code": scope}


# -- references and obligations (added for the CDS Hooks face) -------------------------------------


def fhir_id(our_id: str) -> str:
    """``cns_<hex>`` is not a FHIR id (``[A-Za-z0-9-.]{1,64}``); ours never hold ``-``, so
    ``_`` -> ``-`` is one-to-one."""
    return our_id.replace("_", "-")


def our_id(resource_id: str) -> str:
    return resource_id.replace("-", "_")


def consent_reference(consent_id: str) -> str:
    """A relative reference to our consent as a FHIR Consent (``Consent/cns-<hex>``)."""
    return f"Consent/{fhir_id(consent_id)}"


def obligation_coding(obligation: str) -> dict[str, str]:
    """One of the policy's obligations (``notify_subject_unless_prejudicial``...) as a Coding."""
    return {"system": OBLIGATION_SYSTEM, "code": obligation}
