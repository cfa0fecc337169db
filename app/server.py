"""Running under gunicorn: one application per worker, the log checked as each worker starts,
and the requests gunicorn refuses itself answered as the application answers everything else."""

from __future__ import annotations

import http
import json
import logging
import os
import time
import urllib.parse
from typing import Any

from flask import Flask
from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.http import errors as http_errors
from gunicorn.workers.sync import SyncWorker

from app import create_app, get_ledger
from app.errors import PROBLEM_CONTENT_TYPE, problem_body
from app.headers import security_headers
from app.limits import MAX_HEADER_FIELD_SIZE, MAX_HEADER_FIELDS, MAX_REQUEST_LINE
from app.logs import REQUEST_ID_HEADER, configure_server_logging, log_request, new_request_id
from app.redaction import redact_json
from app.services.log import keys

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


def _refusal(exc: BaseException) -> tuple[int, str, str]:
    """(status, problem slug, detail) for an error gunicorn met before or around the app.

    The detail never quotes the request: gunicorn's own messages do (the request line, a
    header), and a request can carry an NHS number or a token."""
    if isinstance(exc, http_errors.InvalidResponseHeader | http_errors.InvalidResponseHeaderName):
        return 500, "internal-error", "the service failed; nothing was recorded"
    if isinstance(exc, http_errors.LimitRequestLine):
        return 414, "uri-too-long", f"the request line is longer than {MAX_REQUEST_LINE} bytes"
    if isinstance(exc, http_errors.LimitRequestHeaders):
        return (
            431,
            "header-fields-too-large",
            f"the request has more than {MAX_HEADER_FIELDS} header fields, or one larger than "
            f"{MAX_HEADER_FIELD_SIZE} bytes",
        )
    if isinstance(exc, http_errors.UnsupportedTransferCoding):
        return 501, "malformed-request", "the only transfer coding accepted is chunked"
    if isinstance(exc, http_errors.ForbiddenProxyRequest):
        return 403, "forbidden", "requests through this proxy are not accepted"
    if isinstance(exc, http_errors.ConfigurationProblem) or not isinstance(
        exc, http_errors.ParseException
    ):
        return 500, "internal-error", "the service failed; nothing was recorded"
    if isinstance(
        exc,
        http_errors.InvalidChunkSize
        | http_errors.ChunkMissingTerminator
        | http_errors.InvalidChunkExtension,
    ):
        return 400, "malformed-request", "the chunked body framing is broken"
    return 400, "malformed-request", "the request is not valid HTTP/1.1"


class ProblemWorker(SyncWorker):  # type: ignore[misc]
    """gunicorn's sync worker, answering the requests it refuses itself (request line or
    headers too large, broken framing) with problem+json, the security headers and a request
    id, and one JSON log line: not gunicorn's HTML page and free-text warning."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, SystemExit):
            # gunicorn aborting a worker that overran its timeout (a client sending its body
            # slowly): no answer to make, and the worker must go. A buffering proxy in front
            # keeps slow clients away from sync workers (SECURITY.md).
            logger.warning("a request overran the worker timeout; the worker restarts")
            raise exc
        started = time.perf_counter()
        status, slug, detail = _refusal(exc)
        req = req or getattr(exc, "req", None)  # headers gunicorn refused belong to a request
        if status >= 500:
            logger.error("the server failed a request", exc_info=exc)
        rid = new_request_id()
        body = json.dumps(redact_json(problem_body(status, slug, detail))).encode()
        headers = {
            "Connection": "close",
            "Content-Type": PROBLEM_CONTENT_TYPE,
            "Content-Length": str(len(body)),
            REQUEST_ID_HEADER: rid,
            # The answer is data whatever the path was, so the data headers apply.
            **security_headers("", secure=bool(self.cfg.is_ssl)),
        }
        head = f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        # gunicorn's path is still percent-encoded: decode it as the application would, so the
        # log's redaction (NHS numbers, patient-link tokens) sees what the application sees.
        path = getattr(req, "path", None)
        path = None if path is None else urllib.parse.unquote(path, errors="replace")
        log_request(rid, getattr(req, "method", None), path, status, started)
        try:
            util.write_nonblock(client, head.encode("latin-1") + b"\r\n" + body)
        except OSError:
            logger.debug("the client left before its refusal was sent")


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
            # Requests gunicorn refuses before the application runs are answered like the
            # application's own refusals (ProblemWorker), within these stated limits.
            "worker_class": f"{__name__}.ProblemWorker",
            "limit_request_line": MAX_REQUEST_LINE,
            "limit_request_fields": MAX_HEADER_FIELDS,
            "limit_request_field_size": MAX_HEADER_FIELD_SIZE,
        }
    ).run()
