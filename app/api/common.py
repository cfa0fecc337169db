"""What every blueprint shares: problem+json rendering, authentication, the health gate."""

from __future__ import annotations

import functools
import http
import json as json_module
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import flask_smorest
import marshmallow as ma
from flask import Flask, Response, current_app, g, json, request
from flask.json.provider import DefaultJSONProvider
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from app import get_ledger
from app.api.schemas import Integer
from app.errors import (
    MAX_FIELD_ERRORS,
    PROBLEM_CONTENT_TYPE,
    DomainError,
    FieldError,
    Forbidden,
    LogUnavailable,
    describe,
    error_body,
)
from app.logs import redact_path
from app.redaction import redact_json
from app.services.access.clients import Principal, authenticate
from app.services.access.idempotency import HEADER, WriteResult, idempotency_key
from app.services.container import Ledger
from app.services.log.keys import KeyFileError
from app.services.log.log_store import LogInconsistent
from app.web.errors import error_page, is_page

logger = logging.getLogger("consent_ledger.api")

F = TypeVar("F", bound=Callable[..., Any])

# Status codes werkzeug raises on its own, mapped to our stable problem types.
_HTTP_SLUGS = {
    400: "invalid-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-request",
    429: "rate-limited",
    503: "log-unavailable",
}
# Paths that answer even when the log is unhealthy: health itself and the API's own docs.
_ALWAYS_SERVED = ("/healthz", "/openapi.json", "/problems/")


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, with a body nested past the interpreter's recursion limit refused as
    malformed (400) rather than failing the request (Flask only turns ValueError into 400)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("the JSON body is nested too deeply") from None


class BoundedFlaskParser(FlaskParser):
    """webargs' parser, with JSON nested past the recursion limit refused as invalid (400), and
    query arguments an operation does not take refused too (400, naming them): a misspelt
    filter (``?form_org=``) ignored would answer with everything, unfiltered."""

    DEFAULT_UNKNOWN_BY_LOCATION: dict[str, str | None] = {  # noqa: RUF012 (as webargs declares it)
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": ma.RAISE,
    }

    def _raw_load_json(self, req: Any) -> Any:
        # webargs turns only JSONDecodeError into a 400; json.loads also fails with
        # RecursionError (nesting) and a bare ValueError (an integer past Python's 4300-digit
        # int-from-string limit). Both are bodies that are not acceptable JSON.
        try:
            return super()._raw_load_json(req)
        except json_module.JSONDecodeError:
            raise
        except RecursionError:
            raise json_module.JSONDecodeError("nested too deeply", "[", 0) from None
        except ValueError:
            raise json_module.JSONDecodeError("a number is too long", "0", 0) from None


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]
    """flask-smorest's blueprint, parsing arguments with :class:`BoundedFlaskParser`."""

    ARGUMENTS_PARSER = BoundedFlaskParser()


class ProblemFieldSchema(ma.Schema):
    field = ma.fields.String(
        required=True,
        metadata={"description": 'dotted path into the request; "(body)" for the body itself'},
    )
    message = ma.fields.String(required=True, metadata={"description": "why it is refused"})
    location = ma.fields.String(
        metadata={"description": "where the field is: json, query, view_args or headers"}
    )


class ProblemReasonSchema(ma.Schema):
    code = ma.fields.String()
    rule = ma.fields.String()
    message = ma.fields.String()


class ProblemDeniedCategorySchema(ma.Schema):
    category = ma.fields.String()
    reason = ma.fields.String()


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details, as this API renders them: the five standard members and
    every extension member some problem type carries (closed, so a new one must be documented
    here before it is served)."""

    type = ma.fields.String(
        required=True, metadata={"description": "Stable problem type URI (/problems/<slug>)"}
    )
    title = ma.fields.String(required=True)
    status = Integer(required=True)
    detail = ma.fields.String()
    errors = ma.fields.List(
        ma.fields.Nested(ProblemFieldSchema),
        validate=ma.validate.Length(max=MAX_FIELD_ERRORS),
        metadata={"description": f"Fields at fault, at most {MAX_FIELD_ERRORS}"},
    )
    errors_not_shown = Integer(
        validate=ma.validate.Range(min=1),
        metadata={"description": "how many more fields are at fault than `errors` lists"},
    )
    retry_after = Integer(metadata={"description": "rate-limited: seconds to wait"})
    objection_id = ma.fields.String(
        metadata={"description": "already-objected: the active objection"}
    )
    decision_id = ma.fields.String(
        allow_none=True, metadata={"description": "consent-withdrawn: the earlier decision"}
    )
    consents = ma.fields.List(
        ma.fields.String(), metadata={"description": "consent-withdrawn: the consents withdrawn"}
    )
    reasons = ma.fields.List(
        ma.fields.Nested(ProblemReasonSchema),
        metadata={"description": "decision-denied, objection-recorded: why, with rule ids"},
    )
    denied_categories = ma.fields.List(
        ma.fields.Nested(ProblemDeniedCategorySchema),
        metadata={"description": "decision-denied, objection-recorded: each category refused"},
    )


def problem_response(
    status: int,
    slug: str,
    detail: str | None = None,
    *,
    errors: tuple[FieldError, ...] | list[FieldError] = (),
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    # Refusals name what was wrong, and the caller may have put an NHS number there.
    body, mimetype = error_body(request.path, status, slug, detail, errors=errors, extra=extra)
    resp = Response(json.dumps(redact_json(body)), status=status, mimetype=mimetype)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def flatten(messages: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    if isinstance(messages, dict):
        for key, value in messages.items():
            part = () if key == "_schema" else (str(key),)
            yield from flatten(value, path + part)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        for m in messages:
            yield ".".join(path), m
    elif isinstance(messages, list):
        for m in messages:
            yield from flatten(m, path)
    else:
        yield ".".join(path), str(messages)


def field_errors_from_webargs(data: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    messages = (data or {}).get("messages") or {}
    for location, fields in messages.items():
        for field, message in flatten(fields):
            # An empty name is the body itself, or in a query string an argument with no name.
            empty = '""' if location == "query" else "(body)"
            errors.append(FieldError(field or empty, message, location))
    return errors


class LedgerApi(Api):  # type: ignore[misc]
    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        """Document every error response as RFC 9457 ``application/problem+json``, as served.

        flask-smorest registers one component response per HTTP status (``UNAUTHORIZED``,
        ``BAD_REQUEST``, ...) plus ``DEFAULT_ERROR``; views refer to them by name.
        """
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            content_type = self.DEFAULT_RESPONSE_CONTENT_TYPE
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
                content_type = PROBLEM_CONTENT_TYPE
            prepare_response(response, self.spec, content_type)
            self.spec.components.response(status.name, response, lazy=True)
        default = {
            "description": "Any other error, including 503 while the log is unhealthy",
            "schema": self.ERROR_SCHEMA,
        }
        prepare_response(default, self.spec, PROBLEM_CONTENT_TYPE)
        self.spec.components.response("DEFAULT_ERROR", default, lazy=True)

    def handle_http_exception(self, error: HTTPException) -> Response:
        status = error.code or 500
        data = getattr(error, "data", None)
        headers = dict((data or {}).get("headers") or {})
        # RFC 9110 §15.5.6: a 405 says which methods the resource does take, page or API.
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers["Allow"] = ", ".join(sorted(error.valid_methods))
        if is_page(request.path):
            page = error_page(status)
            page.headers.update(headers)
            return page
        if status >= 500:
            return problem_response(500, "internal-error", "the service failed")
        errors = field_errors_from_webargs(data)
        if status == 401:
            headers.setdefault("WWW-Authenticate", 'Bearer realm="consent-ledger"')
        detail = error.description
        if errors:
            detail = "the request has fields that are missing or not valid: " + describe(errors)
        slug = _HTTP_SLUGS.get(status, "invalid-request")
        if status == 400 and errors and all(e.location in ("query", "view_args") for e in errors):
            slug = "invalid-argument"
        return problem_response(status, slug, detail, errors=errors, headers=headers)


def handle_domain_error(error: DomainError) -> Response:
    if is_page(request.path):
        return error_page(error.status)
    headers = dict(error.headers)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="consent-ledger"'
    return problem_response(
        error.status,
        error.slug,
        error.detail,
        errors=error.errors,
        extra=error.extra,
        headers=headers,
    )


def handle_unexpected(error: Exception) -> Response:
    # The trace goes to the operator's log; the client gets a stable problem with no internals.
    logger.exception("unhandled error on %s %s", request.method, redact_path(request.path))
    if is_page(request.path):
        return error_page(500)
    return problem_response(500, "internal-error", "the service failed; nothing was recorded")


def handle_log_inconsistent(error: LogInconsistent) -> Response:
    # A write found the tree contradicting its signed checkpoint: nothing was written (the
    # transaction rolled back); stop serving in this worker, as the start-up check would.
    logger.error("consent-ledger refuses to serve: %s", error)
    ledger().refuse_service(str(error))
    return handle_domain_error(
        LogUnavailable("the service refuses to serve: the log failed its consistency check")
    )


def handle_key_file_error(error: KeyFileError) -> Response:
    # A write found none of the log's current signing keys in this instance folder (a host the
    # operator has not copied a rotated key to): nothing was written; it serves again once the
    # file is there. The paths are for the operator's log, not the caller.
    logger.error("consent-ledger cannot sign: %s", error)
    return handle_domain_error(
        LogUnavailable("the service cannot sign checkpoints now: its signing key is missing")
    )


def ledger() -> Ledger:
    return get_ledger(current_app)


def public_root() -> str:
    """Where clients reach this service, without a trailing slash: the configured public URL
    when set (behind a TLS-terminating proxy the Host header names the internal address),
    else the request's own."""
    return ledger().settings.public_url or request.host_url.rstrip("/")


def refuse_when_unhealthy() -> Response | None:
    if request.path == "/" or request.path.startswith(_ALWAYS_SERVED):
        return None
    state = ledger().health()
    if not state.ok:
        return handle_domain_error(
            LogUnavailable("the service refuses to serve: " + (state.public_reason or ""))
        )
    return None


def authenticated(*roles: str, cost: Callable[[], int] | None = None) -> Callable[[F], F]:
    """Require a valid bearer token; with ``roles``, require one of them. A POST counts
    against the client's rate limit: once, or ``cost()`` times (a list of decisions)."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate(ledger(), request.headers.get("Authorization"))
            if roles and principal.role not in roles:
                raise Forbidden(
                    f"this needs a client with role {' or '.join(roles)}; "
                    f"this client's role is {principal.role}"
                )
            g.principal = principal
            if request.method == "POST":
                ledger().rate_limits.hit(
                    principal.client_id, request.endpoint or "", cost() if cost else 1
                )
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorator


def current_principal() -> Principal:
    principal = g.get("principal")
    assert isinstance(principal, Principal)
    return principal


BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def install_error_handlers(app: Flask) -> None:
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(LogInconsistent, handle_log_inconsistent)
    app.register_error_handler(KeyFileError, handle_key_file_error)
    app.register_error_handler(Exception, handle_unexpected)
    app.before_request(refuse_when_unhealthy)


# -- writes: retries and rendering, shared by every blueprint that records something --

IDEMPOTENCY_DOC = {
    "parameters": [
        {
            "in": "header",
            "name": HEADER,
            "required": False,
            # As idempotency_key checks it: 1-200 visible ASCII characters.
            "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[!-~]*$"},
            "description": "retrying with the same key returns the first response and writes "
            "nothing new; the same key with a different body is a 422",
        }
    ]
}


def idempotency() -> Any:
    principal = current_principal()
    return idempotency_key(
        ledger(),
        principal.client_id,
        request.headers.get(HEADER),
        request.method,
        request.path,
        request.get_json(silent=True),
    )


def render(result: WriteResult, body: Any = None) -> Response:
    """Written bodies are already JSON-ready (and stored verbatim for replays). ``body``, if
    given, is the part of the result's body that is the answer (a list's decisions)."""
    answer = result.body if body is None else body
    resp = Response(json.dumps(answer), status=result.status, mimetype="application/json")
    if result.replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp
