"""The domain error root and RFC 9457 problem details.

Services raise subclasses of :class:`DomainError`; the HTTP layer renders every one of them,
and every HTTP error Flask or webargs raises, as ``application/problem+json`` with a stable
``type``. Types are relative URIs (``/problems/<slug>``) that this service itself serves, so a
problem's documentation is always the one for the running version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from app.fhir.resources import FHIR_JSON, operation_outcome
from app.limits import MAX_BODY, MAX_HEADER_FIELD_SIZE, MAX_HEADER_FIELDS, MAX_REQUEST_LINE

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "/problems/"

# slug -> (title, what it means and what to do). Slugs are a public contract: never rename one.
PROBLEM_TYPES: dict[str, tuple[str, str]] = {
    "invalid-request": (
        "Invalid request",
        "The request's body or query arguments do not match the API. `errors` lists each field "
        "at fault and why. Correct the request and send it again.",
    ),
    "invalid-argument": (
        "Invalid argument",
        "A query or path argument is outside the range the resource allows (an index or tree "
        "size beyond the log, `from` greater than `to`). `errors` names the argument.",
    ),
    "unauthenticated": (
        "Authentication required",
        "Send `Authorization: Bearer <token>` with a token issued by "
        "`consent-ledger clients create`.",
    ),
    "forbidden": (
        "Not allowed for this client",
        "The client's role or organisation does not allow this action.",
    ),
    "not-found": ("Not found", "The resource does not exist, or is not visible to this client."),
    "method-not-allowed": ("Method not allowed", "The resource does not accept this method."),
    "conflict": ("Conflict", "The request conflicts with the current state of the resource."),
    "not-acceptable": (
        "Not acceptable",
        "The FHIR face answers only JSON (`application/fhir+json`): ask for it with `Accept` "
        "or `_format=json`, or leave both out.",
    ),
    "unsupported-media-type": (
        "Unsupported media type",
        "Send JSON bodies with `Content-Type: application/json`.",
    ),
    "payload-too-large": (
        "Payload too large",
        f"The request body is larger than allowed ({MAX_BODY} bytes), whether sent with "
        "Content-Length or chunked.",
    ),
    "uri-too-long": (
        "URI too long",
        "The request line (method, path and query string) is longer than the server reads "
        f"({MAX_REQUEST_LINE} bytes). Nothing was recorded.",
    ),
    "header-fields-too-large": (
        "Request header fields too large",
        f"The request has more header fields ({MAX_HEADER_FIELDS}), or a larger one "
        f"({MAX_HEADER_FIELD_SIZE} bytes), than the server reads. Nothing was recorded.",
    ),
    "malformed-request": (
        "Malformed request",
        "The server could not read the request as HTTP/1.1: the request line, a header or the "
        "chunked body framing is broken (501: a transfer coding other than chunked). Nothing "
        "was recorded.",
    ),
    "request-timeout": (
        "Request timeout",
        "The client sent part of a request, then nothing more for the server's timeout "
        "(`consent-ledger serve --timeout`). Nothing was recorded; send the request again.",
    ),
    "idempotency-key-reused": (
        "Idempotency key reused",
        "The Idempotency-Key was already used by this client for a request with a different "
        "body. A retry must repeat the first request exactly; a new request needs a new key.",
    ),
    "already-withdrawn": (
        "Already withdrawn",
        "The consent or objection was withdrawn before; nothing was changed.",
    ),
    "already-confirmed": ("Already confirmed", "The consent was confirmed before."),
    "already-acknowledged": (
        "Already acknowledged",
        "The notification was acknowledged before (the body holds it as it stands); nothing "
        "was changed.",
    ),
    "retention-applies": (
        "Records still kept",
        "The person's records are within the retention period the policy in force sets (its "
        "`retention` rule, named in `rule`, with the time in `kept_until`): they are kept to "
        "show compliance (UK GDPR Art 5(2), 17(3)(b) and (e)) and cannot be erased yet, unless "
        "they were recorded in error (`reason` `recorded_in_error`). Nothing was changed.",
    ),
    "erased": (
        "Erased",
        "The response recorded for this Idempotency-Key described a person who has since been "
        "erased; it is no longer kept, and the request is not run again.",
    ),
    "not-confirmable": (
        "Consent does not need confirmation",
        "Only consents recorded by a dwp or employment_dwp organisation need confirmation by a "
        "health organisation (rule G6).",
    ),
    "already-objected": (
        "Objection already recorded",
        "The person already has an active objection of this scope; `objection_id` names it.",
    ),
    "invalid-policy": (
        "Invalid policy",
        "The policy document is not valid; `detail` names the file, the path inside it and the "
        "reason. The policy in force is unchanged.",
    ),
    "decision-denied": (
        "Decision denied",
        "The share is not permitted: the decision did not permit a category it carries (a "
        "deny may still be used to disclose exactly the categories it permitted), or the share "
        "is no longer permitted now. Nothing was recorded. `denied_categories` names each "
        "category refused with its reason; `reasons` says why, with rule ids.",
    ),
    "consent-withdrawn": (
        "Consent withdrawn",
        "A consent the decision relied on has been withdrawn since; the share must not be made "
        "and nothing was recorded (rule G5).",
    ),
    "objection-recorded": (
        "Objection recorded",
        "The person has objected since the decision; the share must not be made and nothing was "
        "recorded (rule G3).",
    ),
    "log-unavailable": (
        "Log unavailable",
        "The service found its stored log inconsistent with its newest signed checkpoint, or "
        "the database is not initialised, and refuses to serve until an operator intervenes. "
        "Run `consent-ledger verify` for details.",
    ),
    "busy": (
        "Busy",
        "More writes are waiting than this instance queues; nothing was recorded. Send the "
        "request again shortly (with the same Idempotency-Key, if it had one).",
    ),
    "batch-failed": (
        "Batch failed",
        "Writes are recorded in batches, one transaction each, and the batch this request was "
        "in failed as a whole (the database, not the request): nothing of it was recorded. Send "
        "the request again (with the same Idempotency-Key, if it had one).",
    ),
    "rate-limited": (
        "Too many requests",
        "This client has sent more writes or decisions than its limit allows in the current "
        "window. Nothing was recorded. Wait the number of seconds in `Retry-After` (also in "
        "`retry_after`), then send the request again.",
    ),
    "bundle-withheld": (
        "Entry bundle withheld",
        "The entry bundle (c2sp.org/tlog-tiles) holds an entry this service does not publish: "
        "one written before log format 2 whose leaf holds an entry about a person in the clear "
        "(or one longer than a bundle's 16-bit length can carry). `detail` names its index. "
        "The hash tiles covering it are served, so the tree can still be checked.",
    ),
    "internal-error": (
        "Internal error",
        "The service failed. Nothing was recorded. The operator's logs carry the details.",
    ),
}


@dataclass(frozen=True)
class FieldError:
    """One field at fault: a dotted path into the request and the reason."""

    field: str
    message: str
    location: str | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"field": self.field, "message": self.message}
        if self.location:
            out["location"] = self.location
        return out


class DomainError(Exception):
    """Root of every error a service raises on purpose; each maps to one problem type."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "invalid-request"

    def __init__(
        self,
        detail: str,
        *,
        errors: Iterable[FieldError] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = tuple(errors)
        self.extra = dict(extra or {})
        self.headers: dict[str, str] = {}


class InvalidRequest(DomainError):
    status = 422
    slug = "invalid-request"

    @classmethod
    def from_fields(cls, summary: str, errors: Iterable[FieldError]) -> InvalidRequest:
        """One refusal naming every field at fault: ``<summary>: field: why; ...``."""
        errors = tuple(errors)
        return cls(f"{summary}: {describe(errors)}", errors=errors)


# A refusal names at most this many fields, so a body with thousands of bad items gets a short
# answer rather than one as large as itself.
MAX_FIELD_ERRORS = 20


def describe(errors: Iterable[FieldError]) -> str:
    """``field: why; field: why`` for the first fields at fault, and how many more there are."""
    errors = tuple(errors)
    text = "; ".join(f"{e.field}: {e.message}" for e in errors[:MAX_FIELD_ERRORS])
    if len(errors) > MAX_FIELD_ERRORS:
        text += f"; and {len(errors) - MAX_FIELD_ERRORS} more"
    return text


def listed_twice(name: str, values: Iterable[str]) -> list[FieldError]:
    """A field error for every repeat in a list of ids or codes (``name.<index>``)."""
    seen: set[str] = set()
    out = []
    for n, value in enumerate(values):
        if value in seen:
            out.append(FieldError(f"{name}.{n}", f"{value!r} is listed twice", "json"))
        seen.add(value)
    return out


class InvalidArgument(DomainError):
    status = 400
    slug = "invalid-argument"


class Unauthenticated(DomainError):
    status = 401
    slug = "unauthenticated"


class Forbidden(DomainError):
    status = 403
    slug = "forbidden"


class NotFound(DomainError):
    status = 404
    slug = "not-found"


class NotAcceptable(DomainError):
    status = 406
    slug = "not-acceptable"


class UnsupportedMediaType(DomainError):
    status = 415
    slug = "unsupported-media-type"


class Conflict(DomainError):
    status = 409
    slug = "conflict"


class Gone(DomainError):
    status = 410
    slug = "erased"


class RateLimited(DomainError):
    status = 429
    slug = "rate-limited"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, extra={"retry_after": retry_after})
        self.headers = {"Retry-After": str(retry_after)}


class LogUnavailable(DomainError):
    status = 503
    slug = "log-unavailable"


def problem_type(slug: str) -> str:
    return PROBLEM_BASE + slug


def problem_body(
    status: int,
    slug: str,
    detail: str | None = None,
    *,
    errors: Iterable[FieldError] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    title = PROBLEM_TYPES.get(slug, ("Error", ""))[0]
    body: dict[str, Any] = {"type": problem_type(slug), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    errs = [e.as_dict() for e in errors]
    if errs:
        body["errors"] = errs[:MAX_FIELD_ERRORS]
    if len(errs) > MAX_FIELD_ERRORS:
        body["errors_not_shown"] = len(errs) - MAX_FIELD_ERRORS
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return body


# The FHIR face (app/api/fhir.py) answers the same errors as OperationOutcomes.
FHIR_PREFIX = "/fhir/"
# FieldError.location of a fault in a FHIR resource sent: its field is a FHIRPath expression.
FHIR_ELEMENT = "fhir"


def is_fhir_path(path: str | None) -> bool:
    return path is not None and path.startswith(FHIR_PREFIX)


def error_body(
    path: str | None,
    status: int,
    slug: str,
    detail: str | None = None,
    *,
    errors: Iterable[FieldError] = (),
    extra: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], str]:
    """The error's body and media type for a request to ``path``: problem+json, or under
    ``/fhir/`` an OperationOutcome, one issue per field at fault (a query parameter named as
    ``parameter '<name>'``), else one carrying the detail. Not yet redacted."""
    if not is_fhir_path(path):
        body = problem_body(status, slug, detail, errors=errors, extra=extra)
        return body, PROBLEM_CONTENT_TYPE
    title = PROBLEM_TYPES.get(slug, ("Error", ""))[0]
    shown = list(errors)[:MAX_FIELD_ERRORS]
    lines = [
        f"parameter {e.field!r}: {e.message}"
        if e.location == "query"
        else f"{e.field}: {e.message}"
        for e in shown
    ]
    # A fault in a FHIR resource sent is named by its element (FHIRPath), as R4 asks.
    expressions = [e.field if e.location == FHIR_ELEMENT else None for e in shown]
    body = operation_outcome(
        status, slug, title, lines or ([detail] if detail else []), expressions
    )
    return body, FHIR_JSON
