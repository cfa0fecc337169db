"""``GET /v1/organisations``: the registered organisations."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.common import BEARER, Blueprint, authenticated, ledger
from app.api.schemas import Integer
from app.services import organisations

blp = Blueprint(
    "organisations",
    __name__,
    url_prefix="/v1/organisations",
    description="Registered organisations",
)


class OrganisationSchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String()
    kind = ma.fields.String()
    funder = ma.fields.String()
    ods_code = ma.fields.String(allow_none=True)
    registered_at = ma.fields.AwareDateTime()
    ledger_index = Integer(
        metadata={"description": "index of the organisation.registered log entry"}
    )


@blp.route("")
@authenticated()
@blp.doc(security=BEARER)
@blp.response(200, OrganisationSchema(many=True))
@blp.alt_response(401, response="UNAUTHORIZED")
def list_organisations() -> Any:
    return organisations.list_organisations(ledger())
