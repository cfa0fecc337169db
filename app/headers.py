"""Security headers on every response, pages and API alike.

Pages (``/ig``, ``/p``) are Jinja templates with one stylesheet and no JavaScript, so their CSP
allows styles and images from the service and nothing else; every other response is data, so
its CSP allows nothing at all. No response may be framed, sniffed as another type, cached, or
followed by a Referer (a patient link's token is in its URL).
"""

from __future__ import annotations

from flask import Flask, Response, request

PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
DATA_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_PAGES = ("/ig", "/p/")

COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
HSTS = "max-age=31536000; includeSubDomains"


def _secure(response: Response) -> Response:
    page = request.path.startswith(_PAGES)
    response.headers.setdefault("Content-Security-Policy", PAGE_CSP if page else DATA_CSP)
    for name, value in COMMON_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        # Consents and disclosures are personal data: no shared or browser cache keeps them.
        response.headers["Cache-Control"] = "no-store"
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def init_app(app: Flask) -> None:
    app.after_request(_secure)
