"""``GET /healthz``: whether the log agrees with its newest signed checkpoint and with the
newest checkpoint this instance published, checked again on every call."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.common import Blueprint, ledger
from app.api.schemas import Integer

blp = Blueprint("health", __name__, description="Service health")


class HealthSchema(ma.Schema):
    status = ma.fields.String(metadata={"description": "ok, or unavailable"})
    log_size = Integer()
    reason = ma.fields.String(metadata={"description": "why the service refuses to serve"})


@blp.route("/healthz")
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="The log is unhealthy; nothing is served")
def healthz() -> Any:
    led = ledger()
    state = led.checked_health()
    if not state.ok:
        return {"status": "unavailable", "reason": state.public_reason}, 503
    return {"status": "ok", "log_size": state.log_size}
