"""The service's records as FHIR R4 (4.0.1) resources: pure functions of the v1 views.

Every function here takes what the v1 services already return (``consent_view``,
``disclosure_view``) plus what the HTTP layer knows (the base URL) and returns FHIR JSON. The
person is never named by NHS number in anything rendered here: the patient is the service's
pseudonymous ``subject_ref`` (lead's decision on issue 17, research note 8.1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from app.fhir import codes
from app.vocabulary import (
    CONSENT_FORMS,
    DATA_CATEGORIES,
    OBJECTION_SCOPES,
    PURPOSES,
    SIGNED_FORMS,
    WITHDRAWAL_REASONS,
)

FHIR_JSON: Final = "application/fhir+json"
FHIR_VERSION: Final = "4.0.1"

CONSENT_SCOPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_ACTION_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/consentaction"
PARTICIPATION_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
LOINC: Final = "http://loinc.org"
DCM: Final = "http://dicom.nema.org/resources/ontology/DCM"
LIFECYCLE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
AUDIT_ENTITY_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE: Final = "http://terminology.hl7.org/CodeSystem/object-role"
SECURITY_SOURCE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/security-source-type"
RESOURCE_TYPES: Final = "http://hl7.org/fhir/resource-types"


# -- ids ------------------------------------------------------------------------------------------


# -- OperationOutcome -----------------------------------------------------------------------------

# HTTP status -> OperationOutcome issue.code (R4 IssueType, a required binding).
_ISSUE_CODES: Final = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    408: "timeout",
    409: "conflict",
    413: "too-long",
    414: "too-long",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    431: "too-long",
    501: "not-supported",
    503: "transient",  # the log is unavailable: try again later
}


def issue_code(status: int) -> str:
    return _ISSUE_CODES.get(status, "exception" if status >= 500 else "invalid")


def operation_outcome(
    status: int,
    slug: str,
    title: str,
    diagnostics: Sequence[str],
    expressions: Sequence[str | None] = (),
) -> dict[str, Any]:
    """One error issue per thing at fault (each ``diagnostics`` line names it and why, and
    ``expressions``, where given, names the element as FHIRPath); the problem type
    (``/problems/<slug>``) rides in ``details`` so a client can tell errors of the same HTTP
    status apart, as with problem+json."""
    details = {"coding": [{"system": codes.PROBLEM_TYPE_SYSTEM, "code": slug}], "text": title}
    lines = list(diagnostics) or [title]
    where = list(expressions) + [None] * (len(lines) - len(expressions))
    issues: list[dict[str, Any]] = []
    for line, expression in zip(lines, where, strict=True):
        issue: dict[str, Any] = {
            "severity": "error",
            "code": issue_code(status),
            "details": details,
            "diagnostics": line,
        }
        if expression:
            issue["expression"] = [expression]
        issues.append(issue)
    return {"resourceType": "OperationOutcome", "issue": issues}


def warnings_outcome(warnings: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What v1 warns of when it records a consent (``warnings``: what it lists that the policy
    never permits), as the OperationOutcome a create answers under ``Prefer:
    return=OperationOutcome``: one warning issue each, its rule first in ``details`` (with
    the recipient and category), v1's message as ``diagnostics``. With nothing to warn of,
    one information issue says the consent was recorded (an OperationOutcome needs one)."""
    issues: list[dict[str, Any]] = []
    for w in warnings:
        about = f"recipient {w['recipient']}" + (
            f", category {w['category']}" if w.get("category") else ", every category"
        )
        issues.append(
            {
                "severity": "warning",
                "code": "business-rule",
                "details": {"text": f"{w['rule']}: {about}"},
                "diagnostics": w["message"],
            }
        )
    if not issues:
        issues.append(
            {
                "severity": "information",
                "code": "informational",
                "diagnostics": "recorded; the policy in force permits everything it lists",
            }
        )
    return {"resourceType": "OperationOutcome", "issue": issues}


# -- shared pieces --------------------------------------------------------------------------------


def organisation(org_id: str) -> dict[str, Any]:
    """A logical reference: the service serves no Organization resource (R4 references.html)."""
    return {
        "type": "Organization",
        "identifier": {"system": codes.ORGANISATION_ID_SYSTEM, "value": org_id},
    }


def patient(subject_ref: str) -> dict[str, Any]:
    return {
        "type": "Patient",
        "identifier": {"system": codes.SUBJECT_ID_SYSTEM, "value": subject_ref},
    }


def log_entry_extension(index: int, leaf_hash: str) -> dict[str, Any]:
    """Where this version sits in the signed log: its entry's index and RFC 9162 leaf hash."""
    return {
        "url": codes.LOG_ENTRY_EXTENSION,
        "extension": [
            {"url": "index", "valueUnsignedInt": index},
            {"url": "leafHash", "valueString": leaf_hash},
        ],
    }


def searchset(base: str, resources: Iterable[Mapping[str, Any]], total: int) -> dict[str, Any]:
    """A search result. No ``self`` link: the search named the person by NHS number, which is
    never echoed."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "entry": [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


# -- Consent --------------------------------------------------------------------------------------


def _consent_version(
    view: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    leaf_hashes: Mapping[int, str],
    policy_version: str | None,
) -> dict[str, Any]:
    """The consent as it stood after ``events`` (its history up to one log entry)."""
    last = events[-1]
    status = "active"
    extensions = [log_entry_extension(last["ledger_index"], leaf_hashes[last["ledger_index"]])]
    for event in events:
        if event["event"] == "confirmed":
            extensions.append(
                {
                    "url": codes.CONFIRMATION_EXTENSION,
                    "extension": [
                        {"url": "by", "valueReference": organisation(event["organisation"])},
                        {"url": "at", "valueDateTime": event["at"]},
                    ],
                }
            )
        elif event["event"] == "withdrawn":
            reason = event.get("reason")
            # Research note 3.5 and the lead's decision (5): a consent recorded in error is
            # "created wrongly and should be ignored", which is R4's entered-in-error.
            status = "entered-in-error" if reason == "recorded_in_error" else "inactive"
            if reason:
                extensions.append(
                    {
                        "url": codes.WITHDRAWAL_REASON_EXTENSION,
                        "valueCoding": {"system": codes.WITHDRAWAL_REASON_SYSTEM, "code": reason},
                    }
                )
    recorder = organisation(view["recorded_by"])
    period: dict[str, str] = {"start": view["valid_from"] or view["given_at"]}
    if view["expires_at"]:
        period["end"] = view["expires_at"]
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": codes.fhir_id(view["id"]),
        "meta": {
            "versionId": str(last["ledger_index"]),
            "lastUpdated": last["at"],
            "profile": [codes.UK_CORE_CONSENT_PROFILE],
        },
        "extension": extensions,
        "status": status,
        "scope": {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": "patient-privacy"}]},
        "category": [
            {"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]},
            {"coding": [codes.consent_form_coding(view["form"])]},
        ],
        "patient": patient(view["subject_ref"]),
        # When the consent was given (lead's decision 6): v1's given_at, which is recorded_at
        # unless an import said when it was given.
        "dateTime": view["given_at"],
        "performer": [recorder],
        "organization": [recorder],
    }
    if view["evidence_sha256"]:
        resource["sourceAttachment"] = {
            "title": "Signed consent form",
            "extension": [{"url": codes.SHA256_EXTENSION, "valueString": view["evidence_sha256"]}],
        }
    if policy_version:
        resource["policy"] = [
            {"authority": codes.CANONICAL_BASE, "uri": codes.POLICY_URN_PREFIX + policy_version}
        ]
    else:
        # ppc-1 needs policy or policyRule: an opt-in consent, where no policy version is known.
        resource["policyRule"] = {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        }
    resource["provision"] = {
        "type": "permit",
        "period": period,
        "actor": [
            {
                "role": {
                    "coding": [
                        {
                            "system": PARTICIPATION_TYPE_SYSTEM,
                            "code": "IRCP",
                            "display": "information recipient",
                        }
                    ]
                },
                "reference": organisation(recipient),
            }
            for recipient in view["recipients"]
        ],
        "action": [{"coding": [{"system": CONSENT_ACTION_SYSTEM, "code": "disclose"}]}],
        "purpose": codes.purpose_codings(view["purpose"]),
        # LEAP reads data categories from class, not securityLabel (research note 0.5, 8.7).
        "class": [codes.data_category_coding(c) for c in view["data_categories"]],
    }
    return resource


def consent_versions(
    view: Mapping[str, Any], leaf_hashes: Mapping[int, str], policy_version: str | None
) -> list[dict[str, Any]]:
    """Every version of a consent, oldest first: one per log entry about it (granted,
    confirmed, withdrawn). Expiry is not an event, so it makes no version."""
    events = sorted(view["history"], key=lambda e: e["ledger_index"])
    return [
        _consent_version(view, events[: n + 1], leaf_hashes, policy_version)
        for n in range(len(events))
    ]


def _objection_version(
    view: Mapping[str, Any], events: Sequence[Mapping[str, Any]], leaf_hashes: Mapping[int, str]
) -> dict[str, Any]:
    """An objection (``objection_view``) as it stood after ``events``: a Consent whose
    provision denies disclosure, as FHIR records a person's refusal (R4 Consent, "opt-out"),
    so a client reading a person's consents sees what overrides them (G3). Not claimed as UK
    Core: who recorded it is left out for most readers (v1's ``reveal_recorder``), and UK Core
    makes performer must-support."""
    last = events[-1]
    withdrawn = any(e["event"] == "withdrawn" for e in events)
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": codes.fhir_id(view["id"]),
        "meta": {"versionId": str(last["ledger_index"]), "lastUpdated": last["at"]},
        "extension": [log_entry_extension(last["ledger_index"], leaf_hashes[last["ledger_index"]])],
        "status": "inactive" if withdrawn else "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": "patient-privacy"}]},
        "category": [
            {"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]},
            {"coding": [codes.objection_scope_coding(view["scope"])]},
        ],
    }
    if view["subject_ref"] is not None:
        resource["patient"] = patient(view["subject_ref"])
    resource["dateTime"] = view["recorded_at"]
    if view["recorded_by"] is not None:
        recorder = organisation(view["recorded_by"])
        resource["performer"] = [recorder]
        resource["organization"] = [recorder]
    # ppc-1: an objection is an opt-out.
    resource["policyRule"] = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}]
    }
    resource["provision"] = {
        "type": "deny",
        "period": {"start": view["recorded_at"]},
        "action": [{"coding": [{"system": CONSENT_ACTION_SYSTEM, "code": "disclose"}]}],
    }
    return resource


def objection_versions(
    view: Mapping[str, Any], leaf_hashes: Mapping[int, str]
) -> list[dict[str, Any]]:
    """Every version of an objection, oldest first: recorded, then withdrawn if it was."""
    events = sorted(view["history"], key=lambda e: e["ledger_index"])
    return [_objection_version(view, events[: n + 1], leaf_hashes) for n in range(len(events))]


def history(base: str, versions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A ``history`` Bundle, newest first, with the request and response each version had
    (bdl-3, bdl-4)."""
    entries = []
    for n, version in reversed(list(enumerate(versions))):
        rid = version["id"]
        entries.append(
            {
                "fullUrl": f"{base}/Consent/{rid}",
                "resource": version,
                "request": (
                    {"method": "POST", "url": "Consent"}
                    if n == 0
                    else {"method": "PUT", "url": f"Consent/{rid}"}
                ),
                "response": {
                    "status": "201 Created" if n == 0 else "200 OK",
                    "etag": etag(version),
                    "lastModified": version["meta"]["lastUpdated"],
                },
            }
        )
    return {"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries}


def transaction_response(base: str, created: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The answer to a transaction of creates: one entry per request, in order, each the
    consent as read back (R4 http.html transaction; bdl-4: ``response`` in every entry)."""
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [
            {
                "fullUrl": f"{base}/Consent/{r['id']}",
                "resource": r,
                "response": {
                    "status": "201 Created",
                    "location": f"Consent/{r['id']}/_history/{r['meta']['versionId']}",
                    "etag": etag(r),
                    "lastModified": r["meta"]["lastUpdated"],
                },
            }
            for r in created
        ],
    }


def etag(resource: Mapping[str, Any]) -> str:
    return f'W/"{resource["meta"]["versionId"]}"'


# -- AuditEvent (IHE BALP PrivacyDisclosure, Source) ----------------------------------------------


def _balp_agent(org_id: str, dcm_code: str, display: str, requestor: bool) -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": DCM, "code": dcm_code, "display": display}]},
        "who": organisation(org_id),
        "requestor": requestor,
        # BALP makes network 1..1; organisations have no network address here, so a URN
        # naming the organisation stands in (type 5: URI).
        "network": {"address": f"urn:consent-ledger:organisation:{org_id}", "type": "5"},
    }


def audit_event(view: Mapping[str, Any], leaf_hash: str) -> dict[str, Any]:
    """A disclosure (``disclosure_view``), reported by the organisation the data left."""
    details = [{"type": "decision", "valueString": view["decision_id"]}]
    if view["basis"]:
        details.append({"type": "basis", "valueString": view["basis"]})
    if view["legal_basis"]:
        details.append({"type": "legal-basis", "valueString": view["legal_basis"]})
    entities: list[dict[str, Any]] = [
        {
            "what": patient(view["subject_ref"]),
            "type": {"system": AUDIT_ENTITY_TYPE, "code": "1", "display": "Person"},
            "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
        },
        {
            "what": {"identifier": {"system": codes.DISCLOSURE_ID_SYSTEM, "value": view["id"]}},
            "type": {"system": AUDIT_ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
            # The categories disclosed: no base element holds them (research note 4 (c)).
            "securityLabel": [codes.data_category_coding(c) for c in view["data_categories"]],
            "detail": details,
        },
    ]
    entities.extend(
        {
            "what": {"reference": codes.consent_reference(consent_id)},
            "type": {"system": RESOURCE_TYPES, "code": "Consent"},
            "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
        }
        for consent_id in view["consents"]
    )
    return {
        "resourceType": "AuditEvent",
        "id": codes.fhir_id(view["id"]),
        "meta": {"profile": [codes.BALP_DISCLOSURE_SOURCE_PROFILE]},
        "extension": [log_entry_extension(view["ledger_index"], leaf_hash)],
        "type": {"system": DCM, "code": "110106", "display": "Export"},
        "subtype": [{"system": LIFECYCLE_SYSTEM, "code": "disclose", "display": "Disclose"}],
        "action": "R",
        "recorded": view["disclosed_at"],
        "outcome": "0",
        "purposeOfEvent": [{"coding": codes.purpose_codings(view["purpose"])}],
        "agent": [
            _balp_agent(view["from"], "110153", "Source Role ID", True),
            _balp_agent(view["to"], "110152", "Destination Role ID", False),
        ],
        # val-audit-source: the observer is the source agent, the organisation that reported it.
        "source": {
            "site": "consent-ledger",
            "observer": organisation(view["from"]),
            "type": [
                {"system": SECURITY_SOURCE_TYPE, "code": "4", "display": "Application Server"}
            ],
        },
        "entity": entities,
    }


# -- CodeSystems ----------------------------------------------------------------------------------


def _display(code: str) -> str:
    return code.replace("_", " ").capitalize()


def _code_system(
    cs_id: str,
    url: str,
    title: str,
    description: str,
    concepts: Sequence[dict[str, Any]],
    properties: Sequence[dict[str, str]] = (),
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "CodeSystem",
        "id": cs_id,
        "url": url,
        "name": "".join(part.capitalize() for part in cs_id.split("-")),
        "title": title,
        "status": "active",
        "description": description,
        "caseSensitive": True,
        "content": "complete",
        "count": len(concepts),
    }
    if properties:
        resource["property"] = list(properties)
    resource["concept"] = list(concepts)
    return resource


def code_systems(
    tiers: Mapping[str, str],
    obligations: Iterable[str],
    problem_types: Mapping[str, tuple[str, str]],
) -> dict[str, dict[str, Any]]:
    """Every CodeSystem the resources above use, by id. ``tiers`` (category -> tier) and
    ``obligations`` come from the policy in force: they are the policy's, not fixed here;
    ``problem_types`` (slug -> (title, description)) are the errors' types."""
    purposes = [
        {
            "code": p,
            "display": _display(p),
            **(
                {"property": [{"code": "purposeOfUse", "valueCode": v3}]}
                if (v3 := codes.PURPOSE_OF_USE[p])
                else {}
            ),
        }
        for p in PURPOSES
    ]
    categories = [
        {
            "code": c,
            "display": _display(c),
            **({"property": [{"code": "tier", "valueCode": tiers[c]}]} if c in tiers else {}),
        }
        for c in DATA_CATEGORIES
    ]
    forms = [
        {
            "code": f,
            "display": _display(f),
            "property": [{"code": "signed", "valueBoolean": f in SIGNED_FORMS}],
        }
        for f in CONSENT_FORMS
    ]
    return {
        "purpose": _code_system(
            "purpose",
            codes.PURPOSE_SYSTEM,
            "Purposes of a share",
            "Why data is shared; purposeOfUse names the HL7 v3 PurposeOfUse code where one fits "
            "(http://terminology.hl7.org/CodeSystem/v3-ActReason).",
            purposes,
            [
                {
                    "code": "purposeOfUse",
                    "uri": codes.PURPOSE_OF_USE_SYSTEM,
                    "description": "the HL7 v3 PurposeOfUse code this purpose falls under",
                    "type": "code",
                }
            ],
        ),
        "data-category": _code_system(
            "data-category",
            codes.DATA_CATEGORY_SYSTEM,
            "Data categories",
            "What is shared; tier is the sensitivity tier the policy in force gives it.",
            categories,
            [{"code": "tier", "description": "sensitivity tier (T0 to T9)", "type": "code"}],
        ),
        "consent-form": _code_system(
            "consent-form",
            codes.CONSENT_FORM_SYSTEM,
            "Consent forms",
            "How a consent was given; a signed form carries the evidence's SHA-256.",
            forms,
            [{"code": "signed", "description": "the form is signed evidence", "type": "boolean"}],
        ),
        "obligation": _code_system(
            "obligation",
            codes.OBLIGATION_SYSTEM,
            "Obligations",
            "What an organisation must do under a decision or after a withdrawal.",
            [{"code": o, "display": _display(o)} for o in sorted(set(obligations))],
        ),
        "withdrawal-reason": _code_system(
            "withdrawal-reason",
            codes.WITHDRAWAL_REASON_SYSTEM,
            "Withdrawal reasons",
            "Why a consent was withdrawn; recorded_in_error shows as entered-in-error.",
            [{"code": r, "display": _display(r)} for r in WITHDRAWAL_REASONS],
        ),
        "objection-scope": _code_system(
            "objection-scope",
            codes.OBJECTION_SCOPE_SYSTEM,
            "Objection scopes",
            "What a person's objection refuses: shown as a Consent whose provision is deny.",
            [{"code": o, "display": _display(o)} for o in OBJECTION_SCOPES],
        ),
        "problem-type": _code_system(
            "problem-type",
            codes.PROBLEM_TYPE_SYSTEM,
            "Problem types",
            "What went wrong: an OperationOutcome's details, as /problems/<code> in /v1.",
            [
                {"code": slug, "display": title, "definition": description}
                for slug, (title, description) in problem_types.items()
            ],
        ),
    }


# -- CapabilityStatement --------------------------------------------------------------------------

# What the FHIR face serves: (resource type, interactions, search parameters). The routes in
# app/api/fhir.py are checked against this in the tests, both ways.
SERVED: Final = (
    ("Consent", ("read", "vread", "history-instance", "search-type", "create")),
    ("AuditEvent", ("search-type",)),
    ("CodeSystem", ("read",)),
)
_PATIENT_SEARCH: Final = {
    "Consent": "http://hl7.org/fhir/SearchParameter/clinical-patient",
    "AuditEvent": "http://hl7.org/fhir/SearchParameter/AuditEvent-patient",
}
_PAGING: Final = {
    "AuditEvent": " Newest first, paged with _count (1 to 500, default 50) and page (from 1).",
    "Consent": " The person's objections follow their consents, each a Consent whose "
    "provision.type is deny (id obj-...).",
}
_PROFILES: Final = {
    "Consent": codes.UK_CORE_CONSENT_PROFILE,
    "AuditEvent": codes.BALP_DISCLOSURE_SOURCE_PROFILE,
}


def capability_statement(base: str, software_version: str, date: str) -> dict[str, Any]:
    resources = []
    for resource_type, interactions in SERVED:
        entry: dict[str, Any] = {
            "type": resource_type,
            "interaction": [{"code": i} for i in interactions],
        }
        if resource_type in _PROFILES:
            entry["supportedProfile"] = [_PROFILES[resource_type]]
        if "history-instance" in interactions:
            entry["versioning"] = "versioned"
            entry["readHistory"] = "vread" in interactions
        if resource_type in _PATIENT_SEARCH:
            entry["searchParam"] = [
                {
                    "name": "patient",
                    "definition": _PATIENT_SEARCH[resource_type],
                    "type": "reference",
                    "documentation": (
                        f"Only patient:identifier={codes.NHS_NUMBER_SYSTEM}|<NHS number>, "
                        "required. The patient is answered as the service's pseudonymous "
                        f"reference ({codes.SUBJECT_ID_SYSTEM}), never the NHS number."
                        + _PAGING.get(resource_type, "")
                    ),
                }
            ]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "kind": "instance",
        "software": {"name": "consent-ledger", "version": software_version},
        "implementation": {"description": "consent-ledger FHIR R4 facade", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": [FHIR_JSON, "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": "Authorization: Bearer <token>: the same clients, roles and "
                    "rate limits as /v1. Every call, this one included, needs a token."
                },
                "resource": resources,
                # POST [base]: a transaction Bundle of Consent creates (an import).
                "interaction": [
                    {
                        "code": "transaction",
                        "documentation": "Consent creates only (request POST Consent), all "
                        "recorded or none; Consent.dateTime may say when a consent was given.",
                    }
                ],
            }
        ],
    }
