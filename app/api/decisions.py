"""``POST /v1/decisions``: may this share happen now? Every answer is recorded in the log."""

from __future__ import annotations

from typing import Any

from flask import Response, request

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

MAX_LIST = schemas.MAX_DECISIONS_PER_REQUEST


def one_or_a_list(schema: type, description: str) -> dict[str, Any]:
    """A body that is one ``schema`` object or a list of 1 to :data:`MAX_LIST` of them."""
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        schema,
                        {"type": "array", "items": schema, "minItems": 1, "maxItems": MAX_LIST},
                    ]
                }
            }
        },
    }


def decisions_asked() -> int:
    """What a request costs against the decision rate limit: the decisions it asks for. Counted
    as the body says, before it is checked, as a single request is counted before its check;
    a list longer than any that is accepted counts as the longest."""
    body = request.get_json(silent=True)
    return min(len(body), MAX_LIST) if isinstance(body, list) and body else 1


def _input(data: dict[str, Any]) -> decisions.DecisionInput:
    basis = data.get("legal_basis")
    return decisions.DecisionInput(
        subject=data["subject"],
        from_org=data["from_"],
        to_org=data["to"],
        purpose=data["purpose"],
        data_categories=data["data_categories"],
        legal_basis=LegalBasis(basis["type"], basis["reference"]) if basis else None,
    )


@blp.route("", methods=["POST"])
@authenticated("case_system", "ig_lead", cost=decisions_asked)
@blp.doc(
    security=BEARER,
    **IDEMPOTENCY_DOC,
    requestBody=one_or_a_list(
        schemas.DecisionRequestSchema,
        f"one share, or a list of 1 to {MAX_LIST} (a referral to several recipients, a "
        "consult over several categories)",
    ),
    responses={
        "200": one_or_a_list(
            schemas.DecisionSchema, "the decision; for a list, the decisions in the same order"
        )
    },
)
@blp.arguments(schemas.DecisionRequestsSchema())
@blp.response(200, schemas.DecisionSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN")
def decide(data: dict[str, Any] | list[dict[str, Any]]) -> Response:
    """Decide whether ``from`` may share these categories of this person with ``to`` for this
    purpose, now. A deny is a 200 answer, not an error; both are signed log entries.

    A list asks for several shares at once: each is its own logged decision, answered in the
    list's order exactly as it would be alone. The list is all or nothing: an element at fault
    refuses the whole request, naming it by its index (`3.purpose`), and nothing is recorded.
    Each element counts against the decision rate limit."""
    if isinstance(data, list):
        inputs = [_input(d) for d in data]
        result = decisions.decide_all(ledger(), current_principal(), inputs, idempotency())
        return render(result, result.body[decisions.LISTED])
    return render(decisions.decide(ledger(), current_principal(), _input(data), idempotency()))
