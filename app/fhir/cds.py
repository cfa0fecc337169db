"""CDS Hooks 2.0 ``patient-consent-consult`` (the hook of LEAP-CDS): a consult's context read
into the terms of ``POST /v1/decisions``, and the decision written back as LEAP's one card.

Pure like ``app/ledger``: no Flask, no database, no clock. The decision itself is made and
logged by the decisions service, exactly as for ``/v1/decisions``; this module only translates.

How our answers map to LEAP's three (README, "CDS Hooks"):

- ``CONSENT_PERMIT``: some category asked for is permitted. Those refused (G7 lets the rest be
  shared) are one ``REDACT`` obligation naming them as data-category Codings; the policy's own
  obligations follow, in our obligation CodeSystem.
- ``NO_CONSENT``: nothing is permitted, and every category was refused for want of a consent
  that can be relied on (none, expired, not yet valid, not signed, not confirmed, or not
  listing the category): a usable consent would change the answer.
- ``CONSENT_DENY``: nothing is permitted, and something else refused it: the person withdrew
  their consent (G5: the person said no, and the engine names a withdrawal before an
  objection in force, so a withdrawal must never read as "no consent, apply your default"),
  the person objected (G3, opt-out), a rule forbids the route (P10...), the category is above
  the recipient's ceiling (G7), or no rule covers the route at all (G0).
  When some categories lack consent and others are refused outright, the refusal wins.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from app.fhir.codes import (
    CANONICAL_BASE,
    DATA_CATEGORY_SYSTEM,
    NHS_NUMBER_SYSTEM,
    ORGANISATION_ID_SYSTEM,
    PURPOSE_OF_USE,
    PURPOSE_OF_USE_SYSTEM,
    PURPOSE_SYSTEM,
    SUBJECT_ID_SYSTEM,
    consent_reference,
    data_category_coding,
    obligation_coding,
    purpose_from_codings,
)
from app.vocabulary import DATA_CATEGORIES, PURPOSES

HOOK: Final = "patient-consent-consult"
SERVICE_ID: Final = HOOK

CONSENT_PERMIT: Final = "CONSENT_PERMIT"
CONSENT_DENY: Final = "CONSENT_DENY"
NO_CONSENT: Final = "NO_CONSENT"
# LEAP's indicator for each decision (its README, "Response").
INDICATOR: Final = {CONSENT_PERMIT: "info", NO_CONSENT: "warning", CONSENT_DENY: "critical"}

# HL7 v3 ObligationPolicy REDACT: the only obligation LEAP emits; its codes are what to remove.
REDACT: Final = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "REDACT"}

# Every consent we hold is a privacy consent (FHIR consentscope ``patient-privacy``, LOINC
# 59284-0 "Patient Consent"): a consult narrowed to other consent categories finds none here.
CONSENT_SCOPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
OUR_CONSENT_CATEGORIES: Final = frozenset(
    {(CONSENT_SCOPE_SYSTEM, "patient-privacy"), ("http://loinc.org", "59284-0")}
)

# Our card extension's key, in the reverse-domain notation CDS Hooks recommends (section
# Extensions), from the one canonical base: ``example.consent-ledger.decision``.
EXTENSION_KEY: Final = ".".join(
    [*reversed(str(urlsplit(CANONICAL_BASE).hostname).split(".")), "decision"]
)

# Reasons a category is refused for want of a usable consent (app/policy/engine.py).
NO_CONSENT_REASONS: Final = frozenset(
    {
        "no_consent",
        "category_not_in_consent",
        "consent_expired",
        "consent_not_yet_valid",
        "consent_not_signed",
        "consent_needs_confirmation",
    }
)

# The v3 PurposeOfUse codes that name exactly one of our purposes (COC names two).
_V3: Final = [v for v in PURPOSE_OF_USE.values() if v is not None]
UNAMBIGUOUS_V3: Final = tuple(v for v in _V3 if _V3.count(v) == 1)

SUBJECT_REF: Final = re.compile(r"sub_[0-9a-f]{32}")
# Identifier systems a person may be named by: the NHS number, or our own subject reference.
PERSON_SYSTEMS: Final = (NHS_NUMBER_SYSTEM, SUBJECT_ID_SYSTEM)


def discovery(usage_requirements: str) -> dict[str, Any]:
    """``GET /cds-services``: the one service. No ``prefetch``: we need none of the client's
    FHIR data (optional in CDS Hooks 2.0)."""
    return {
        "services": [
            {
                "hook": HOOK,
                "id": SERVICE_ID,
                "title": "Patient consent consult (consent-ledger)",
                "description": (
                    "May this organisation share these categories of this person's data with "
                    "that organisation for this purpose, now? Decided under the policy in force "
                    "and recorded in the signed log, as POST /v1/decisions is; answered as one "
                    "LEAP-CDS consent decision card."
                ),
                "usageRequirements": usage_requirements,
            }
        ]
    }


# -- the request -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Consult:
    """A consult's context in our terms. ``*_at``: the index in the context's list the value came
    from, to name it in a refusal."""

    person_system: str  # NHS_NUMBER_SYSTEM or SUBJECT_ID_SYSTEM
    person: str
    person_at: int
    recipient: str
    recipient_at: int
    purpose: str
    categories: tuple[str, ...]


class ContextErrors(ValueError):
    """Fields of the context at fault: dotted path inside ``context`` -> why."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def read_context(context: Mapping[str, Any]) -> Consult:
    """The consult, from a context already checked for shape (lists of identifiers and codes,
    ``purposeOfUse`` a code or a list of codes); every field at fault is named at once."""
    errors: dict[str, str] = {}
    person = _one(context["patientId"], PERSON_SYSTEMS, "patientId", "person", errors)
    recipient = _one(context["actor"], (ORGANISATION_ID_SYSTEM,), "actor", "recipient", errors)
    purpose = _purpose(context["purposeOfUse"], errors)
    categories = _categories(context["class"], errors)
    narrowed = context.get("category")
    if narrowed is not None and not any(
        (c["system"], c["code"]) in OUR_CONSENT_CATEGORIES for c in narrowed
    ):
        errors["category"] = (
            "every consent this service holds is a privacy consent: name consentscope "
            "patient-privacy or LOINC 59284-0 among the categories, or leave category out"
        )
    if "content" in context:
        errors["content"] = (
            "this service holds no data and redacts none: ask without content (LEAP's content "
            "mode), and apply the card's REDACT obligation yourself"
        )
    if errors:
        raise ContextErrors(errors)
    assert person is not None
    assert recipient is not None
    assert purpose is not None
    return Consult(
        person_system=person[0],
        person=person[1],
        person_at=person[2],
        recipient=recipient[1],
        recipient_at=recipient[2],
        purpose=purpose,
        categories=tuple(categories),
    )


def _one(
    identifiers: Sequence[Mapping[str, str]],
    systems: Sequence[str],
    field: str,
    what: str,
    errors: dict[str, str],
) -> tuple[str, str, int] | None:
    """The one party the identifiers in ``systems`` name. Identifiers of other systems are
    left alone: LEAP sends every identifier of a party it knows, and a local one means nothing
    here."""
    ours = [(n, i) for n, i in enumerate(identifiers) if i.get("system") in systems]
    if not ours:
        errors[field] = f"name the {what} by an identifier of system {' or '.join(systems)}"
        return None
    at, first = ours[0]
    for n, other in ours[1:]:
        if _same(other) != _same(first):
            errors[f"{field}.{n}.value"] = (
                f"a consult asks about one {what}, and this names another: ask once per {what}"
                if what == "recipient"
                else f"a consult is about one {what}: name them by one NHS number or one "
                "subject reference"
            )
            return None
    return first["system"], first["value"], at


def _same(identifier: Mapping[str, str]) -> tuple[str, str]:
    # An NHS number may be written with spaces (as v1 accepts it): the same number either way.
    system, value = identifier["system"], identifier["value"]
    return system, value.replace(" ", "") if system == NHS_NUMBER_SYSTEM else value


def _purpose(codes: str | Sequence[str], errors: dict[str, str]) -> str | None:
    """Our purpose, from our own code or a v3 PurposeOfUse code naming exactly one of ours
    (LEAP sends codes without their system; ours are lower case, v3's upper)."""
    listed = [codes] if isinstance(codes, str) else list(codes)
    if not listed:
        errors["purposeOfUse"] = "give the purpose: one of ours, or a v3 PurposeOfUse code"
        return None
    codings = [
        {"system": PURPOSE_SYSTEM if c in PURPOSES else PURPOSE_OF_USE_SYSTEM, "code": c}
        for c in listed
    ]
    found = purpose_from_codings(codings)
    if found is None:
        v3 = ", ".join(f"{v} ({p})" for p, v in PURPOSE_OF_USE.items() if v in UNAMBIGUOUS_V3)
        errors["purposeOfUse"] = (
            f"{', '.join(listed)}: not a purpose of ours ({', '.join(PURPOSES)}) nor a v3 "
            f"PurposeOfUse code that names exactly one of them ({v3}); COC is both referral "
            "and case_conferencing: send ours"
        )
        return None
    for code in listed:
        if code not in (found, PURPOSE_OF_USE[found]):
            errors["purposeOfUse"] = (
                f"a consult is for one purpose: {code} is not {found}; ask once per purpose"
            )
            return None
    return found


def _categories(classes: Sequence[Mapping[str, str]], errors: dict[str, str]) -> list[str]:
    if not classes:
        errors["class"] = "name at least one data category"
    out = []
    for n, c in enumerate(classes):
        if c["system"] != DATA_CATEGORY_SYSTEM:
            errors[f"class.{n}.system"] = (
                f"must be {DATA_CATEGORY_SYSTEM}: this service decides on its own data "
                "categories, not resource or content types"
            )
        elif c["code"] not in DATA_CATEGORIES:
            errors[f"class.{n}.code"] = (
                f"{c['code']!r} is not one of our data categories ({', '.join(DATA_CATEGORIES)})"
            )
        out.append(c["code"])
    return out


# -- the answer -------------------------------------------------------------------------------


def leap_decision(decision: Mapping[str, Any]) -> str:
    """LEAP's word for one of our decisions (the module's docstring says why)."""
    if decision["permitted_categories"]:
        return CONSENT_PERMIT
    reasons = {d["reason"] for d in decision["denied_categories"]}
    if reasons and reasons <= NO_CONSENT_REASONS:
        return NO_CONSENT
    return CONSENT_DENY


def obligations(decision: Mapping[str, Any], leap: str) -> list[dict[str, Any]]:
    """LEAP's obligations: none unless something may be shared (LEAP sends none on a deny);
    then REDACT for each category refused, and the policy's own obligations."""
    if leap != CONSENT_PERMIT:
        return []
    out: list[dict[str, Any]] = []
    refused = [d["category"] for d in decision["denied_categories"]]
    if refused:
        codes = [data_category_coding(c) for c in refused]
        out.append({"id": dict(REDACT), "parameters": {"codes": codes}})
    out += [{"id": obligation_coding(o)} for o in decision["obligations"]]
    return out


def detail(decision: Mapping[str, Any], leap: str) -> str:
    """The card's explanation (GitHub-flavoured Markdown, as CDS Hooks requires): what may be
    shared, what not and by which rule, each reason with its legal source, and where the
    decision is in the log."""
    lines = {
        CONSENT_PERMIT: (
            "**Permitted**: only the categories listed as permitted below may be shared now; "
            "any other is refused (the REDACT obligation names them in this service's "
            "data-category codes: a category you cannot match there is not permitted)."
        ),
        NO_CONSENT: (
            "**No consent**: no consent this service holds can be relied on for this share. "
            "This is not a permit: do not share on this answer."
        ),
        CONSENT_DENY: "**Refused**: this share must not be made.",
    }[leap]
    out = [lines, ""]
    if decision["permitted_categories"]:
        out.append("- Permitted: " + ", ".join(f"`{c}`" for c in decision["permitted_categories"]))
    for d in decision["denied_categories"]:
        out.append(f"- Refused: `{d['category']}` (rule {d['rule']}, `{d['reason']}`)")
    if decision["obligations"] and leap == CONSENT_PERMIT:
        out.append("- Obligations: " + ", ".join(f"`{o}`" for o in decision["obligations"]))
    out += ["", "Why:", ""]
    out += [f"- **{r['rule']}** (`{r['code']}`): {r['message']}" for r in decision["reasons"]]
    ledger = decision.get("ledger") or {}
    out += [
        "",
        f"Decision `{decision['id']}`, log entry {ledger.get('index')}, "
        f"policy version `{decision['policy_version']}`.",
    ]
    return "\n".join(out)


def response(decision: Mapping[str, Any], source_url: str) -> dict[str, Any]:
    """The consult's answer: LEAP's one card for our decision (the body ``POST /v1/decisions``
    answers), our whole decision under :data:`EXTENSION_KEY`."""
    leap = leap_decision(decision)
    relied_on = [consent_reference(c) for c in decision["consents"]]
    extension: dict[str, Any] = {"decision": leap, "obligations": obligations(decision, leap)}
    if relied_on:
        # LEAP's basedOn is one string: the first consent relied on; all of them are in ours.
        extension["basedOn"] = relied_on[0]
    extension[EXTENSION_KEY] = {
        **decision,
        "subject": {"system": SUBJECT_ID_SYSTEM, "value": decision["subject_ref"]},
        "basedOn": relied_on,
    }
    card = {
        "summary": leap,
        "indicator": INDICATOR[leap],
        "detail": detail(decision, leap),
        "source": {"label": "consent-ledger", "url": source_url},
        "extension": extension,
    }
    return {"cards": [card]}
