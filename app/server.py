"""Running under gunicorn: one application per worker, the log checked as each worker starts."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from app import create_app, get_ledger
from app.logs import redact_path
from app.services import keys

logger = logging.getLogger("consent_ledger.server")


def create_checked_app() -> Flask:
    """The WSGI app, with the start-up log check run now so a bad log is logged at once."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    os.umask(0o077)  # the SQLite WAL and shared-memory files are for the service's user alone
    app = create_app()
    ledger = get_ledger(app)
    for warning in keys.permission_warnings(ledger.settings):
        logger.warning("%s", warning)
    ledger.health()
    return app


class RedactingLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger with the access-log path cleaned: a patient link's token is a secret,
    so ``/p/<token>/...`` is logged as ``/p/[link]/...``. The query string and headers (which
    may carry an NHS number or a bearer token) are never in the format at all."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        atoms["U"] = redact_path(str(atoms.get("U") or ""))
        for key in ("r", "q", "f"):
            atoms[key] = "-"
        return atoms


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
            "accesslog": "-",
            # The access log records the path and status only: no query strings, which could
            # carry identifiers once subject look-ups exist, and never the Authorization header.
            "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms',
            "graceful_timeout": 10,
            "logger_class": RedactingLogger,
        }
    ).run()
