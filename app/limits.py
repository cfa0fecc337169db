"""How large a request may be, and a chunked body measured against it like any other.

Bodies larger than :data:`MAX_BODY` are refused (413) before parsing; the largest legitimate
request (a policy publication) is far below it. The request line and headers are bounded by
the server (``app.server``) before the application runs.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

MAX_BODY = 1024 * 1024
# gunicorn's own limits, stated rather than inherited so the problem types can name them.
MAX_REQUEST_LINE = 4094
MAX_HEADER_FIELDS = 100
MAX_HEADER_FIELD_SIZE = 8190


class MeasuredChunkedBody:
    """WSGI middleware: a chunked body (one with no Content-Length) is read here, up to one
    byte past the limit, and handed on with the Content-Length it turned out to have.

    werkzeug reads a body of unknown length only up to ``max_content_length`` and silently
    drops the rest (its ``LimitedStream`` stops at the limit), so a chunked body over 1 MiB
    was cut short and refused as bad JSON (400), or accepted if it was cut where the JSON
    still parsed. Given its length, werkzeug refuses it with 413 exactly as it refuses an
    oversized Content-Length body. A broken chunked framing raises here, before the
    application runs, so the server answers it as a malformed request (``app.server``).
    """

    def __init__(self, wsgi_app: WSGIApplication, limit: int) -> None:
        self.wsgi_app = wsgi_app
        self.limit = limit

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        encoding = str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
        if "chunked" in encoding and not environ.get("CONTENT_LENGTH"):
            body: Any = environ["wsgi.input"].read(self.limit + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            # What is handed on is no longer chunked (and werkzeug ignores a length beside it).
            del environ["HTTP_TRANSFER_ENCODING"]
        return self.wsgi_app(environ, start_response)
