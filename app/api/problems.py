"""``GET /problems/<slug>``: each problem ``type`` URI resolves to its own explanation."""

from __future__ import annotations

from flask import Blueprint, Response

from app.errors import PROBLEM_TYPES, NotFound

bp = Blueprint("problems", __name__)


@bp.get("/problems/<slug>")
def problem(slug: str) -> Response:
    if slug not in PROBLEM_TYPES:
        raise NotFound(f"no problem type {slug!r}")
    title, description = PROBLEM_TYPES[slug]
    return Response(f"{title}\n\n{description}\n", mimetype="text/plain")
