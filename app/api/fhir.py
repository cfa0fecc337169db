"""``/fhir/r4``: the service's consents, disclosures and vocabularies as FHIR R4 (issue 17).

A plain Flask blueprint, not a flask-smorest one: the FHIR face describes itself with its
CapabilityStatement (``GET /fhir/r4/metadata``) and answers errors as OperationOutcome
(``app.api.common.problem_response``), neither of which the OpenAPI document (problem+json
errors) could state truthfully. Authentication, roles and rate limits are v1's decorator; the
reads are v1's services, so visibility is the same.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Collection
from datetime import datetime
from email.utils import format_datetime
from typing import Any

import marshmallow as ma
from flask import Blueprint, Response, json, request
from werkzeug.datastructures import MultiDict
from werkzeug.http import parse_options_header

from app.api import schemas
from app.api.common import (
    authenticated,
    current_principal,
    flatten,
    idempotency,
    ledger,
    public_root,
)
from app.errors import (
    FHIR_ELEMENT,
    PROBLEM_TYPES,
    FieldError,
    InvalidArgument,
    InvalidRequest,
    NotAcceptable,
    NotFound,
    UnsupportedMediaType,
)
from app.fhir import codes, intake, resources
from app.services import fhir
from app.services.consents import consents
from app.services.consents.consents import ConsentInput
from app.services.consents.subjects import InvalidNhsNumber, SubjectIdentifier

PREFIX = "/fhir/r4"
bp = Blueprint("fhir_r4", __name__, url_prefix=PREFIX)

# Who may read what: the roles of the v1 operation each one mirrors.
CONSENT_WRITERS = ("case_system",)  # POST /v1/consents
CONSENT_READERS = ("case_system", "ig_lead", "patient_portal", "auditor")  # GET /v1/consents
DISCLOSURE_READERS = ("ig_lead", "auditor")  # GET /v1/disclosures
PATIENT = "patient:identifier"
# As GET /v1/disclosures pages: the same default and ceiling.
DEFAULT_COUNT = 50
MAX_COUNT = 500
# When this CapabilityStatement last changed (a constant: the statement changes with the code).
CAPABILITY_DATE = "2026-12-03"


# What ``_format`` may say (R4 http.html: json, or a JSON media type), and what Accept may take.
JSON_FORMATS = frozenset(("json", "application/json", resources.FHIR_JSON))
FORMAT = "_format"
FORM = "application/x-www-form-urlencoded"


# The FHIR version this face speaks, as the fhirVersion media type parameter names it.
FHIR_VERSION_PARAMETER = "4.0"
JSON_TYPES = frozenset(("application/json", resources.FHIR_JSON))


def _acceptable(header: str) -> tuple[bool, str]:
    """Whether ``Accept`` takes JSON: media types compared without their parameters (charset
    and the like change nothing); an empty header says nothing, so anything will do (RFC 9110
    12.5.1). ``fhirVersion`` is the one parameter that matters (R4 http.html, "FHIR version
    parameter"): another version is refused, saying why."""
    ranges = [r for r in (parse_options_header(p) for p in header.split(",")) if r[0]]
    if not ranges:
        return True, ""
    other_version = ""
    for media_type, options in ranges:
        if media_type.lower() not in (*JSON_TYPES, "application/*", "*/*") or _refuses(options):
            continue
        version = options.get("fhirversion")  # parameter names come lower-cased
        if version not in (None, FHIR_VERSION_PARAMETER):
            other_version = version
            continue
        return True, ""
    if other_version:
        return False, (
            f"fhirVersion={other_version} is not served: this is FHIR R4, "
            f"fhirVersion={FHIR_VERSION_PARAMETER}"
        )
    return False, ""


def _refuses(options: dict[str, str]) -> bool:
    """``q=0`` means "not this" (RFC 9110 12.4.2); an unreadable weight counts as 1."""
    try:
        return float(options.get("q", "1")) <= 0
    except ValueError:
        return False


@bp.before_request
def json_only() -> None:
    """JSON is the only format served: asked for anything else (``Accept`` or ``_format``),
    answer 406 rather than JSON the client did not ask for (R4 http.html, content types)."""
    wanted = request.values.get(FORMAT)
    refused = wanted is not None and wanted.split(";")[0].strip() not in JSON_FORMATS
    why = ""
    if "Accept" in request.headers:
        accepted, why = _acceptable(request.headers["Accept"])
        refused |= not accepted
    if refused:
        because = f" ({why})" if why else ""
        raise NotAcceptable(
            f"only {resources.FHIR_JSON} is served; ask for it or for json{because}"
        )


def base_url() -> str:
    return public_root() + PREFIX


def fhir_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    resp = Response(json.dumps(body), status=200, mimetype=resources.FHIR_JSON)
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def _bad(name: str, message: str) -> InvalidArgument:
    return InvalidArgument(f"{name}: {message}", errors=[FieldError(name, message, "query")])


def _params(
    source: MultiDict[str, str], allowed: Collection[str], required: Collection[str]
) -> dict[str, str]:
    """Each parameter at most once; an unknown one is refused rather than ignored (an ignored
    filter would answer with more than was asked for)."""
    args: dict[str, str] = {}
    # _format is checked for every request (json_only), so it is taken everywhere.
    allowed = {*allowed, FORMAT}
    for name in source:
        values = source.getlist(name)
        if name not in allowed:
            raise _bad(name, f"is not a search parameter here; use {', '.join(sorted(allowed))}")
        if len(values) > 1:
            raise _bad(name, "is given more than once")
        args[name] = values[0]
    for name in required:
        if name not in args:
            raise _bad(name, f"is required: {name}={codes.NHS_NUMBER_SYSTEM}|<NHS number>")
    return args


def query_args(allowed: Collection[str], required: Collection[str]) -> dict[str, str]:
    return _params(request.args, allowed, required)


def search_args(allowed: Collection[str], required: Collection[str]) -> dict[str, str]:
    """A search's parameters: a GET's query string, or a POST ``_search``'s form body (R4
    http.html), which keeps the NHS number out of the URL (and so out of proxies' logs and
    browser history); a POST takes nothing else in its URL but ``_format``."""
    if request.method != "POST":
        return query_args(allowed, required)
    if request.mimetype not in ("", FORM):  # no body at all is an empty form
        raise UnsupportedMediaType(f"send a search's parameters as {FORM}")
    for name in request.args:
        if name != FORMAT:
            raise _bad(name, "belongs in the form body of a POST search, not the URL")
    return _params(request.form, allowed, required)


def patient_identifier(token: str) -> SubjectIdentifier:
    """``patient:identifier`` as a token search: ``<system>|<value>``, the NHS number system
    only (the FHIR face names nobody by a local identifier)."""
    system, bar, value = token.partition("|")
    if not bar:
        raise _bad(PATIENT, f"must be {codes.NHS_NUMBER_SYSTEM}|<NHS number>")
    if system != codes.NHS_NUMBER_SYSTEM:
        raise _bad(PATIENT, f"the identifier system must be {codes.NHS_NUMBER_SYSTEM}")
    try:
        return SubjectIdentifier.nhs_number(value)
    except InvalidNhsNumber as exc:
        raise _bad(PATIENT, f"the value is not a valid NHS number ({exc})") from None


def positive_int(args: dict[str, str], name: str, default: int, ceiling: int) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= ceiling:
        raise _bad(name, f"must be a whole number from 1 to {ceiling}")
    return int(raw)


@bp.get("/metadata")
@authenticated()
def metadata() -> Response:
    """What this FHIR face serves; like everything else here, it needs a token."""
    version = importlib.metadata.version("consent-ledger")
    query_args((), ())
    return fhir_response(resources.capability_statement(base_url(), version, CAPABILITY_DATE))


def _newest_versions(records: fhir.ConsentRecords) -> list[list[dict[str, Any]]]:
    """Every version of each consent, then of each objection (a Consent denying disclosure)."""
    return [
        resources.consent_versions(view, records.leaf_hashes, records.policy_versions[view["id"]])
        for view in records.views
    ] + [resources.objection_versions(view, records.leaf_hashes) for view in records.objections]


@bp.get("/Consent")
@bp.post("/Consent/_search")
@authenticated(*CONSENT_READERS)
def consent_search() -> Response:
    """A person's consents and objections, newest version of each, as ``GET /v1/consents``
    shows them: an objection is a Consent whose provision is deny, so a client sees what
    overrides a consent (G3)."""
    args = search_args((PATIENT,), (PATIENT,))
    subject = patient_identifier(args[PATIENT])
    records = fhir.consents_of(ledger(), current_principal(), subject)
    newest = [versions[-1] for versions in _newest_versions(records)]
    return fhir_response(resources.searchset(base_url(), newest, len(newest)))


def _one_consent(resource_id: str) -> list[dict[str, Any]]:
    ours = codes.our_id(resource_id)
    if codes.fhir_id(ours) != resource_id:
        # An id that holds "_" is not one we serve (ours map 1:1 to ids without it).
        raise NotFound("there is no consent with this id that this client may see")
    if ours.startswith("obj_"):
        records = fhir.objection(ledger(), current_principal(), ours)
    else:
        records = fhir.consent(ledger(), current_principal(), ours)
    return _newest_versions(records)[0]


@bp.get("/Consent/<resource_id>")
@authenticated(*CONSENT_READERS)
def consent_read(resource_id: str) -> Response:
    query_args((), ())
    newest = _one_consent(resource_id)[-1]
    return fhir_response(
        newest,
        {
            "ETag": resources.etag(newest),
            "Last-Modified": _http_date(newest["meta"]["lastUpdated"]),
        },
    )


@bp.get("/Consent/<resource_id>/_history/<version_id>")
@authenticated(*CONSENT_READERS)
def consent_vread(resource_id: str, version_id: str) -> Response:
    """One version as the history shows it (a created consent's ``Location`` names one); a
    version the consent never had is as unknown as the consent."""
    query_args((), ())
    versions = {v["meta"]["versionId"]: v for v in _one_consent(resource_id)}
    if version_id not in versions:
        raise NotFound("this consent has no such version; its history lists those it has")
    version = versions[version_id]
    return fhir_response(
        version,
        {
            "ETag": resources.etag(version),
            "Last-Modified": _http_date(version["meta"]["lastUpdated"]),
        },
    )


@bp.get("/Consent/<resource_id>/_history")
@authenticated(*CONSENT_READERS)
def consent_history(resource_id: str) -> Response:
    """Every version, newest first: recorded, then confirmed and withdrawn as they happened."""
    query_args((), ())
    return fhir_response(resources.history(base_url(), _one_consent(resource_id)))


def fhir_body() -> Any:
    """The resource sent: FHIR JSON (or plain JSON); malformed JSON is Flask's 400."""
    if request.mimetype not in (resources.FHIR_JSON, "application/json"):
        raise UnsupportedMediaType(f"send the resource as {resources.FHIR_JSON}")
    return request.get_json()


def consent_input(
    resource: Any, prefix: str = "", *, historical: bool = False
) -> tuple[ConsentInput | None, intake.Intake, list[FieldError]]:
    """A FHIR Consent as v1's input, checked by v1's own schema (an import's, for a
    ``historical`` one, which may say when it was given); every fault named by its FHIR
    element (under ``prefix`` inside a Bundle). ``None`` when any fault was found."""
    taken = intake.consent_request(resource)
    if historical and taken.given_at is not None:
        taken.put("given_at", taken.given_at, "Consent.dateTime")
    errors = [FieldError(intake.place(e, prefix), m, FHIR_ELEMENT) for e, m in taken.faults]
    schema = schemas.ConsentImportSchema() if historical else schemas.ConsentCreateSchema()
    try:
        data = schema.load(taken.body)
    except ma.ValidationError as exc:
        faulted = {e.field for e in errors}
        for name, message in flatten(exc.messages):
            element = intake.element_of(taken, name, prefix)
            # An element already refused as unmappable is not refused again by v1's name.
            if element not in faulted:
                errors.append(FieldError(element, message, FHIR_ELEMENT))
        return None, taken, errors
    return (None if errors else ConsentInput(**data)), taken, errors


def in_fhir_terms(
    exc: InvalidRequest, taken: intake.Intake | list[intake.Intake], prefix: str = ""
) -> InvalidRequest:
    """v1's refusal (fields named as v1 names them) with each field named by its FHIR element;
    for a Bundle (``taken`` a list), v1's ``<n>.<field>`` in entry ``n``."""
    errors = []
    for e in exc.errors:
        if isinstance(taken, list):
            n, _, name = e.field.partition(".")
            element = intake.element_of(taken[int(n)], name, f"Bundle.entry[{n}]")
        else:
            element = intake.element_of(taken, e.field, prefix)
        errors.append(FieldError(element, e.message, FHIR_ELEMENT))
    return InvalidRequest(exc.detail, errors=errors, extra=exc.extra)


def preferred_return() -> str:
    """What ``Prefer: return=`` asks a create to answer (R4 http.html "create"):
    ``representation`` (the default: the consent as read back), ``minimal`` (no body) or
    ``OperationOutcome`` (what the service has to say about it: v1's warnings). Other
    preferences are ignored, as RFC 7240 lets a server do."""
    for preference in request.headers.getlist("Prefer"):
        for token in preference.split(","):
            name, _, value = token.strip().partition("=")
            if name.strip().lower() == "return":
                answer = value.strip().strip('"')
                if answer in ("minimal", "representation", "OperationOutcome"):
                    return answer
    return "representation"


def created_response(
    base: str, consent_id: str, replayed: bool, warnings: list[dict[str, Any]]
) -> Response:
    """201 with the Location naming the version and its ETag; the body as ``Prefer: return=``
    asks: the consent as read back, nothing, or an OperationOutcome of v1's ``warnings``."""
    newest = _one_consent(codes.fhir_id(consent_id))[-1]
    version = newest["meta"]["versionId"]
    preferred = preferred_return()
    body: dict[str, Any] | None = newest
    if preferred == "OperationOutcome":
        body = resources.warnings_outcome(warnings)
    resp = fhir_response(
        body or {},
        {
            "Location": f"{base}/Consent/{newest['id']}/_history/{version}",
            "ETag": resources.etag(newest),
            "Last-Modified": _http_date(newest["meta"]["lastUpdated"]),
        },
    )
    if preferred == "minimal":
        resp = Response(status=201, headers=resp.headers)
        del resp.headers["Content-Type"]
    resp.status_code = 201
    if replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


@bp.post("/Consent")
@authenticated(*CONSENT_WRITERS)
def consent_create() -> Response:
    """Record a consent as ``POST /v1/consents`` does: its service, rules, messages and
    Idempotency-Key; the consent is given now (historical ones come in a transaction Bundle)."""
    query_args((), ())
    resource = fhir_body()
    inp, taken, errors = consent_input(resource)
    if taken.given_at is not None:
        errors.append(
            FieldError(
                "Consent.dateTime",
                "is when the service records the consent; send a consent given earlier in a "
                "transaction Bundle (POST /fhir/r4)",
                FHIR_ELEMENT,
            )
        )
    if errors or inp is None:
        raise InvalidRequest.from_fields("the consent is not valid", errors)
    try:
        result = consents.record_consent(ledger(), current_principal(), inp, idempotency())
    except InvalidRequest as exc:
        raise in_fhir_terms(exc, taken) from None
    warnings = list(result.body.get("warnings", []))
    return created_response(base_url(), result.body["id"], result.replayed, warnings)


# The most entries one Bundle may hold: the 1 MiB body limit holds about this many consents,
# and a larger file goes through ``consent-ledger import``.
MAX_ENTRIES = 1000


class NotATransaction(InvalidRequest):
    """The body is not a transaction Bundle of Consent creates (R4 http.html: 400)."""

    status = 400


def _entries() -> int:
    """What an import costs against the rate limit: a POST per consent, as v1 counts them;
    counted as the body says, before it is checked (``decisions_asked``)."""
    body = request.get_json(silent=True)
    entries = body.get("entry") if isinstance(body, dict) else None
    return min(len(entries), MAX_ENTRIES) if isinstance(entries, list) and entries else 1


def transaction_entries(bundle: Any, max_entries: int | None = MAX_ENTRIES) -> list[Any]:
    """The resources of a transaction Bundle of Consent creates; at most ``max_entries`` (the
    HTTP cap; ``None``, any number, for ``consent-ledger import``, which has no body limit)."""

    def refuse(element: str, message: str) -> NotATransaction:
        return NotATransaction(
            f"{element}: {message}", errors=[FieldError(element, message, FHIR_ELEMENT)]
        )

    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise refuse("Bundle", "send a Bundle of type transaction (R4 http.html)")
    if bundle.get("type") != "transaction":
        raise refuse("Bundle.type", "must be transaction: every entry recorded, or none")
    entries = bundle.get("entry")
    if max_entries is None:
        if not isinstance(entries, list) or not entries:
            raise refuse("Bundle.entry", "must hold at least one entry")
    elif not isinstance(entries, list) or not 1 <= len(entries) <= max_entries:
        raise refuse("Bundle.entry", f"must hold 1 to {max_entries} entries")
    errors = []
    for n, entry in enumerate(entries):
        req = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(req, dict) or (req.get("method"), req.get("url")) != ("POST", "Consent"):
            errors.append(
                FieldError(
                    f"Bundle.entry[{n}].request",
                    "must be {method: POST, url: Consent}: the service only creates consents",
                    FHIR_ELEMENT,
                )
            )
    if errors:
        raise NotATransaction.from_fields("the Bundle is not a transaction of creates", errors)
    return [entry.get("resource") for entry in entries]


_POSITION = re.compile(r"Bundle\.entry\[([0-9]+)\]")


def _entry_position(error: FieldError) -> int:
    found = _POSITION.match(error.field)
    return int(found.group(1)) if found else -1


@bp.post("")
@authenticated(*CONSENT_WRITERS, cost=_entries)
def transaction() -> Response:
    """A transaction Bundle of Consent creates: historical consents (paper, spreadsheets),
    each perhaps with the date it was given and an end already past, all recorded in one
    write or none; faults named by 0-based ``Bundle.entry[n]``."""
    query_args((), ())
    resources_sent = transaction_entries(fhir_body())
    inputs: list[ConsentInput | None] = []
    taken: list[intake.Intake] = []
    errors: list[FieldError] = []
    for n, resource in enumerate(resources_sent):
        inp, one, faults = consent_input(resource, f"Bundle.entry[{n}]", historical=True)
        taken.append(one)
        errors += faults
        inputs.append(inp)
    try:
        # Run even when some entries were refused here, so that one answer names every
        # fault of every entry (the service records nothing unless all are good).
        result = consents.import_consents(ledger(), current_principal(), inputs, idempotency())
    except InvalidRequest as exc:
        errors += in_fhir_terms(exc, taken).errors
        errors.sort(key=_entry_position)
        raise InvalidRequest.from_fields(
            "the Bundle is not valid; nothing was recorded", errors
        ) from None
    base = base_url()
    created = [_one_consent(codes.fhir_id(v["id"]))[-1] for v in result.body["consents"]]
    resp = fhir_response(resources.transaction_response(base, created))
    if result.replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


@bp.get("/AuditEvent")
@bp.post("/AuditEvent/_search")
@authenticated(*DISCLOSURE_READERS)
def audit_event_search() -> Response:
    """A person's disclosures as ``GET /v1/disclosures?nhs_number=`` shows them: an IG lead
    those from or to its organisation, an auditor all. Newest first; ``_count`` and ``page``
    page as v1 does (no ``next`` link: it would carry the NHS number)."""
    args = search_args((PATIENT, "_count", "page"), (PATIENT,))
    subject = patient_identifier(args[PATIENT])
    count = positive_int(args, "_count", DEFAULT_COUNT, MAX_COUNT)
    page = positive_int(args, "page", 1, 10**6)
    result, hashes = fhir.disclosures_of(ledger(), current_principal(), subject, page, count)
    events = [resources.audit_event(d, hashes[d["ledger_index"]]) for d in result["items"]]
    return fhir_response(resources.searchset(base_url(), events, result["total"]))


@bp.get("/CodeSystem/<resource_id>")
@authenticated()
def code_system(resource_id: str) -> Response:
    query_args((), ())
    tiers, obligation_codes = fhir.vocabulary_in_force(ledger())
    systems = resources.code_systems(tiers, obligation_codes, PROBLEM_TYPES)
    if resource_id not in systems:
        raise NotFound(
            f"there is no CodeSystem {resource_id!r}; these are served: {', '.join(systems)}"
        )
    return fhir_response(systems[resource_id])


def _http_date(rfc3339: str) -> str:
    return format_datetime(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")), usegmt=True)
