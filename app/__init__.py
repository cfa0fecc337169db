"""consent-ledger: a consent and information-governance ledger.

``create_app`` is the application factory (flask ``examples/tutorial`` style): settings come
from ``CONSENT_LEDGER_*`` variables, and the ``config`` mapping tests pass in overrides them
(``INSTANCE_PATH``, ``DATABASE_URL``, ``LOG_ORIGIN``) or sets Flask configuration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from app.config import ENV_PREFIX, settings_from_env
from app.limits import MAX_BODY, MeasuredChunkedBody
from app.services.container import Ledger

__all__ = ["create_app", "get_ledger"]

SETTING_KEYS = frozenset(
    {
        "INSTANCE_PATH",
        "DATABASE_URL",
        "LOG_ORIGIN",
        "PUBLIC_URL",
        "SECURE_COOKIES",
        "WRITE_RATE_LIMIT",
        "DECISION_RATE_LIMIT",
        "RATE_LIMIT_STORAGE",
        "WITNESSES",
        "WITNESS_QUORUM",
    }
)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    config = dict(config or {})
    environ = dict(os.environ)
    environ.update({ENV_PREFIX + k: str(v) for k, v in config.items() if k in SETTING_KEYS})
    instance = environ.get(ENV_PREFIX + "INSTANCE_PATH")
    app = Flask(
        __name__,
        instance_path=str(Path(instance).resolve()) if instance else None,
        instance_relative_config=True,
    )
    settings = settings_from_env(Path(app.instance_path), environ)

    app.config.from_mapping(MAX_CONTENT_LENGTH=MAX_BODY)  # see app.limits
    app.config.update({k: v for k, v in config.items() if k not in SETTING_KEYS})
    app.extensions["consent_ledger"] = Ledger(settings)

    from app import api, cli, headers, logs, web

    logs.init_app(app)  # first, so even a refused request gets an id and a log line
    headers.init_app(app)
    api.init_app(app)
    web.init_app(app)
    cli.init_app(app)
    app.wsgi_app = MeasuredChunkedBody(app.wsgi_app, app.config["MAX_CONTENT_LENGTH"])  # type: ignore[method-assign]
    return app


def get_ledger(app: Flask) -> Ledger:
    ledger = app.extensions["consent_ledger"]
    assert isinstance(ledger, Ledger)
    return ledger
