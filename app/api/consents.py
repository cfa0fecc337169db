"""``/v1/consents``: record, read, withdraw and confirm consents."""

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
from app.services.consents.consents import ConsentInput

blp = Blueprint(
    "consents", __name__, url_prefix="/v1/consents", description="Consents and their history"
)


@blp.route("", methods=["POST"])
@authenticated("case_system")
@blp.doc(security=BEARER, **IDEMPOTENCY_DOC)
@blp.arguments(schemas.ConsentCreateSchema())
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
@blp.arguments(schemas.SubjectQuerySchema(), location="query", error_status_code=400)
@blp.response(200, schemas.SubjectHistorySchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN")
def history(identifier: Any) -> Any:
    """A person's consents with their history, and objections, as this client may see them."""
    return consents.subject_history(ledger(), current_principal(), identifier)


@blp.route("/<string:consent_id>/withdraw", methods=["POST"])
@authenticated("case_system", "ig_lead", "patient_portal")
@blp.doc(security=BEARER, **IDEMPOTENCY_DOC)
@blp.arguments(schemas.WithdrawArgs(), required=False)
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
