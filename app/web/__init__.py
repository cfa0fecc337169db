"""Server-rendered pages for IG leads (``/ig``) and patients (``/p``).

Jinja templates, one stylesheet, no JavaScript and no external resources: every action is a
plain HTML form. ``app.headers`` sends them with a strict Content-Security-Policy, no caching
and no referrer (a patient link's token is in its URL and must not travel to another site).
"""

from __future__ import annotations

from flask import Flask

from app.web.charts import day_label
from app.web.common import ago, plural, when, when_local, words


def init_app(app: Flask) -> None:
    from app.web import ig, patient

    app.register_blueprint(ig.bp)
    app.register_blueprint(patient.bp)
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["when_local"] = when_local
    app.jinja_env.filters["words"] = words
    app.jinja_env.filters["ago"] = ago
    app.jinja_env.filters["day_label"] = day_label
    app.jinja_env.globals["plural"] = plural
    app.jinja_env.globals["PURPOSE_TEXT"] = patient.PURPOSE_TEXT
    app.jinja_env.globals["PURPOSE_OF_THE_PERSON"] = ig.PURPOSE_OF_THE_PERSON
    app.jinja_env.globals["CATEGORY_TEXT"] = patient.CATEGORY_TEXT
