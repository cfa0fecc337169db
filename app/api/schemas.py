"""Request and response schemas shared by the consent-side blueprints."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.services.subjects import InvalidNhsNumber, SubjectIdentifier, normalise_nhs_number
from app.vocabulary import (
    CONSENT_FORMS,
    DATA_CATEGORIES,
    OBJECTION_SCOPES,
    PURPOSES,
    WITHDRAWAL_REASONS,
)

ORG_ID = ma.fields.String(validate=ma.validate.Length(min=1, max=64))


def _nhs_number(value: str) -> None:
    try:
        normalise_nhs_number(value)
    except InvalidNhsNumber as exc:
        raise ma.ValidationError(str(exc)) from None


class LocalIdSchema(ma.Schema):
    system = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=64),
        metadata={"description": "the id of the organisation whose identifier this is"},
    )
    value = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=100))


class SubjectSchema(ma.Schema):
    """A person: an NHS number (10 digits, modulus-11 check digit, spaces allowed) or a local
    identifier. Exactly one of the two."""

    nhs_number = ma.fields.String(validate=_nhs_number, metadata={"example": "943 476 5919"})
    local_id = ma.fields.Nested(LocalIdSchema)

    @ma.validates_schema
    def _exactly_one(self, data: dict[str, Any], **_: Any) -> None:
        if ("nhs_number" in data) == ("local_id" in data):
            raise ma.ValidationError("give exactly one of nhs_number or local_id")

    @ma.post_load
    def _identifier(self, data: dict[str, Any], **_: Any) -> SubjectIdentifier:
        if "nhs_number" in data:
            return SubjectIdentifier.nhs_number(data["nhs_number"])
        return SubjectIdentifier.local_id(data["local_id"]["system"], data["local_id"]["value"])


class LedgerReceiptSchema(ma.Schema):
    index = ma.fields.Integer()
    leaf_hash = ma.fields.String()
    checkpoint = ma.fields.String(
        metadata={"description": "a C2SP signed checkpoint that includes the entry"}
    )


class HistoryEventSchema(ma.Schema):
    event = ma.fields.String()
    at = ma.fields.String()
    organisation = ma.fields.String()
    ledger_index = ma.fields.Integer()
    reason = ma.fields.String()


class ConsentCreateSchema(ma.Schema):
    subject = ma.fields.Nested(SubjectSchema, required=True)
    purpose = ma.fields.String(required=True, validate=ma.validate.OneOf(PURPOSES))
    recipients = ma.fields.List(ORG_ID, required=True, validate=ma.validate.Length(min=1, max=50))
    data_categories = ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(DATA_CATEGORIES)),
        required=True,
        validate=ma.validate.Length(min=1),
    )
    form = ma.fields.String(required=True, validate=ma.validate.OneOf(CONSENT_FORMS))
    evidence_sha256 = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=ma.validate.Regexp(r"^[0-9a-f]{64}\Z", error="must be 64 lower-case hex digits"),
    )
    valid_from = ma.fields.AwareDateTime(load_default=None, allow_none=True)
    expires_at = ma.fields.AwareDateTime(load_default=None, allow_none=True)


class ConsentSchema(ma.Schema):
    id = ma.fields.String()
    status = ma.fields.String(metadata={"description": "active or withdrawn"})
    subject_ref = ma.fields.String()
    purpose = ma.fields.String()
    recipients = ma.fields.List(ma.fields.String())
    data_categories = ma.fields.List(ma.fields.String())
    form = ma.fields.String()
    evidence_sha256 = ma.fields.String(allow_none=True)
    valid_from = ma.fields.String(allow_none=True)
    expires_at = ma.fields.String(allow_none=True)
    recorded_by = ma.fields.String()
    recorded_at = ma.fields.String()
    confirmed_by = ma.fields.String(allow_none=True)
    confirmed_at = ma.fields.String(allow_none=True)
    withdrawn_at = ma.fields.String(allow_none=True)
    history = ma.fields.List(ma.fields.Nested(HistoryEventSchema))


class ConsentReceiptSchema(ConsentSchema):
    ledger = ma.fields.Nested(LedgerReceiptSchema)


class NotifySchema(ma.Schema):
    organisation = ma.fields.String()
    obligation = ma.fields.String(
        metadata={"description": "notify_recipient, or cease_processing_and_erase (evaluation)"}
    )


class WithdrawalSchema(ConsentReceiptSchema):
    notify = ma.fields.List(ma.fields.Nested(NotifySchema))


class WithdrawArgs(ma.Schema):
    reason = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=ma.validate.OneOf(WITHDRAWAL_REASONS),
        metadata={
            "description": "a reason code; free text is not accepted, so that nothing "
            "identifying can enter the log"
        },
    )


class ObjectionCreateSchema(ma.Schema):
    subject = ma.fields.Nested(SubjectSchema, required=True)
    scope = ma.fields.String(required=True, validate=ma.validate.OneOf(OBJECTION_SCOPES))


class ObjectionSchema(ma.Schema):
    id = ma.fields.String()
    scope = ma.fields.String()
    status = ma.fields.String()
    subject_ref = ma.fields.String()
    recorded_by = ma.fields.String()
    recorded_at = ma.fields.String()
    withdrawn_at = ma.fields.String(allow_none=True)
    history = ma.fields.List(ma.fields.Nested(HistoryEventSchema))


class ObjectionReceiptSchema(ObjectionSchema):
    ledger = ma.fields.Nested(LedgerReceiptSchema)


class SubjectQuerySchema(ma.Schema):
    nhs_number = ma.fields.String(validate=_nhs_number)
    local_system = ma.fields.String(validate=ma.validate.Length(min=1, max=64))
    local_value = ma.fields.String(validate=ma.validate.Length(min=1, max=100))

    @ma.validates_schema
    def _one_form(self, data: dict[str, Any], **_: Any) -> None:
        local = ("local_system" in data, "local_value" in data)
        if local[0] != local[1]:
            raise ma.ValidationError("local_system and local_value go together")
        if ("nhs_number" in data) == local[0]:
            raise ma.ValidationError("give nhs_number, or local_system and local_value")

    @ma.post_load
    def _identifier(self, data: dict[str, Any], **_: Any) -> SubjectIdentifier:
        if "nhs_number" in data:
            return SubjectIdentifier.nhs_number(data["nhs_number"])
        return SubjectIdentifier.local_id(data["local_system"], data["local_value"])


class SubjectHistorySchema(ma.Schema):
    subject_ref = ma.fields.String()
    consents = ma.fields.List(ma.fields.Nested(ConsentSchema))
    objections = ma.fields.List(ma.fields.Nested(ObjectionSchema))
