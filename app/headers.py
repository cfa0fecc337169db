"""Security headers on every response, pages and API alike.

Pages (``/ig``, ``/p``) are Jinja templates with one stylesheet and no JavaScript, so their CSP
allows styles and images from the service and nothing else; every other response is data, so
its CSP allows nothing at all. No response may be framed, sniffed as another type, cached, or
followed by a Referer (a patient link's token is in its URL).

The exception is the public log under ``/log/`` (c2sp.org/tlog-tiles): hashes, commitments and
signed checkpoints, nothing personal, served without a token. Any site may read them (CORS,
no credentials), and its successful responses keep the cache headers their views set (full
tiles are immutable); its errors are not cached.
"""

from __future__ import annotations

from flask import Flask, Response, request

PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
DATA_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_PAGES = ("/ig", "/p/")
PUBLIC_LOG = "/log/"

COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
HSTS = "max-age=31536000; includeSubDomains"


def security_headers(path: str, *, secure: bool) -> dict[str, str]:
    """The headers every response to ``path`` carries, whoever writes it: the application
    (below) or the server answering a request it refused before the application ran."""
    page = path.startswith(_PAGES)
    headers = {"Content-Security-Policy": PAGE_CSP if page else DATA_CSP, **COMMON_HEADERS}
    if not path.startswith("/static/"):
        # Consents and disclosures are personal data: no shared or browser cache keeps them.
        headers["Cache-Control"] = "no-store"
    if path.startswith(PUBLIC_LOG):
        headers["Access-Control-Allow-Origin"] = "*"
        headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    if secure:
        headers["Strict-Transport-Security"] = HSTS
    return headers


def _secure(response: Response) -> Response:
    # Only a public log view's own success may say how long it is cached.
    cached = request.path.startswith(PUBLIC_LOG) and response.status_code == 200
    for name, value in security_headers(request.path, secure=request.is_secure).items():
        keep_views = name == "Cache-Control" and cached and name in response.headers
        if name in {"Cache-Control", "Cross-Origin-Resource-Policy"} and not keep_views:
            response.headers[name] = value
        else:
            response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    app.after_request(_secure)
