"""``/v1/notifications``: what an organisation must do after a withdrawal, an objection or an
erasure, and its acknowledgements (app.services.notifications.obligations)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
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
from app.services.notifications import obligations

blp = Blueprint(
    "notifications",
    __name__,
    url_prefix="/v1/notifications",
    description="Obligations to act on a withdrawal, objection or erasure, and their "
    "acknowledgements",
)


class FeedArgs(schemas.QuerySchema):
    state = ma.fields.String(
        load_default="open",
        validate=ma.validate.OneOf(obligations.STATES),
        metadata={"description": "open (the default), acknowledged, or all"},
    )
    after = schemas.Integer(
        validate=ma.validate.Range(min=0),
        metadata={"description": "a cursor: only notifications after it (`next` of a page)"},
    )
    limit = schemas.Integer(
        load_default=50, validate=ma.validate.Range(min=1, max=obligations.MAX_PAGE)
    )


class DisclosedSchema(ma.Schema):
    id = ma.fields.String(metadata={"description": "the id the discloser sent with the data"})
    disclosed_at = ma.fields.String()
    purpose = ma.fields.String()
    data_categories = ma.fields.List(ma.fields.String())


class CauseSchema(ma.Schema):
    type = ma.fields.String(
        metadata={"description": "consent.withdrawn, objection.recorded or subject.erased"}
    )
    ledger_index = schemas.Integer()


class AcknowledgementSchema(ma.Schema):
    at = ma.fields.String()
    outcome = ma.fields.String()
    evidence_sha256 = ma.fields.String(allow_none=True)
    client_id = ma.fields.String()
    ledger_index = schemas.Integer()


class NotificationSchema(ma.Schema):
    id = ma.fields.String()
    cursor = ma.fields.String()
    organisation = ma.fields.String()
    obligation = ma.fields.String(
        metadata={"description": "notify_recipient, cease_processing_and_erase, note_withdrawal"}
    )
    state = ma.fields.String(metadata={"description": "open or acknowledged"})
    created_at = ma.fields.String()
    cause = ma.fields.Nested(CauseSchema)
    consent_id = ma.fields.String(allow_none=True)
    objection_id = ma.fields.String(allow_none=True)
    purpose = ma.fields.String(allow_none=True)
    disclosures = ma.fields.List(ma.fields.Nested(DisclosedSchema))
    acknowledgement = ma.fields.Nested(AcknowledgementSchema, allow_none=True)


class FeedSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(NotificationSchema))
    next = ma.fields.String(
        allow_none=True, metadata={"description": "pass as `after` for the next page"}
    )


class AcknowledgeArgs(ma.Schema):
    outcome = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(sorted(set(obligations.OUTCOMES.values()))),
        metadata={"description": "noted; erased for a cease_processing_and_erase obligation"},
    )
    evidence_sha256 = ma.fields.String(
        metadata={"description": "with erased: SHA-256 (hex) of your own record of the destruction"}
    )


class AcknowledgedSchema(NotificationSchema):
    ledger = ma.fields.Nested(schemas.LedgerReceiptSchema)


@blp.route("", methods=["GET"])
@authenticated(*obligations.READER_ROLES)
@blp.doc(security=BEARER)
@blp.arguments(FeedArgs(), location="query", error_status_code=400)
@blp.response(200, FeedSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN")
def feed(args: dict[str, Any]) -> Any:
    """The caller's organisation's notifications, oldest first (newest last), a page at a
    time: ask again with `after` set to `next` until `next` is null."""
    return obligations.feed(
        ledger(), current_principal(), args["state"], args.get("after"), args["limit"]
    )


@blp.route("/<string:notification_id>/acknowledge", methods=["POST"])
@authenticated(*obligations.READER_ROLES)
@blp.doc(security=BEARER, **IDEMPOTENCY_DOC)
@blp.arguments(AcknowledgeArgs())
@blp.response(200, AcknowledgedSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
def acknowledge(data: dict[str, Any], notification_id: str) -> Response:
    """Say the obligation is done: `noted`, or `erased` with `evidence_sha256` for a
    `cease_processing_and_erase`. The acknowledgement is a log entry."""
    return render(
        obligations.acknowledge(
            ledger(),
            current_principal(),
            notification_id,
            data["outcome"],
            data.get("evidence_sha256"),
            idempotency(),
        )
    )
