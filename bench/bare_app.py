"""The ceiling for this stack: a Flask app that only parses a request's JSON body and answers.

Served by ``bench/bench_http.py`` and ``bench/bench_wrk.py`` with the same gunicorn settings as
``consent-ledger serve``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

app = Flask(__name__)


@app.post("/v1/decisions")
def decide() -> tuple[Any, int]:
    body = request.get_json()
    if isinstance(body, list):  # the list form: one answer per share asked about
        return [{"decision": "permit", "data_categories": b["data_categories"]} for b in body], 200
    return {"decision": "permit", "data_categories": body["data_categories"]}, 200


@app.post("/v1/consents")
def record() -> tuple[dict[str, Any], int]:
    body = request.get_json()
    return {"id": "c", "data_categories": body["data_categories"]}, 201
