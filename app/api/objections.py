"""``/v1/objections``: direct-care objections and the national data opt-out."""

from __future__ import annotations

from typing import Any

from flask import Response

from app.api import schemas
from app.api.common import (
    BEARER,
    IDEMPOTENCY_DOC,
    Blueprint,
    authenticated,
    current_principal,
    idempotency,
    ledger,
    render,
)
from app.services.consents import consents

blp = Blueprint(
    "objections",
    __name__,
    url_prefix="/v1/objections",
    description="Objections to implied-consent sharing and the national data opt-out",
)


@blp.route("", methods=["POST"])
@authenticated("case_system", "patient_portal")
@blp.doc(security=BEARER, **IDEMPOTENCY_DOC)
@blp.arguments(schemas.ObjectionCreateSchema())
@blp.response(201, schemas.ObjectionReceiptSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(409, response="CONFLICT")
def record(data: dict[str, Any]) -> Response:
    """Record an objection; it binds every later decision at once."""
    result = consents.record_objection(
        ledger(), current_principal(), data["subject"], data["scope"], idempotency()
    )
    return render(result)


@blp.route("/<string:objection_id>/withdraw", methods=["POST"])
@authenticated("case_system", "patient_portal")
@blp.doc(security=BEARER, **IDEMPOTENCY_DOC)
@blp.response(200, schemas.ObjectionReceiptSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
def withdraw(objection_id: str) -> Response:
    """Withdraw an objection."""
    return render(
        consents.withdraw_objection(ledger(), current_principal(), objection_id, idempotency())
    )
