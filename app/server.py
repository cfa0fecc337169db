"""Running under gunicorn: one application per worker, the log checked as each worker starts."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from app import create_app, get_ledger
from app.logs import configure_server_logging
from app.services import keys

logger = logging.getLogger("consent_ledger.server")


def create_checked_app() -> Flask:
    """The WSGI app, with the start-up log check run now so a bad log is logged at once."""
    configure_server_logging()
    os.umask(0o077)  # the SQLite WAL and shared-memory files are for the service's user alone
    app = create_app()
    ledger = get_ledger(app)
    for warning in keys.permission_warnings(ledger.settings):
        logger.warning("%s", warning)
    ledger.health()
    return app


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return create_checked_app()


def serve(host: str, port: int, workers: int) -> None:
    _Server(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            # No gunicorn access log: the application writes one JSON line per request
            # (app.logs), with its id and without query strings, headers or bodies.
            "accesslog": None,
            "graceful_timeout": 10,
            # gunicorn's runtime control socket (one fixed path per user, shared by every
            # server that user runs) is a management interface this service does not use.
            "control_socket_disable": True,
        }
    ).run()
