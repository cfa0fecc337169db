"""``/v1/consents``: record, read, withdraw and confirm consents."""

from __future__ import annotations

from typing import Any

from flask import Response, json, request
from flask_smorest import Blueprint

from app.api import schemas
from app.api.common import BEARER, authenticated, current_principal, ledger
from app.services import consents
from app.services.consents import ConsentInput
from app.services.idempotency import HEADER, WriteResult, idempotency_key

blp = Blueprint(
    "consents", __name__, url_prefix="/v1/consents", description="Consents and their history"
)

IDEMPOTENCY_DOC = {
    "parameters": [
        {
            "in": "header",
            "name": HEADER,
            "required": False,
            "schema": {"type": "string", "maxLength": 200},
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


def render(result: WriteResult) -> Response:
    """Written bodies are already JSON-ready (and stored verbatim for replays)."""
    resp = Response(json.dumps(result.body), status=result.status, mimetype="application/json")
    if result.replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


@blp.route("", methods=["POST"])
@authenticated("case_system")
@blp.doc(security=BEARER, **IDEMPOTENCY_DOC)
@blp.arguments(schemas.ConsentCreateSchema)
@blp.response(201, schemas.ConsentReceiptSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN")
def record(data: dict[str, Any]) -> Response:
    """Record a consent captured by the caller's organisation; returns the signed receipt."""
    inp = ConsentInput(**data)
    return render(consents.record_consent(ledger(), current_principal(), inp, idempotency()))


@blp.route("", methods=["GET"])
@authenticated("case_system", "ig_lead", "patient_portal", "auditor")
@blp.doc(security=BEARER)
@blp.arguments(schemas.SubjectQuerySchema, location="query", error_status_code=400)
@blp.response(200, schemas.SubjectHistorySchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN")
def history(identifier: Any) -> Any:
    """A person's consents with their history, and objections, as this client may see them."""
    return consents.subject_history(ledger(), current_principal(), identifier)


@blp.route("/<string:consent_id>/withdraw", methods=["POST"])
@authenticated("case_system", "ig_lead", "patient_portal")
@blp.doc(security=BEARER, **IDEMPOTENCY_DOC)
@blp.arguments(schemas.WithdrawArgs, required=False)
@blp.response(200, schemas.WithdrawalSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
def withdraw(data: dict[str, Any], consent_id: str) -> Response:
    """Withdraw a consent; takes effect for every later decision at once (rule G5)."""
    result = consents.withdraw_consent(
        ledger(), current_principal(), consent_id, data.get("reason"), idempotency()
    )
    return render(result)


@blp.route("/<string:consent_id>/confirm", methods=["POST"])
@authenticated("case_system", "ig_lead")
@blp.doc(security=BEARER, **IDEMPOTENCY_DOC)
@blp.response(200, schemas.ConsentReceiptSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
def confirm(consent_id: str) -> Response:
    """A health organisation confirms a consent recorded by DWP or a DWP-funded provider (G6)."""
    return render(
        consents.confirm_consent(ledger(), current_principal(), consent_id, idempotency())
    )
