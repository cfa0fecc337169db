"""The ceiling for this stack: a Flask app that only parses a decision's JSON body and answers.

Served by ``bench/bench_http.py`` with the same gunicorn settings as ``consent-ledger serve``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

app = Flask(__name__)


@app.post("/v1/decisions")
def decide() -> tuple[dict[str, Any], int]:
    body = request.get_json()
    return {"decision": "permit", "data_categories": body["data_categories"]}, 200
