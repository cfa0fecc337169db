"""``GET /healthz``: whether the log agrees with its newest signed checkpoint and with the
newest checkpoint this instance published, checked again on every call."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.common import Blueprint, ledger
from app.api.schemas import Integer
from app.services.log import witnesses

blp = Blueprint("health", __name__, description="Service health")


class WitnessSchema(ma.Schema):
    name = ma.fields.String(metadata={"description": "the witness's key name"})
    cosigned_size = Integer(metadata={"description": "the newest tree size it cosigned"})
    behind = Integer(metadata={"description": "entries our newest checkpoint holds beyond it"})
    lag_seconds = Integer(
        metadata={"description": "how long the oldest checkpoint it has not cosigned has waited"}
    )
    last_cosigned_at = ma.fields.DateTime(allow_none=True)
    last_error = ma.fields.String(
        allow_none=True, metadata={"description": "why its last attempt failed, if it did"}
    )


class WitnessesSchema(ma.Schema):
    quorum = Integer(metadata={"description": "cosignatures a checkpoint needs to be served"})
    witnessed_size = Integer(
        allow_none=True,
        metadata={"description": "the size of the newest checkpoint the quorum cosigned"},
    )
    served_size = Integer(
        metadata={
            "description": "the size of the checkpoint /log/checkpoint serves: the witnessed "
            "size, or one already served if that is newer"
        }
    )
    witnesses = ma.fields.List(ma.fields.Nested(WitnessSchema))


class HealthSchema(ma.Schema):
    status = ma.fields.String(metadata={"description": "ok, or unavailable"})
    log_size = Integer()
    reason = ma.fields.String(metadata={"description": "why the service refuses to serve"})
    witnesses = ma.fields.Nested(
        WitnessesSchema,
        metadata={
            "description": "with witnesses configured: where each stands (a witness behind or "
            "failing is shown here; the service stays ok)"
        },
    )


@blp.route("/healthz")
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="The log is unhealthy; nothing is served")
def healthz() -> Any:
    led = ledger()
    state = led.checked_health()
    if not state.ok:
        return {"status": "unavailable", "reason": state.public_reason}, 503
    body: dict[str, Any] = {"status": "ok", "log_size": state.log_size}
    # A witness behind or down degrades what is published, not what is served: still ok.
    board = witnesses.report(led)
    if board is not None:
        body["witnesses"] = board
    return body
