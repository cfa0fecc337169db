"""A FHIR R4 Consent a caller sends, as the body of ``POST /v1/consents`` (issue 17 item 2).

The reverse of ``resources._consent_version``, and pure like it. It only moves values: every
rule about them (known codes, registered organisations, evidence for signed forms, dates) is
v1's, checked by v1's schema and service, so the FHIR face cannot drift from v1. What it adds is
``paths``: for each v1 field, the FHIR element it came from, so that v1's errors can name the
element the caller wrote (``purpose`` -> ``Consent.provision.purpose[0]``).

What cannot be mapped at all (not a Consent, a patient named otherwise than by NHS number or
the caller's local identifier, a provision that is not a permit) is a fault of its own, named
by its element.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from app.fhir import codes
from app.fhir.resources import PARTICIPATION_TYPE_SYSTEM

CONSENT_FORM_SYSTEM: Final = codes.CONSENT_FORM_SYSTEM
IRCP: Final = "IRCP"


@dataclass
class Intake:
    """A v1 consent body, where each field came from, and what could not be mapped."""

    body: dict[str, Any] = field(default_factory=dict)
    # v1 field path (dotted, as v1 names it: ``recipients.1``) -> FHIR element.
    paths: dict[str, str] = field(default_factory=dict)
    # (FHIR element, why)
    faults: list[tuple[str, str]] = field(default_factory=list)
    # Consent.dateTime, as sent: when the person gave the consent (import only).
    given_at: str | None = None

    def put(self, name: str, value: Any, element: str) -> None:
        self.body[name] = value
        self.paths[name] = element

    def fault(self, element: str, message: str) -> None:
        self.faults.append((element, message))


def _codes_of(concept: Any) -> list[Mapping[str, Any]]:
    """The Codings of a CodeableConcept (or a list of Codings, as ``purpose``/``class`` are)."""
    if isinstance(concept, Mapping):
        coding = concept.get("coding")
        return [c for c in coding if isinstance(c, Mapping)] if isinstance(coding, list) else []
    if isinstance(concept, list):
        return [c for c in concept if isinstance(c, Mapping)]
    return []


def _code(codings: list[Mapping[str, Any]], system: str) -> Any:
    """The code in ``system``; else, so that v1's message names what was sent, the first code."""
    for coding in codings:
        if coding.get("system") == system:
            return coding.get("code")
    return codings[0].get("code") if codings else None


def _list(resource: Mapping[str, Any], name: str, where: str, intake: Intake) -> list[Any]:
    value = resource.get(name, [])
    if not isinstance(value, list):
        intake.fault(f"{where}.{name}", "must be an array")
        return []
    return value


def _patient(resource: Mapping[str, Any], intake: Intake) -> None:
    where = "Consent.patient.identifier"
    patient = resource.get("patient")
    ident = patient.get("identifier") if isinstance(patient, Mapping) else None
    if not isinstance(ident, Mapping):
        intake.fault(where, f"is required: {{system: {codes.NHS_NUMBER_SYSTEM}, value: <n>}}")
        return
    system, value = ident.get("system"), ident.get("value")
    if system == codes.NHS_NUMBER_SYSTEM:
        intake.put("subject", {"nhs_number": value}, where + ".value")
        intake.paths["subject.nhs_number"] = where + ".value"
    else:
        # Any other system is a local identifier, under v1's rule (the caller's own system).
        intake.put("subject", {"local_id": {"system": system, "value": value}}, where)
        intake.paths["subject.local_id.system"] = where + ".system"
        intake.paths["subject.local_id.value"] = where + ".value"
        intake.paths["subject.local_id"] = where


def _provision(resource: Mapping[str, Any], intake: Intake) -> None:
    where = "Consent.provision"
    provision = resource.get("provision")
    if not isinstance(provision, Mapping):
        intake.fault(where, "is required: the purpose, recipients and data categories")
        return
    if provision.get("type", "permit") != "permit":
        intake.fault(f"{where}.type", "must be permit: the service records consents, not denials")
    purposes = _codes_of(provision.get("purpose"))
    purpose = codes.purpose_from_codings([dict(c) for c in purposes])
    intake.put(
        "purpose",
        purpose if purpose is not None else _code(purposes, codes.PURPOSE_SYSTEM),
        f"{where}.purpose[0]",
    )
    recipients: list[Any] = []
    for n, actor in enumerate(_list(provision, "actor", where, intake)):
        at = f"{where}.actor[{n}]"
        role = _codes_of(actor.get("role") if isinstance(actor, Mapping) else None)
        if _code(role, PARTICIPATION_TYPE_SYSTEM) != IRCP:
            intake.fault(f"{at}.role", "must be IRCP (information recipient)")
        ref = actor.get("reference") if isinstance(actor, Mapping) else None
        ident = ref.get("identifier") if isinstance(ref, Mapping) else None
        if not isinstance(ident, Mapping) or ident.get("system") != codes.ORGANISATION_ID_SYSTEM:
            intake.fault(
                f"{at}.reference.identifier",
                f"must name an organisation: {{system: {codes.ORGANISATION_ID_SYSTEM}, value}}",
            )
            continue
        intake.paths[f"recipients.{len(recipients)}"] = f"{at}.reference.identifier.value"
        recipients.append(ident.get("value"))
    intake.put("recipients", recipients, f"{where}.actor")
    classes = _list(provision, "class", where, intake)
    categories: list[Any] = []
    for n, coding in enumerate(classes):
        intake.paths[f"data_categories.{n}"] = f"{where}.class[{n}]"
        categories.append(_code(_codes_of([coding]), codes.DATA_CATEGORY_SYSTEM))
    intake.put("data_categories", categories, f"{where}.class")
    period = provision.get("period")
    if isinstance(period, Mapping):
        if "start" in period:
            intake.put("valid_from", period["start"], f"{where}.period.start")
        if "end" in period:
            intake.put("expires_at", period["end"], f"{where}.period.end")


def consent_request(resource: Any) -> Intake:
    """The v1 body a FHIR Consent stands for (see the module docstring)."""
    intake = Intake()
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "Consent":
        intake.fault("Consent", "must be a FHIR Consent resource (resourceType Consent)")
        return intake
    if resource.get("status", "active") != "active":
        intake.fault("Consent.status", "must be active: the service records a consent as given")
    _patient(resource, intake)
    form = None
    for n, category in enumerate(_list(resource, "category", "Consent", intake)):
        for coding in _codes_of(category):
            if coding.get("system") == CONSENT_FORM_SYSTEM:
                form = coding.get("code")
                intake.paths["form"] = f"Consent.category[{n}]"
    if form is None:
        intake.fault(
            "Consent.category", f"must hold the consent form, a code of {CONSENT_FORM_SYSTEM}"
        )
    else:
        intake.body["form"] = form
    attachment = resource.get("sourceAttachment")
    if isinstance(attachment, Mapping):
        for n, ext in enumerate(attachment.get("extension") or []):
            if isinstance(ext, Mapping) and ext.get("url") == codes.SHA256_EXTENSION:
                where = f"Consent.sourceAttachment.extension[{n}].valueString"
                intake.put("evidence_sha256", ext.get("valueString"), where)
    intake.paths.setdefault("evidence_sha256", "Consent.sourceAttachment")
    if "dateTime" in resource:
        intake.given_at = resource["dateTime"]
    _provision(resource, intake)
    return intake


def place(element: str, prefix: str = "") -> str:
    """``element`` (``Consent.x``) inside a Bundle entry: ``prefix`` is ``Bundle.entry[n]``,
    whose ``resource`` stands for the Consent."""
    if not prefix:
        return element
    rest = element.removeprefix("Consent")
    return f"{prefix}.resource{rest}"


def element_of(intake: Intake, v1_field: str, prefix: str = "") -> str:
    """The FHIR element a v1 field path came from (the nearest mapped parent, else the
    resource itself)."""
    name = v1_field
    while name:
        if name in intake.paths:
            return place(intake.paths[name], prefix)
        name = name.rpartition(".")[0]
    return place("Consent", prefix)
