"""CDS Hooks 2.0: ``GET /cds-services`` and ``POST /cds-services/patient-consent-consult``
(LEAP-CDS's hook). A consult is a decision exactly like ``POST /v1/decisions``: the same
service decides and logs it; :mod:`app.fhir.cds` reads the context and writes the card."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, jsonify

from app.api.common import (
    BEARER,
    IDEMPOTENCY_DOC,
    Blueprint,
    authenticated,
    current_principal,
    idempotency,
    ledger,
    public_root,
    render,
)
from app.api.schemas import Text
from app.fhir import cds
from app.fhir.codes import (
    DATA_CATEGORY_SYSTEM,
    NHS_NUMBER_SYSTEM,
    ORGANISATION_ID_SYSTEM,
    SUBJECT_ID_SYSTEM,
)
from app.services.consents.subjects import (
    InvalidNhsNumber,
    SubjectIdentifier,
    SubjectRef,
    normalise_nhs_number,
)
from app.services.decisions import decisions
from app.vocabulary import PURPOSES

blp = Blueprint(
    "cds_hooks",
    __name__,
    url_prefix="/cds-services",
    description="CDS Hooks 2.0: the patient-consent-consult service (LEAP-CDS's hook)",
)

USAGE_REQUIREMENTS = (
    "Authorization: Bearer <token> of a consent-ledger client with role case_system or "
    "ig_lead: the same tokens, roles and rate limits as POST /v1/decisions (CDS Hooks' JWT "
    "client authentication is not accepted). The caller's organisation is the sender. "
    f"context.patientId: the person's NHS number ({NHS_NUMBER_SYSTEM}) or the subject "
    f"reference this service gave them ({SUBJECT_ID_SYSTEM}); context.actor: the one "
    f"recipient organisation ({ORGANISATION_ID_SYSTEM}); context.purposeOfUse: one of our "
    f"purposes ({', '.join(PURPOSES)}) or a v3 PurposeOfUse code naming exactly one of them "
    f"({', '.join(cds.UNAMBIGUOUS_V3)}); context.class: our data categories "
    f"({DATA_CATEGORY_SYSTEM}). Every consult is a decision recorded in the signed log. "
    "NO_CONSENT is not a permit: do not share on it."
)

_IDENTIFIERS = ma.validate.Length(min=1, max=10)
_CODES = ma.validate.Length(max=20)


class IdentifierSchema(ma.Schema):
    """An identifier as LEAP sends them (``system|value``). Values of the person systems we
    read are checked here, so a refusal names them; other systems' are left alone."""

    system = Text(validate=ma.validate.Length(max=200))
    value = Text(required=True, validate=ma.validate.Length(min=1, max=200))

    @ma.validates_schema
    def _ours_well_formed(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("system") == NHS_NUMBER_SYSTEM:
            try:
                normalise_nhs_number(data["value"])
            except InvalidNhsNumber as exc:
                raise ma.ValidationError(str(exc), "value") from None
        elif data.get("system") == SUBJECT_ID_SYSTEM and not cds.SUBJECT_REF.fullmatch(
            data["value"]
        ):
            raise ma.ValidationError(
                "is not a subject reference (sub_ and 32 hex digits, as v1 answers give)",
                "value",
            )


class CodingSchema(ma.Schema):
    system = Text(required=True, validate=ma.validate.Length(min=1, max=200))
    code = Text(required=True, validate=ma.validate.Length(min=1, max=64))
    display = Text(validate=ma.validate.Length(max=200))


class PurposeOfUse(ma.fields.Field):
    """LEAP's ``purposeOfUse``: one code, or a list of codes, without their system."""

    _code = Text(validate=ma.validate.Length(min=1, max=64))
    _codes = ma.fields.List(Text(validate=ma.validate.Length(min=1, max=64)), validate=_CODES)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, list):
            return self._codes.deserialize(value)
        if isinstance(value, str):
            return self._code.deserialize(value)
        raise ma.ValidationError("must be a code or a list of codes (strings)")


class ConsultContextSchema(ma.Schema):
    """LEAP's context, closed as LEAP closes it; read into our terms after its shape is
    checked, each member at fault named (``context.actor.1.value``)."""

    patientId = ma.fields.List(
        ma.fields.Nested(IdentifierSchema), required=True, validate=_IDENTIFIERS
    )
    actor = ma.fields.List(ma.fields.Nested(IdentifierSchema), required=True, validate=_IDENTIFIERS)
    purposeOfUse = PurposeOfUse(
        required=True,
        metadata={
            "oneOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "maxItems": 20},
            ]
        },
    )
    category = ma.fields.List(ma.fields.Nested(CodingSchema), validate=_CODES)
    class_ = ma.fields.List(
        ma.fields.Nested(CodingSchema), required=True, data_key="class", validate=_CODES
    )
    content = ma.fields.Raw(metadata={"description": "refused: this service redacts no data"})

    @ma.post_load
    def _consult(self, data: dict[str, Any], **_: Any) -> cds.Consult:
        try:
            return cds.read_context({"class": data.pop("class_"), **data})
        except cds.ContextErrors as exc:
            raise ma.ValidationError(dict(exc.errors)) from None


class ConsultRequestSchema(ma.Schema):
    """A CDS Hooks 2.0 call (section "Calling a CDS Service"). ``fhirServer``,
    ``fhirAuthorization`` and ``prefetch`` are accepted and unused: the decision rests on the
    consents this service holds, not on the client's FHIR data."""

    hook = Text(
        required=True,
        validate=ma.validate.Equal(
            cds.HOOK, error=f"must be {cds.HOOK}: the one hook this service answers"
        ),
    )
    hookInstance = Text(required=True, validate=ma.validate.Length(min=1, max=200))
    fhirServer = Text(validate=ma.validate.Length(max=2000))
    fhirAuthorization = ma.fields.Dict()
    prefetch = ma.fields.Dict()
    extension = ma.fields.Dict()
    context = ma.fields.Nested(ConsultContextSchema, required=True)


class SourceSchema(ma.Schema):
    label = ma.fields.String()
    url = ma.fields.String()


class CardSchema(ma.Schema):
    summary = ma.fields.String(
        metadata={"description": "the decision: CONSENT_PERMIT, CONSENT_DENY or NO_CONSENT"}
    )
    indicator = ma.fields.String(metadata={"description": "info, critical or warning"})
    detail = ma.fields.String(metadata={"description": "Markdown: rule ids and legal sources"})
    source = ma.fields.Nested(SourceSchema)
    extension = ma.fields.Dict(
        metadata={
            "description": "decision, obligations (REDACT for each refused category, then ours), "
            f"basedOn (the first consent relied on); {cds.EXTENSION_KEY}: the decision as "
            "POST /v1/decisions answers it, with subject and every consent relied on (basedOn)"
        }
    )


class ConsultResponseSchema(ma.Schema):
    cards = ma.fields.List(ma.fields.Nested(CardSchema), metadata={"description": "one card"})


class ServiceSchema(ma.Schema):
    hook = ma.fields.String()
    id = ma.fields.String()
    title = ma.fields.String()
    description = ma.fields.String()
    usageRequirements = ma.fields.String()


class DiscoverySchema(ma.Schema):
    services = ma.fields.List(ma.fields.Nested(ServiceSchema))


@blp.route("", methods=["GET"])
@blp.response(200, DiscoverySchema)
def discover() -> Response:
    """The CDS services offered here (CDS Hooks "Discovery"): anyone may read it."""
    return jsonify(cds.discovery(USAGE_REQUIREMENTS))


@blp.route(f"/{cds.SERVICE_ID}", methods=["POST"])
@authenticated("case_system", "ig_lead")
@blp.doc(security=BEARER, **IDEMPOTENCY_DOC)
@blp.arguments(ConsultRequestSchema)
@blp.response(200, ConsultResponseSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN")
def consult(data: dict[str, Any]) -> Response:
    """May the caller's organisation share these categories of this person with the actor for
    this purpose, now? Decided and logged as `POST /v1/decisions` decides, answered as one
    LEAP-CDS card: CONSENT_PERMIT (with a REDACT obligation naming any category refused),
    NO_CONSENT (no usable consent) or CONSENT_DENY (refused outright)."""
    asked: cds.Consult = data["context"]
    principal = current_principal()
    subject = (
        SubjectIdentifier.nhs_number(asked.person)
        if asked.person_system == NHS_NUMBER_SYSTEM
        else SubjectRef(asked.person)
    )
    inp = decisions.DecisionInput(
        subject=subject,
        from_org=principal.organisation_id,
        to_org=asked.recipient,
        purpose=asked.purpose,
        data_categories=asked.categories,
    )
    names = decisions.FieldNames(
        subject=f"context.patientId.{asked.person_at}.value",
        to=f"context.actor.{asked.recipient_at}.value",
        purpose="context.purposeOfUse",
        data_categories="context.class",
    )
    result = decisions.decide(ledger(), principal, inp, idempotency(), names)
    return render(result, cds.response(result.body, public_root() + "/"))
