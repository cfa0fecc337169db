"""A FHIR R4 Consent a caller sends, as the body of ``POST /v1/consents`` (issue 17 item 2).

The reverse of ``resources._consent_version``, and pure like it. It only moves values: every
rule about them (known codes, registered organisations, evidence for signed forms, dates) is
v1's, checked by v1's schema and service, so the FHIR face cannot drift from v1. What it adds is
``paths``: for each v1 field, the FHIR element it came from, so that v1's errors can name the
element the caller wrote (``purpose`` -> ``Consent.provision.purpose[0]``).

What cannot be mapped at all (not a Consent, a patient named otherwise than by NHS number or
the caller's local identifier, a provision that is not a permit) is a fault of its own, named
by its element. So is every element it does not understand (``ALLOWED``): an element left out
(a nested deny, ``provision.data``, ``dataPeriod``, a second purpose) would record a consent
wider than the person agreed to, so intake keeps an allow-list rather than a list of what to
refuse. Every shape check is total: no client JSON raises here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from app.fhir import codes
from app.fhir.resources import CONSENT_ACTION_SYSTEM, PARTICIPATION_TYPE_SYSTEM
from app.vocabulary import PURPOSES

CONSENT_FORM_SYSTEM: Final = codes.CONSENT_FORM_SYSTEM
IRCP: Final = "IRCP"
# The one action a consent here permits: disclosing (sharing) the data listed.
DISCLOSE: Final = "disclose"
NOT_RECORDED: Final = (
    "is not an element this service records: it records a permit for the purposes, "
    "recipients and categories listed; record exceptions as a narrower consent"
)
# What intake understands, element by element (FHIR path without indexes -> its elements).
# ``id``, ``meta``, ``text``, ``performer``, ``organization``, ``policy`` and ``policyRule`` say
# nothing about what the person agreed to (the recorder is the caller, the policy the one in
# force): accepted and ignored. ``extension`` is not: even our own (a confirmation) would be
# a claim the service does not check on a create.
ALLOWED: Final[dict[str, frozenset[str]]] = {
    "Consent": frozenset(
        {
            "resourceType",
            "id",
            "meta",
            "text",
            "status",
            "scope",
            "category",
            "patient",
            "dateTime",
            "performer",
            "organization",
            "sourceAttachment",
            "policy",
            "policyRule",
            "provision",
        }
    ),
    "Consent.patient": frozenset({"identifier", "display"}),
    "Consent.patient.identifier": frozenset({"system", "value"}),
    "Consent.sourceAttachment": frozenset({"extension", "contentType", "title"}),
    "Consent.provision": frozenset({"type", "period", "actor", "action", "purpose", "class"}),
    "Consent.provision.period": frozenset({"start", "end"}),
    "Consent.provision.actor": frozenset({"role", "reference"}),
    "Consent.provision.actor.reference": frozenset({"identifier", "display"}),
    "Consent.provision.actor.reference.identifier": frozenset({"system", "value"}),
}


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


def _understood(value: Mapping[str, Any], kind: str, where: str, intake: Intake) -> None:
    """Refuse each element of ``value`` (at ``where``, an element of kind ``kind``) that intake
    does not map exactly (``ALLOWED``)."""
    for name in value:
        if name not in ALLOWED[kind]:
            intake.fault(f"{where}.{name}", NOT_RECORDED)


def _object(
    value: Any, kind: str, where: str, intake: Intake, *, required: str | None = None
) -> Mapping[str, Any] | None:
    """``value`` if it is a JSON object (its elements checked against ``ALLOWED``); else a
    fault, unless it is absent and not ``required`` (the why when it is)."""
    if value is None and required is None:
        return None
    if not isinstance(value, Mapping):
        intake.fault(where, required if value is None and required else "must be an object")
        return None
    _understood(value, kind, where, intake)
    return value


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


def _str(value: Any) -> str | None:
    """A code as sent, if it is a string (anything else is no code: v1's schema names it)."""
    return value if isinstance(value, str) else None


def _purposes_meant(coding: Mapping[str, Any]) -> frozenset[str]:
    """Which of our purposes one Coding can stand for: ours exactly, or each of ours that its
    v3 PurposeOfUse code maps to (``COC`` is referral and case conferencing); none if unknown."""
    code = _str(coding.get("code"))
    if coding.get("system") == codes.PURPOSE_SYSTEM and code in PURPOSES:
        return frozenset({code})
    if coding.get("system") == codes.PURPOSE_OF_USE_SYSTEM and code is not None:
        return frozenset(p for p, v3 in codes.PURPOSE_OF_USE.items() if v3 == code)
    return frozenset()


def _purpose(provision: Mapping[str, Any], where: str, intake: Intake) -> None:
    """The one purpose all of ``provision.purpose`` stands for. Codings may say one purpose in
    several systems (ours and v3, as the read face writes them); purposes that differ are
    refused, as a consent here is for one purpose (record one consent per purpose)."""
    purposes = _list(provision, "purpose", where, intake)
    where = f"{where}.purpose"
    # A purpose refused here is not refused again by v1 (as missing), naming the resource.
    intake.paths["purpose"] = where
    meant: list[frozenset[str]] = []
    for n, coding in enumerate(purposes):
        if not isinstance(coding, Mapping):
            intake.fault(f"{where}[{n}]", "must be a Coding")
            return
        meaning = _purposes_meant(coding)
        if not meaning:
            # Unknown: v1's schema says why, naming this Coding.
            intake.put("purpose", coding.get("code"), f"{where}[{n}]")
            return
        meant.append(meaning)
    if not meant:
        intake.put("purpose", None, where)  # v1: required
        return
    common = frozenset.intersection(*meant)
    if len(common) == 1:
        intake.put("purpose", next(iter(common)), f"{where}[0]")
    elif common:
        intake.fault(
            where,
            f"could mean any of {', '.join(sorted(common))}: send the purpose as a code of "
            f"{codes.PURPOSE_SYSTEM}",
        )
    else:
        intake.fault(
            where,
            "names more than one purpose: a consent here is for one purpose; record a consent "
            "for each",
        )


def _action(provision: Mapping[str, Any], where: str, intake: Intake) -> None:
    """``provision.action`` may only say what a consent here permits: disclosing."""
    for n, action in enumerate(_list(provision, "action", where, intake)):
        codings = _codes_of(action)
        if not codings or any(
            (c.get("system"), c.get("code")) != (CONSENT_ACTION_SYSTEM, DISCLOSE) for c in codings
        ):
            intake.fault(
                f"{where}.action[{n}]",
                f"must be {CONSENT_ACTION_SYSTEM}#{DISCLOSE}: a consent here permits sharing "
                "(disclosing) the data listed, and nothing else",
            )


def _patient(resource: Mapping[str, Any], intake: Intake) -> None:
    where = "Consent.patient.identifier"
    required = f"is required: {{system: {codes.NHS_NUMBER_SYSTEM}, value: <n>}}"
    patient = _object(
        resource.get("patient"), "Consent.patient", "Consent.patient", intake, required=required
    )
    if patient is None:
        return
    ident = _object(patient.get("identifier"), where, where, intake, required=required)
    if ident is None:
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
    provision = _object(
        resource.get("provision"),
        where,
        where,
        intake,
        required="is required: the purpose, recipients and data categories",
    )
    if provision is None:
        return
    if provision.get("type", "permit") != "permit":
        intake.fault(f"{where}.type", "must be permit: the service records consents, not denials")
    _purpose(provision, where, intake)
    _action(provision, where, intake)
    recipients: list[Any] = []
    for n, actor in enumerate(_list(provision, "actor", where, intake)):
        at = f"{where}.actor[{n}]"
        if not isinstance(actor, Mapping):
            intake.fault(at, "must be an object")
            continue
        _understood(actor, f"{where}.actor", at, intake)
        role = _codes_of(actor.get("role"))
        if _code(role, PARTICIPATION_TYPE_SYSTEM) != IRCP:
            intake.fault(f"{at}.role", "must be IRCP (information recipient)")
        ref = _object(actor.get("reference"), f"{where}.actor.reference", f"{at}.reference", intake)
        ident = None
        if ref is not None:
            ident = _object(
                ref.get("identifier"),
                f"{where}.actor.reference.identifier",
                f"{at}.reference.identifier",
                intake,
            )
        if ident is None or ident.get("system") != codes.ORGANISATION_ID_SYSTEM:
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
    period = _object(provision.get("period"), f"{where}.period", f"{where}.period", intake)
    if period is not None:
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
    _understood(resource, "Consent", "Consent", intake)
    if resource.get("status", "active") != "active":
        intake.fault("Consent.status", "must be active: the service records a consent as given")
    _patient(resource, intake)
    form = None
    for n, category in enumerate(_list(resource, "category", "Consent", intake)):
        for coding in _codes_of(category):
            if coding.get("system") != CONSENT_FORM_SYSTEM:
                continue
            if form is not None and coding.get("code") != form:
                # A signed form and a verbal one are different consents to the policy.
                intake.fault(f"Consent.category[{n}]", "names a second consent form: send one")
                continue
            form = coding.get("code")
            intake.paths.setdefault("form", f"Consent.category[{n}]")
    if form is None:
        intake.fault(
            "Consent.category", f"must hold the consent form, a code of {CONSENT_FORM_SYSTEM}"
        )
    else:
        intake.body["form"] = form
    where = "Consent.sourceAttachment"
    attachment = _object(resource.get("sourceAttachment"), where, where, intake)
    if attachment is not None:
        for n, ext in enumerate(_list(attachment, "extension", where, intake)):
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
