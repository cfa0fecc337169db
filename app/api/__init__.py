"""The HTTP API: one flask-smorest blueprint per resource; views parse, call one service, render."""

from __future__ import annotations

from flask import Flask
from flask_smorest.spec.plugins import integerconverter2paramschema
from werkzeug.routing import IntegerConverter

from app.api import (
    cds_hooks,
    consents,
    decisions,
    disclosures,
    fhir,
    health,
    log,
    notifications,
    objections,
    organisations,
    problems,
    schemas,
    subjects,
    tiles,
)
from app.api.common import BoundedJSONProvider, LedgerApi, install_error_handlers

API_TITLE = "consent-ledger"
API_VERSION = "v1"


class AsciiIntegerConverter(IntegerConverter):
    """``<int:...>`` in a path, in the digits 0-9 only: werkzeug's ``\\d+`` also matches other
    scripts' digits, which int() then reads as numbers (an Arabic-Indic zero as entry 0)."""

    regex = r"[0-9]{1,18}"


def init_app(app: Flask) -> None:
    app.json = BoundedJSONProvider(app)
    # Before any blueprint adds a rule: a rule binds its converter when it is added.
    app.url_map.converters["int"] = AsciiIntegerConverter
    app.config.setdefault("API_TITLE", API_TITLE)
    app.config.setdefault("API_VERSION", API_VERSION)
    app.config.setdefault("OPENAPI_VERSION", "3.1.0")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    api = LedgerApi(
        app,
        spec_kwargs={
            "info": {
                "description": (
                    "Records purpose-specific consents in a signed, append-only log (RFC 9162 "
                    "Merkle tree, C2SP checkpoints), decides whether a share is allowed, and "
                    "keeps the disclosure history. Errors are RFC 9457 problem+json."
                )
            }
        },
    )
    api.register_converter(AsciiIntegerConverter, integerconverter2paramschema)
    # A string, not a date-time: a plain date is accepted too.
    api.register_field(schemas.DayOrTimestamp, "string", None)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "description": "client token"}
    )
    install_error_handlers(app)
    api.register_blueprint(health.blp)
    api.register_blueprint(organisations.blp)
    api.register_blueprint(log.blp)
    api.register_blueprint(consents.blp)
    api.register_blueprint(objections.blp)
    api.register_blueprint(decisions.blp)
    api.register_blueprint(disclosures.blp)
    api.register_blueprint(subjects.blp)
    api.register_blueprint(notifications.blp)
    api.register_blueprint(cds_hooks.blp)
    app.register_blueprint(problems.bp)
    app.register_blueprint(tiles.bp)
    app.register_blueprint(fhir.bp)
    app.extensions["consent_ledger_api"] = api
