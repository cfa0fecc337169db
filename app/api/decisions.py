"""``POST /v1/decisions``: may this share happen now? Every answer is recorded in the log."""

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
from app.policy import LegalBasis
from app.services.decisions import decisions

blp = Blueprint(
    "decisions",
    __name__,
    url_prefix="/v1/decisions",
    description="Policy decisions, explained with rule ids and legal sources",
)


@blp.route("", methods=["POST"])
@authenticated("case_system", "ig_lead")
@blp.doc(security=BEARER, **IDEMPOTENCY_DOC)
@blp.arguments(schemas.DecisionRequestSchema)
@blp.response(200, schemas.DecisionSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN")
def decide(data: dict[str, Any]) -> Response:
    """Decide whether ``from`` may share these categories of this person with ``to`` for this
    purpose, now. A deny is a 200 answer, not an error; both are signed log entries."""
    basis = data.get("legal_basis")
    inp = decisions.DecisionInput(
        subject=data["subject"],
        from_org=data["from_"],
        to_org=data["to"],
        purpose=data["purpose"],
        data_categories=data["data_categories"],
        legal_basis=LegalBasis(basis["type"], basis["reference"]) if basis else None,
    )
    return render(decisions.decide(ledger(), current_principal(), inp, idempotency()))
