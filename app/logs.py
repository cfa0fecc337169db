"""What may appear in the service's own logs, and the one structured line each request leaves.

A request log line is JSON with a request id, the method, the path (a patient link's token and
any NHS number replaced: :mod:`app.redaction`), the status, the time taken and the client id
once authenticated. Never the query string (it may carry an NHS number), a header (it may carry
a bearer token or a session cookie) or a body. The same id is sent back as ``X-Request-Id`` so
a caller's report can be matched to the line.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time

from flask import Flask, Response, g, has_request_context, request

from app.redaction import redact, redact_json

_PATIENT_LINK = re.compile(r"^/p/[^/]+")
REQUEST_ID_HEADER = "X-Request-Id"

access_logger = logging.getLogger("consent_ledger.access")


def redact_path(path: str) -> str:
    """A patient link's path is its secret token: log ``/p/[link]/...`` instead; and a path id
    that is an NHS number is ``[redacted]``."""
    return redact(_PATIENT_LINK.sub("/p/[link]", path))


def request_id() -> str:
    """This request's id; ``-`` outside a request."""
    return str(g.get("request_id", "-"))


def new_request_id() -> str:
    # Our own id, never the caller's: a caller-chosen id could carry an identifier into the log.
    return secrets.token_hex(8)


def log_request(
    rid: str,
    method: str | None,
    path: str | None,
    status: int,
    started: float | None,
    client_id: str | None = None,
) -> None:
    """The one line a request leaves, whoever answered it: the application, or the server
    refusing it before the application ran (then the method or path may be unknown)."""
    line = {
        "request_id": rid,
        "method": method,
        "path": redact_path(path) if path is not None else None,
        "status": status,
        "ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
        "client_id": client_id,
    }
    access_logger.info("%s %s %s", method, line["path"], status, extra={"fields": line})


def _start() -> None:
    g.request_id = new_request_id()
    g.request_started = time.perf_counter()


def _finish(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = request_id()
    principal = g.get("principal")
    log_request(
        request_id(),
        request.method,
        request.path,
        response.status_code,
        g.get("request_started"),
        getattr(principal, "client_id", None),
    )
    return response


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for the server's log: a request line's fields, or a message;
    inside a request, its id, so an error's trace can be matched to the request line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        else:
            out["message"] = record.getMessage()
            if has_request_context():
                out["request_id"] = request_id()
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        # Messages and traces can quote a request (a path, a value): no NHS number leaves.
        # The request and client ids are the service's own, and must match X-Request-Id.
        ours = {k: out.pop(k) for k in ("request_id", "client_id") if k in out}
        return json.dumps({**redact_json(out), **ours}, separators=(",", ":"))


def configure_server_logging() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
