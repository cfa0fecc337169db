"""Running under gunicorn: one application per worker, the log checked as each worker starts,
and the requests gunicorn refuses itself answered as the application answers everything else.

Two worker classes: ``ProblemWorker`` (gunicorn's sync worker, one request at a time per
process) and, with ``--threads`` above one, ``ProblemThreadWorker`` (gthread: a pool of
threads per process, connections kept alive), under which requests are in flight together
in one process.
"""

from __future__ import annotations

import http
import io
import json
import logging
import os
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.http import errors as http_errors
from gunicorn.http.parser import RequestParser
from gunicorn.workers.gthread import TConn, ThreadWorker
from gunicorn.workers.sync import SyncWorker

from app import create_app, get_ledger
from app.errors import error_body
from app.headers import security_headers
from app.limits import MAX_BODY, MAX_HEADER_FIELD_SIZE, MAX_HEADER_FIELDS, MAX_REQUEST_LINE
from app.logs import REQUEST_ID_HEADER, configure_server_logging, log_request, new_request_id
from app.redaction import redact_json
from app.services.log import keys, witnesses
from app.services.notifications import webhooks

logger = logging.getLogger("consent_ledger.server")

# Kept-alive connections (thread worker only; the sync worker closes after every answer).
# An idle connection is closed after KEEPALIVE_SECONDS: longer than a client's pause between
# requests of one burst, short enough that idle clients do not pile up. A worker holds at most
# WORKER_CONNECTIONS connections, busy or idle (each an open file: well under the usual limit
# of 1024 per process, beside the database's); past that it stops accepting and new
# connections wait in the listen backlog until one closes.
KEEPALIVE_SECONDS = 5
WORKER_CONNECTIONS = 256


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


class ClientStalled(http_errors.ParseException):  # type: ignore[misc]
    """The client sent part of a request, then nothing for the server's timeout."""


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
    if isinstance(exc, ClientStalled):
        return 408, "request-timeout", "the client stopped sending in the middle of the request"
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


class _ProblemAnswers:
    """What both worker classes share: the requests gunicorn refuses itself (request line or
    headers too large, broken framing) answered with problem+json, the security headers and a
    request id, and one JSON log line: not gunicorn's HTML page and free-text warning."""

    cfg: Any

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, SystemExit):
            # gunicorn aborting a sync worker that overran its timeout (a client sending its
            # body slowly): no answer to make, and the worker must go. A buffering proxy in
            # front keeps slow clients away from sync workers (SECURITY.md). The thread
            # worker answers a stalled client itself (_TimedConn).
            logger.warning("a request overran the worker timeout; the worker restarts")
            raise exc
        started = time.perf_counter()
        status, slug, detail = _refusal(exc)
        req = req or getattr(exc, "req", None)  # headers gunicorn refused belong to a request
        if status >= 500:
            logger.error("the server failed a request", exc_info=exc)
        rid = new_request_id()
        # gunicorn's path is still percent-encoded: decode it as the application would, so the
        # log's redaction (NHS numbers, patient-link tokens) sees what the application sees.
        path = getattr(req, "path", None)
        path = None if path is None else urllib.parse.unquote(path, errors="replace")
        # A FHIR path gets an OperationOutcome, as the application would answer it; a request
        # line too long to read has no path, so it gets problem+json whatever it asked for.
        problem, content_type = error_body(path, status, slug, detail)
        body = json.dumps(redact_json(problem)).encode()
        headers = {
            "Connection": "close",
            "Content-Type": content_type,
            "Content-Length": str(len(body)),
            REQUEST_ID_HEADER: rid,
            # The answer is data whatever the path was, so the data headers apply.
            **security_headers("", secure=bool(self.cfg.is_ssl)),
        }
        head = f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        log_request(rid, getattr(req, "method", None), path, status, started)
        try:
            util.write_nonblock(client, head.encode("latin-1") + b"\r\n" + body)
        except OSError:
            logger.debug("the client left before its refusal was sent")


class ProblemWorker(_ProblemAnswers, SyncWorker):  # type: ignore[misc]
    """gunicorn's sync worker (one request at a time per process) answering as the app does."""


class _StallAwareParser(RequestParser):  # type: ignore[misc]
    """gunicorn's HTTP/1.1 parser, with a read that times out while a request line or headers
    are half sent raised as :class:`ClientStalled`: gthread would log a timeout as a socket
    failure (a traceback) and close without an answer."""

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except TimeoutError as exc:
            raise ClientStalled() from exc


class _TimedConn(TConn):  # type: ignore[misc]
    """A gthread connection whose socket operations in a worker thread time out.

    gthread reads a request in a pool thread from a blocking socket with no timeout, and the
    worker's main thread keeps telling the arbiter it is alive, so gunicorn's worker timeout,
    which ends a sync worker's slow request, never fires: a client that stops half-way would
    hold a thread for ever. gthread calls ``init`` each time it hands the connection to a
    thread, after making the socket blocking, so each read and write from then on waits at
    most ``timeout`` seconds."""

    def init(self) -> None:
        super().init()
        if type(self.parser) is RequestParser:
            self.parser.__class__ = _StallAwareParser
        self.sock.settimeout(self.cfg.timeout)


class ProblemThreadWorker(_ProblemAnswers, ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker (a pool of threads per process, connections kept alive)
    answering as the app does, so that requests are in flight together in one process, and
    answering a client that stalls half-way through a request with 408 (``_TimedConn``)."""

    def enqueue_req(self, conn: TConn) -> None:
        # gthread makes its connections in accept(); every one passes here, on the main
        # thread, before a pool thread touches it.
        if type(conn) is TConn:
            conn.__class__ = _TimedConn
        super().enqueue_req(conn)


class BodyReadFirst:
    """WSGI middleware: a body with a Content-Length (up to the limit; werkzeug refuses a
    larger one unread) is read before the application runs, and a read that times out is
    raised as :class:`ClientStalled`, for the worker to answer 408. Read inside the
    application, a stalled body would be an unexpected error there (500); the chunked bodies
    that ``MeasuredChunkedBody`` reads ahead of the application are covered the same way."""

    def __init__(self, wsgi_app: Any, limit: int) -> None:
        self.wsgi_app = wsgi_app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # gunicorn refuses a malformed Content-Length before this
        try:
            if 0 < length <= self.limit:
                environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length))
            return self.wsgi_app(environ, start_response)
        except TimeoutError as exc:
            raise ClientStalled() from exc


WORKER_CLASSES = {"sync": "ProblemWorker", "gthread": "ProblemThreadWorker"}


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any], load: Callable[[], Any]) -> None:
        self.options = options
        self._load = load
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._load()


def served_app() -> Flask:
    app = create_checked_app()
    app.wsgi_app = BodyReadFirst(app.wsgi_app, MAX_BODY)  # type: ignore[method-assign]
    # Every worker starts a deliverer; a lock file lets one of them send at a time, and another
    # take over when that worker exits or dies (app.services.notifications.webhooks).
    webhooks.start_in_background(get_ledger(app))
    # Likewise the witness submitter (when witnesses are configured), behind its own lock.
    witnesses.start_in_background(get_ledger(app))
    return app


def gunicorn_options(
    host: str, port: int, workers: int, threads: int, timeout: int, worker_class: str
) -> dict[str, Any]:
    return {
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
        "worker_class": f"{__name__}.{WORKER_CLASSES[worker_class]}",
        "threads": threads,
        "timeout": timeout,
        "keepalive": KEEPALIVE_SECONDS,
        "worker_connections": WORKER_CONNECTIONS,
        "limit_request_line": MAX_REQUEST_LINE,
        "limit_request_fields": MAX_HEADER_FIELDS,
        "limit_request_field_size": MAX_HEADER_FIELD_SIZE,
        "worker_exit": _report_batches,
    }


def _report_batches(_server: Any, worker: Any) -> None:
    """One line per worker as it exits: how its writes formed batches and how long it held
    the log head (the figures a deployment tunes threads by; bench_wrk prints them)."""
    extensions = getattr(getattr(worker, "wsgi", None), "extensions", {})
    ledger = extensions.get("consent_ledger")
    if ledger is not None and ledger.sequencer.stats.batches:
        logger.info("worker %d wrote %s", os.getpid(), ledger.sequencer.stats.line())


def run(options: dict[str, Any], load: Callable[[], Any]) -> None:
    """Serve the WSGI app ``load`` makes in each worker, under gunicorn with ``options``
    (``bench/serve.py`` serves the benchmark's bare Flask app so, with the same options)."""
    _Server(options, load).run()


def serve(host: str, port: int, workers: int, threads: int = 1, timeout: int = 30) -> None:
    """``consent-ledger serve``: sync workers with one thread each, gthread with more."""
    worker_class = "gthread" if threads > 1 else "sync"
    run(gunicorn_options(host, port, workers, threads, timeout, worker_class), served_app)
