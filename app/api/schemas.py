"""Request and response schemas shared by the consent-side blueprints."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Any

import marshmallow as ma

from app.services.consents.subjects import InvalidNhsNumber, SubjectIdentifier, normalise_nhs_number
from app.text import line_problem
from app.vocabulary import (
    CONSENT_FORMS,
    DATA_CATEGORIES,
    OBJECTION_SCOPES,
    PURPOSES,
    WITHDRAWAL_REASONS,
)

ORG_ID_PATTERN = r"[a-z0-9][a-z0-9-]{1,62}[a-z0-9]"


# The constraints below that a validator function enforces, stated in the OpenAPI document
# too (a client, or schemathesis, reads only the document). JSON Schema patterns are ECMA-262.
NO_CONTROL_PATTERN = r"^[^\x00-\x1f\x7f]*$"
NHS_NUMBER_PATTERN = r"^(?: *[0-9]){10} *$"
# Years 1900 to 9000, the range every database stores.
TIMESTAMP_PATTERN = r"^(?:19[0-9]{2}|[2-8][0-9]{3}|9000)-"


class Text(ma.fields.String):
    """A line of visible text (:func:`app.text.line_problem`): no controls, no bidirectional
    or other invisible formatting characters, and no lone surrogates (which no database or
    canonical JSON encoder accepts)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not any(isinstance(v, ma.validate.Regexp) for v in self.validators):
            # A field with its own pattern states a stricter one; otherwise state this one.
            self.metadata = {"pattern": NO_CONTROL_PATTERN, **self.metadata}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if (problem := line_problem(text)) is not None:
            raise ma.ValidationError(problem)
        return text


# A whole number as a query string spells it: ASCII digits only (int() would also take other
# scripts' digits, " 7", "+7" and "7_0"), and few enough of them to stay far below Python's
# int-from-string limit and inside every database's integer.
_QUERY_INTEGER = re.compile(r"-?[0-9]{1,18}")
_WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")


def parse_whole_number(text: str) -> int | None:
    """A non-negative whole number written in the digits 0-9, or None."""
    return int(text) if _WHOLE_NUMBER.fullmatch(text) else None


class QuerySchema(ma.Schema):
    """Arguments from a query string, where every value arrives as text."""


class Integer(ma.fields.Integer):
    """The API's integer, for every schema: in a JSON body a JSON integer and nothing else (not
    ``7.5``, which would silently become 7, not ``"7"``, not ``true``); in a
    :class:`QuerySchema`, plain ASCII digits."""

    default_error_messages = {  # noqa: RUF012 (as marshmallow declares it)
        "invalid": "must be an integer",
        "invalid_text": "must be a whole number written in the digits 0-9",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(self.root, QuerySchema):
            if not isinstance(value, str) or not _QUERY_INTEGER.fullmatch(value):
                raise self.make_error("invalid_text")
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


def org_id(**kwargs: Any) -> ma.fields.String:
    return ma.fields.String(
        validate=ma.validate.Regexp(
            rf"^{ORG_ID_PATTERN}\Z",
            error="is not an organisation id (lower-case letters, digits and hyphens)",
        ),
        **kwargs,
    )


class Timestamp(ma.fields.AwareDateTime):
    """RFC 3339 with an offset, in a range every database stores (years 1900 to 9000)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metadata = {"pattern": TIMESTAMP_PATTERN, **self.metadata}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        if not 1900 <= parsed.year <= 9000:
            raise ma.ValidationError("must be between the years 1900 and 9000")
        return parsed


_PLAIN_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class DayOrTimestamp(Timestamp):
    """A :class:`Timestamp`, or a plain date (``2026-12-01``) meaning the start of that day in
    UTC: how a person writes the bounds of a period to search (``since``, ``until``)."""

    default_error_messages = {  # noqa: RUF012 (as marshmallow declares it)
        "invalid": "must be a date like 2026-12-01 (the start of that day in UTC) or an "
        "RFC 3339 time with an offset like 2026-12-01T09:30:00Z",
    }
    default_error_messages["invalid_awareness"] = default_error_messages["invalid"]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metadata = {
            "description": "a date (the start of that day in UTC) or an RFC 3339 time",
            **self.metadata,
        }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and _PLAIN_DATE.fullmatch(value):
            try:
                day = date.fromisoformat(value)
            except ValueError:
                raise self.make_error("invalid") from None
            value = datetime.combine(day, time(), UTC).isoformat()
        return super()._deserialize(value, attr, data, **kwargs)


_DAY_OR_TIMESTAMP = DayOrTimestamp()


def parse_day_or_timestamp(text: str) -> datetime:
    """``text`` read as :class:`DayOrTimestamp` reads it, for a page's form; raises ValueError
    saying what is wrong."""
    try:
        parsed: datetime = _DAY_OR_TIMESTAMP.deserialize(text)
    except ma.ValidationError as exc:
        raise ValueError(" ".join(map(str, exc.messages))) from None
    return parsed


ORG_ID = org_id()


def _nhs_number(value: str) -> None:
    try:
        normalise_nhs_number(value)
    except InvalidNhsNumber as exc:
        raise ma.ValidationError(str(exc)) from None


def nhs_number(**kwargs: Any) -> ma.fields.String:
    """An NHS number: the document states its shape; the check digit only the server knows."""
    metadata = {
        "pattern": NHS_NUMBER_PATTERN,
        "description": "10 digits (spaces allowed) with a valid modulus-11 check digit",
        **kwargs.pop("metadata", {}),
    }
    return ma.fields.String(validate=_nhs_number, metadata=metadata, **kwargs)


class LocalIdSchema(ma.Schema):
    system = org_id(
        required=True,
        metadata={"description": "the id of the organisation whose identifier this is"},
    )
    value = Text(required=True, validate=ma.validate.Length(min=1, max=100))


class SubjectSchema(ma.Schema):
    """A person: an NHS number (10 digits, modulus-11 check digit, spaces allowed) or a local
    identifier. Exactly one of the two."""

    nhs_number = nhs_number(metadata={"example": "943 476 5919"})
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
    index = Integer()
    leaf_hash = ma.fields.String()
    checkpoint = ma.fields.String(
        metadata={"description": "a C2SP signed checkpoint that includes the entry"}
    )
    proof = ma.fields.String(
        metadata={
            "description": "where to download this receipt as a c2sp.org/tlog-proof (the "
            "index, inclusion proof and this checkpoint), checkable offline with the key alone"
        }
    )


class HistoryEventSchema(ma.Schema):
    event = ma.fields.String()
    at = ma.fields.String()
    organisation = ma.fields.String(allow_none=True)
    ledger_index = Integer()
    reason = ma.fields.String()


class ConsentCreateSchema(ma.Schema):
    subject = ma.fields.Nested(SubjectSchema, required=True)
    purpose = ma.fields.String(required=True, validate=ma.validate.OneOf(PURPOSES))
    recipients = ma.fields.List(ORG_ID, required=True, validate=ma.validate.Length(min=1, max=50))
    data_categories = ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(DATA_CATEGORIES)),
        required=True,
        validate=ma.validate.Length(min=1, max=len(DATA_CATEGORIES)),
    )
    form = ma.fields.String(required=True, validate=ma.validate.OneOf(CONSENT_FORMS))
    evidence_sha256 = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=ma.validate.Regexp(r"^[0-9a-f]{64}\Z", error="must be 64 lower-case hex digits"),
    )
    valid_from = Timestamp(load_default=None, allow_none=True)
    expires_at = Timestamp(load_default=None, allow_none=True)


class ConsentImportSchema(ConsentCreateSchema):
    """A consent brought in by an import (issue 17 item 2): v1's fields, plus when the person
    gave it; dates may be plain days (``2024-03-01``), as paper and spreadsheets write them."""

    given_at = DayOrTimestamp(load_default=None, allow_none=True)
    valid_from = DayOrTimestamp(load_default=None, allow_none=True)
    expires_at = DayOrTimestamp(load_default=None, allow_none=True)


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
    given_at = ma.fields.String(
        metadata={"description": "when the person gave it: recorded_at, or an import's date"}
    )
    confirmed_by = ma.fields.String(allow_none=True)
    confirmed_at = ma.fields.String(allow_none=True)
    withdrawn_at = ma.fields.String(allow_none=True)
    history = ma.fields.List(ma.fields.Nested(HistoryEventSchema))


class ConsentWarningSchema(ma.Schema):
    recipient = ma.fields.String(required=True, metadata={"description": "an organisation id"})
    category = ma.fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "the category that can never reach it; null: nothing can"},
    )
    rule = ma.fields.String(
        required=True,
        metadata={
            "description": "the rule that says so: a deny rule (P10), G7 (the recipient's "
            "ceiling) or G0 (no rule covers the route)"
        },
    )
    message = ma.fields.String(required=True, metadata={"description": "for an IG lead"})


class ConsentReceiptSchema(ConsentSchema):
    warnings = ma.fields.List(
        ma.fields.Nested(ConsentWarningSchema),
        metadata={
            "description": "On recording (201): what the consent lists that the policy in force "
            "never permits, whatever consent, confirmation, objection or time (a legal "
            "requirement or safeguarding, G1 and G2, stands apart from consent). The consent is "
            "recorded as given all the same; empty when everything listed can be shared."
        },
    )
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
    recorded_by = ma.fields.String(
        allow_none=True, metadata={"description": "null unless this client may see it"}
    )
    recorded_at = ma.fields.String()
    withdrawn_at = ma.fields.String(allow_none=True)
    history = ma.fields.List(ma.fields.Nested(HistoryEventSchema))


class ObjectionReceiptSchema(ObjectionSchema):
    ledger = ma.fields.Nested(LedgerReceiptSchema)


class SubjectQuerySchema(QuerySchema):
    nhs_number = nhs_number()
    local_system = org_id()
    local_value = Text(validate=ma.validate.Length(min=1, max=100))

    @ma.validates_schema
    def _one_form(self, data: dict[str, Any], **_: Any) -> None:
        has_system, has_value = "local_system" in data, "local_value" in data
        if has_system and not has_value:
            raise ma.ValidationError("is required with local_system", "local_value")
        if has_value and not has_system:
            raise ma.ValidationError("is required with local_value", "local_system")
        if "nhs_number" in data and has_system:
            raise ma.ValidationError(
                "give nhs_number or a local identifier, not both", "nhs_number"
            )
        if "nhs_number" not in data and not has_system:
            raise ma.ValidationError(
                "give nhs_number, or local_system and local_value", "nhs_number"
            )

    @ma.post_load
    def _identifier(self, data: dict[str, Any], **_: Any) -> SubjectIdentifier:
        if "nhs_number" in data:
            return SubjectIdentifier.nhs_number(data["nhs_number"])
        return SubjectIdentifier.local_id(data["local_system"], data["local_value"])


class SubjectHistorySchema(ma.Schema):
    subject_ref = ma.fields.String()
    consents = ma.fields.List(ma.fields.Nested(ConsentSchema))
    objections = ma.fields.List(ma.fields.Nested(ObjectionSchema))


def _no_nhs_number(value: str) -> None:
    """A reference enters the permanent log: refuse one that carries an NHS number."""
    digits = re.sub(r"[^0-9]", "", value)
    for start in range(len(digits) - 9):
        try:
            normalise_nhs_number(digits[start : start + 10])
        except InvalidNhsNumber:
            continue
        raise ma.ValidationError(
            "looks like it contains an NHS number; give the order, CAG or case reference only"
        )


class LegalBasisSchema(ma.Schema):
    type = ma.fields.String(required=True, validate=ma.validate.Regexp(r"^[a-z][a-z0-9_]{0,31}\Z"))
    reference = Text(
        required=True,
        validate=[
            ma.validate.Length(min=1, max=80),
            ma.validate.Regexp(
                r"^[A-Za-z0-9][A-Za-z0-9 /._:#()-]*\Z",
                error="may hold letters, digits, spaces and / . _ : # ( ) - only",
            ),
            _no_nhs_number,
        ],
        metadata={
            "description": "order number, CAG reference or safeguarding case reference; "
            "it is written to the permanent log, so never a personal identifier"
        },
    )


class DecisionRequestSchema(ma.Schema):
    subject = ma.fields.Nested(SubjectSchema, required=True)
    from_ = org_id(required=True, data_key="from")
    to = org_id(required=True)
    purpose = Text(required=True, validate=ma.validate.Length(min=1, max=32))
    data_categories = ma.fields.List(
        Text(validate=ma.validate.Length(min=1, max=32)),
        required=True,
        validate=ma.validate.Length(min=1, max=20),
    )
    legal_basis = ma.fields.Nested(LegalBasisSchema, load_default=None, allow_none=True)


# The most decisions one request may ask for: a referral to several recipients, or a consult
# over several categories, needs a handful; 64 is one batch of the write path (its largest
# list still fits the body limit, app.limits.MAX_BODY, with every text at its longest).
MAX_DECISIONS_PER_REQUEST = 64


class DecisionRequestsSchema(DecisionRequestSchema):
    """The body of ``POST /v1/decisions``: one decision request, or a list of 1 to
    :data:`MAX_DECISIONS_PER_REQUEST` of them. A list's fields at fault are named with the
    element's index first (``3.subject.nhs_number``)."""

    def load(  # one request or a list, decided by the body itself
        self, data: Any, *, many: bool | None = None, **kwargs: Any
    ) -> dict[str, Any] | list[dict[str, Any]]:
        if not isinstance(data, list):
            return super().load(data, many=False, **kwargs)  # type: ignore[no-any-return]
        if not 1 <= len(data) <= MAX_DECISIONS_PER_REQUEST:
            raise ma.ValidationError(
                f"a list holds 1 to {MAX_DECISIONS_PER_REQUEST} decision requests, not {len(data)}"
            )
        return super().load(data, many=True, **kwargs)  # type: ignore[no-any-return]


class DeniedCategorySchema(ma.Schema):
    category = ma.fields.String()
    reason = ma.fields.String()
    rule = ma.fields.String()


class ReasonSchema(ma.Schema):
    code = ma.fields.String()
    rule = ma.fields.String()
    message = ma.fields.String()


class DecisionLedgerSchema(ma.Schema):
    index = Integer()
    leaf_hash = ma.fields.String()


class DecisionSchema(ma.Schema):
    id = ma.fields.String()
    decision = ma.fields.String(metadata={"description": "permit or deny (a deny is an answer)"})
    permitted_categories = ma.fields.List(ma.fields.String())
    denied_categories = ma.fields.List(ma.fields.Nested(DeniedCategorySchema))
    reasons = ma.fields.List(ma.fields.Nested(ReasonSchema))
    consents = ma.fields.List(ma.fields.String())
    obligations = ma.fields.List(ma.fields.String())
    policy_version = ma.fields.String()
    basis = ma.fields.String(allow_none=True)
    from_ = ma.fields.String(attribute="from", data_key="from")
    to = ma.fields.String()
    purpose = ma.fields.String()
    data_categories = ma.fields.List(ma.fields.String())
    subject_ref = ma.fields.String()
    made_at = ma.fields.String()
    ledger = ma.fields.Nested(DecisionLedgerSchema)


class DisclosureRequestSchema(ma.Schema):
    decision_id = ma.fields.String(
        required=True,
        validate=ma.validate.Regexp(r"^dec_[0-9a-f]{32}\Z", error="is not a decision id"),
    )
    data_categories = ma.fields.List(
        Text(validate=ma.validate.Length(min=1, max=32)),
        required=True,
        validate=ma.validate.Length(min=1, max=20),
    )


class DisclosureSchema(ma.Schema):
    id = ma.fields.String()
    decision_id = ma.fields.String()
    subject_ref = ma.fields.String()
    from_ = ma.fields.String(attribute="from", data_key="from")
    to = ma.fields.String()
    purpose = ma.fields.String()
    data_categories = ma.fields.List(ma.fields.String())
    basis = ma.fields.String(allow_none=True)
    legal_basis = ma.fields.String(allow_none=True)
    consents = ma.fields.List(ma.fields.String())
    disclosed_at = ma.fields.String()
    ledger_index = Integer()
    ledger = ma.fields.Nested(DecisionLedgerSchema)


class DisclosureQuerySchema(QuerySchema):
    nhs_number = nhs_number()
    from_org = org_id()
    to_org = org_id()
    purpose = ma.fields.String(validate=ma.validate.OneOf(PURPOSES))
    since = DayOrTimestamp()
    until = DayOrTimestamp()
    page = Integer(load_default=1, validate=ma.validate.Range(min=1, max=100_000))
    page_size = Integer(load_default=50, validate=ma.validate.Range(min=1, max=500))

    @ma.validates_schema
    def _window(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise ma.ValidationError("must be later than since", "until")


class DisclosurePageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(DisclosureSchema))
    page = Integer()
    page_size = Integer()
    total = Integer()
