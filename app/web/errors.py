"""Errors on pages are pages: never JSON, never a trace, and never anything about anyone."""

from __future__ import annotations

from flask import Response, render_template, request

ERROR_PAGES = {
    400: (
        "Please try again",
        "That page had expired or was not filled in as expected, so "
        "nothing was changed. Go back, reload the page and try again.",
    ),
    404: ("Page not found", "There is no page at this address."),
    405: ("Page not found", "There is no page at this address."),
    503: (
        "Service unavailable",
        "The service cannot show this page right now and has "
        "changed nothing. Please try again later.",
    ),
    500: ("Something went wrong", "Nothing was changed. Please try again later."),
}


def is_page(path: str) -> bool:
    return path == "/ig" or path.startswith(("/ig/", "/p/"))


def error_page(status: int) -> Response:
    """Pages answer errors with a page, never JSON or a trace, and say nothing about anyone."""
    title, message = ERROR_PAGES.get(status, ERROR_PAGES[500])
    if request.path.startswith("/p/") and status == 404:
        return Response(render_template("patient/invalid_link.html"), 404, mimetype="text/html")
    resp = Response(
        render_template("error.html", title=title, message=message),
        status if status in ERROR_PAGES else 500,
        mimetype="text/html",
    )
    return resp
