"""People: ``POST /v1/subjects/access-links`` (a link to the person's own page) and
``POST /v1/subjects/erasures`` (erase a person, UK GDPR Art 17)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api import schemas
from app.api.common import (
    BEARER,
    Blueprint,
    authenticated,
    current_principal,
    ledger,
    public_root,
)
from app.services.access.links import LINK_ROLES
from app.services.access.web_sessions import (
    DEFAULT_LINK_DAYS,
    MAX_LINK_DAYS,
    create_access_link,
    revoke_access_link,
)
from app.services.consents import erasure

blp = Blueprint(
    "subjects",
    __name__,
    url_prefix="/v1/subjects",
    description="People: links to their own page, and erasure",
)


class AccessLinkRequestSchema(ma.Schema):
    subject = ma.fields.Nested(schemas.SubjectSchema, required=True)
    expires_in_days = schemas.Integer(
        load_default=DEFAULT_LINK_DAYS, validate=ma.validate.Range(min=1, max=MAX_LINK_DAYS)
    )


class AccessLinkSchema(ma.Schema):
    id = ma.fields.String()
    url = ma.fields.String(metadata={"description": "give this to the person, and to no one else"})
    expires_at = ma.fields.String()
    ledger_index = schemas.Integer()


@blp.route("/access-links", methods=["POST"])
@authenticated(*LINK_ROLES)
@blp.doc(security=BEARER)
@blp.arguments(AccessLinkRequestSchema())
@blp.response(201, AccessLinkSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN")
def create(data: dict[str, Any]) -> Any:
    """An unguessable, single-person link to the patient page, which expires (default 7 days).
    Only its hash is stored; issuing it is a log entry (never the token). A patient portal's
    link shows the person's whole record; a case system's shows what its organisation sees
    (consents it recorded or is named in, objections, shares from or to it), and may be issued
    only to a person it has a consent or objection with. Revoking or rotating the issuing
    client ends its links."""
    link = create_access_link(
        ledger(), current_principal(), data["subject"], data["expires_in_days"]
    )
    return {
        "id": link.id,
        "url": f"{public_root()}/p/{link.token}",
        "expires_at": link.expires_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "ledger_index": link.ledger_index,
    }, 201


class RevokedSchema(ma.Schema):
    id = ma.fields.String()
    revoked = ma.fields.Boolean()
    ledger_index = schemas.Integer()


@blp.route("/access-links/<string:link_id>/revoke", methods=["POST"])
@authenticated(*LINK_ROLES)
@blp.doc(security=BEARER)
@blp.response(200, RevokedSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
def revoke(link_id: str) -> Any:
    """End a link before it expires; the page then says the link does not work."""
    index = revoke_access_link(ledger(), current_principal(), link_id)
    return {"id": link_id, "revoked": True, "ledger_index": index}


class ErasureRequestSchema(ma.Schema):
    subject = ma.fields.Nested(schemas.SubjectSchema, required=True)
    reason = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(erasure.REASONS),
        metadata={
            "description": "why: only recorded_in_error erases records the policy's retention "
            "period still keeps"
        },
    )
    reference = ma.fields.String(
        required=True,
        metadata={
            "description": "your own case number for the request (1 to 64 letters, digits and "
            "._/:-; never a person's identifier): it is logged",
            "example": "SAR-2026-0042",
        },
    )

    @ma.validates("reference")
    def _reference(self, value: str, **_: Any) -> None:
        problem = erasure.reference_problem(value)
        if problem is not None:
            raise ma.ValidationError(problem.message)


class ErasureSchema(ma.Schema):
    reason = ma.fields.String()
    reference = ma.fields.String()
    count = schemas.Integer(metadata={"description": "how many log entries were about the person"})
    indexes = ma.fields.List(
        schemas.Integer(), metadata={"description": "their leaves, which now open to nothing"}
    )
    ledger = ma.fields.Nested(schemas.LedgerReceiptSchema)


@blp.route("/erasures", methods=["POST"])
@authenticated(*erasure.ERASER_ROLES)
@blp.doc(security=BEARER)
@blp.arguments(ErasureRequestSchema())
@blp.response(201, ErasureSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
def erase(data: dict[str, Any]) -> Any:
    """Erase a person: the openings of every log entry about them, their identifier mappings
    and every row about them are deleted in one transaction, and a `subject.erased` entry
    (holding nothing personal) is logged. Every checkpoint, proof and receipt stays valid. An
    IG lead erases a person its organisation recorded something about; an auditor, anyone.
    Refused (409 `retention-applies`, naming the rule) while the policy's retention period
    keeps the records, unless `reason` is `recorded_in_error`."""
    erased = erasure.erase(
        ledger(), current_principal(), data["subject"], data["reason"], data["reference"]
    )
    return erasure.erasure_view(erased), 201
