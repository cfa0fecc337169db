"""Security headers on every response, and request log lines that carry an id but no secret."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.policy import Policy
from tests.helpers import bearer
from tests.nhs import valid_nhs_numbers

NHS = valid_nhs_numbers(1, start=943_476_800)[0]
_SAMPLE_ARGS = {"index": "0", "slug": "not-found", "token": "x" * 43, "filename": "style.css"}


def _every_get_url(app: Flask) -> list[str]:
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()):
            continue
        url = rule.rule
        for arg in rule.arguments:
            url = url.replace(f"<{arg}>", _SAMPLE_ARGS.get(arg, "x"))
            for conv in ("int", "string", "path"):
                url = url.replace(f"<{conv}:{arg}>", _SAMPLE_ARGS.get(arg, "x"))
        urls.append(url)
    return sorted(urls)


def test_every_response_denies_framing_sniffing_referrers_and_inline_script(
    app: Flask, client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    token = make_token("tt-leeds", "ig_lead")
    urls = _every_get_url(app)
    assert "/v1/log/checkpoint" in urls
    assert "/ig/dashboard" in urls
    for url in urls:
        for headers in ({}, bearer(token)):
            resp = client.get(url, headers=headers)
            assert resp.status_code < 500, url
            h = resp.headers
            assert h["X-Frame-Options"] == "DENY", url
            assert h["X-Content-Type-Options"] == "nosniff", url
            assert h["Referrer-Policy"] == "no-referrer", url
            csp = h["Content-Security-Policy"]
            assert "default-src 'none'" in csp, url
            assert "frame-ancestors 'none'" in csp, url
            assert "script-src" not in csp, url
            assert "unsafe-inline" not in csp, url
            # The public log (c2sp.org/tlog-tiles) says its own: tests/api/test_tiles.py.
            if not url.startswith(("/static/", "/log/")):
                assert h["Cache-Control"] == "no-store", url


def test_error_responses_carry_the_headers_too(client: FlaskClient) -> None:
    for resp in (client.get("/nowhere"), client.post("/v1/consents", data="{")):
        assert resp.status_code in (401, 404)
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Request-Id"]


def test_each_request_logs_one_line_with_its_id_and_no_token_nhs_number_or_body(
    client: FlaskClient,
    policy: Policy,
    make_token: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    tt = make_token("tt-leeds", "case_system")
    evidence = "ab" * 32
    caplog.set_level(logging.DEBUG)
    made = client.post(
        "/v1/consents",
        headers=bearer(tt),
        json={
            "subject": {"nhs_number": NHS},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity"],
            "form": "written",
            "evidence_sha256": evidence,
        },
    )
    assert made.status_code == 201
    read = client.get("/v1/consents", query_string={"nhs_number": NHS}, headers=bearer(tt))
    assert read.status_code == 200
    refused = client.get("/v1/consents", query_string={"nhs_number": NHS})
    assert refused.status_code == 401

    lines = [r for r in caplog.records if r.name == "consent_ledger.access"]
    fields = [r.fields for r in lines]  # type: ignore[attr-defined]
    assert [(f["method"], f["path"], f["status"]) for f in fields] == [
        ("POST", "/v1/consents", 201),
        ("GET", "/v1/consents", 200),
        ("GET", "/v1/consents", 401),
    ]
    ids = [f["request_id"] for f in fields]
    assert ids == [r.headers["X-Request-Id"] for r in (made, read, refused)]
    assert len(set(ids)) == 3
    assert fields[0]["client_id"] == tt.split(".")[0]
    assert fields[2]["client_id"] is None
    everything = caplog.text + "".join(str(f) for f in fields)
    for secret in (tt, tt.split(".")[1], NHS, evidence):
        assert secret not in everything


def test_a_caller_cannot_choose_the_request_id(client: FlaskClient) -> None:
    resp = client.get("/healthz", headers={"X-Request-Id": NHS})
    assert resp.headers["X-Request-Id"] != NHS
