"""Server-rendered pages for IG leads (``/ig``) and patients (``/p``).

Jinja templates, one stylesheet, no JavaScript and no external resources: every action is a
plain HTML form. Pages are sent with a strict Content-Security-Policy, no caching, and no
referrer (a patient link's token is in its URL and must not travel to another site).
"""

from __future__ import annotations

from flask import Flask, Response, request

from app.web.common import when

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _secure_pages(response: Response) -> Response:
    if request.path.startswith(("/ig", "/p/")):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    from app.web import ig, patient

    app.register_blueprint(ig.bp)
    app.register_blueprint(patient.bp)
    app.after_request(_secure_pages)
    app.jinja_env.filters["when"] = when
    app.jinja_env.globals["PURPOSE_TEXT"] = patient.PURPOSE_TEXT
    app.jinja_env.globals["CATEGORY_TEXT"] = patient.CATEGORY_TEXT
