"""``/v1/disclosures``: record each share a decision permitted (a deny's permitted categories
too); the history IG leads audit."""

from __future__ import annotations

import csv
import io
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
from app.services.consents.subjects import SubjectIdentifier
from app.services.decisions import decisions

blp = Blueprint(
    "disclosures",
    __name__,
    url_prefix="/v1/disclosures",
    description="Disclosures made under permit decisions: who received which data, when, why",
)

CSV_COLUMNS = (
    "disclosed_at",
    "id",
    "from",
    "to",
    "purpose",
    "data_categories",
    "basis",
    "legal_basis",
    "consents",
    "decision_id",
    "subject_ref",
    "ledger_index",
)


@blp.route("", methods=["POST"])
@authenticated("case_system")
@blp.doc(security=BEARER, **IDEMPOTENCY_DOC)
@blp.arguments(schemas.DisclosureRequestSchema())
@blp.response(201, schemas.DisclosureSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="not permitted now; nothing recorded")
def record(data: dict[str, Any]) -> Response:
    """Record a share of a decision's permitted categories (a deny's too), re-checked now.

    A 409 says what is not permitted, or no longer is; nothing is recorded."""
    result = decisions.record_disclosure(
        ledger(),
        current_principal(),
        data["decision_id"],
        data["data_categories"],
        idempotency(),
    )
    return render(result)


def wants_csv() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"])
    return best == "text/csv"


def csv_cell(value: Any) -> str:
    text = ";".join(value) if isinstance(value, list) else ("" if value is None else str(value))
    # A spreadsheet runs a cell that starts like a formula: neutralise it (OWASP CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(items: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for item in items:
        writer.writerow([csv_cell(item.get(c)) for c in CSV_COLUMNS])
    return out.getvalue()


@blp.route("", methods=["GET"])
@authenticated("ig_lead", "auditor")
@blp.doc(
    security=BEARER,
    responses={
        "200": {
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/DisclosurePage"}},
                "text/csv": {"schema": {"type": "string"}},
            }
        }
    },
)
@blp.arguments(schemas.DisclosureQuerySchema(), location="query", error_status_code=400)
@blp.response(200, schemas.DisclosurePageSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN")
def history(args: dict[str, Any]) -> Any:
    """Disclosure history, newest first, paginated (``page``, ``page_size``); as CSV with
    ``Accept: text/csv`` (the same page). An IG lead sees shares from or to its organisation."""
    nhs = args.get("nhs_number")
    query = decisions.DisclosureQuery(
        subject=SubjectIdentifier.nhs_number(nhs) if nhs else None,
        from_org=args.get("from_org"),
        to_org=args.get("to_org"),
        purpose=args.get("purpose"),
        since=args.get("since"),
        until=args.get("until"),
        page=args["page"],
        page_size=args["page_size"],
    )
    page = decisions.list_disclosures(ledger(), current_principal(), query)
    if wants_csv():
        resp = Response(to_csv(page["items"]), mimetype="text/csv")
        resp.headers["Content-Disposition"] = 'attachment; filename="disclosures.csv"'
        resp.headers["X-Total-Count"] = str(page["total"])
        return resp
    return page
