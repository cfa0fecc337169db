"""Health, the start-up check, problem documents and the OpenAPI document."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.services.container import Ledger
from tests.helpers import BOTH, bearer, tamper


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_healthz_reports_the_log_size(client: FlaskClient, orgs: list[str]) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok", "log_size": 9}


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_tree_that_contradicts_its_checkpoint_is_not_served(
    ledger: Ledger,
    orgs: list[str],
    make_token: Callable[..., str],
    instance_path: object,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = make_token()
    tamper(ledger, "UPDATE log_nodes SET hash = :h WHERE level = 3 AND idx = 0", h=b"\0" * 32)
    with caplog.at_level(logging.ERROR, logger="consent_ledger.health"):
        app = create_app(
            {"TESTING": True, "INSTANCE_PATH": str(instance_path), "DATABASE_URL": database_url}
        )
        client = app.test_client()
        health = client.get("/healthz")
    assert health.status_code == 503
    assert health.get_json()["status"] == "unavailable"
    assert "refuses to serve" in caplog.text
    assert "differs from the newest signed checkpoint" in caplog.text
    resp = client.get("/v1/organisations", headers=bearer(token))
    assert resp.status_code == 503
    assert resp.get_json()["type"] == "/problems/log-unavailable"


def test_an_uninitialised_database_is_not_served(tmp_path: object) -> None:
    app = create_app({"TESTING": True, "INSTANCE_PATH": str(tmp_path)})
    resp = app.test_client().get("/healthz")
    assert resp.status_code == 503
    assert "consent-ledger init" in resp.get_json()["reason"]
    assert str(tmp_path) not in resp.text  # no paths for anonymous callers


def test_problem_types_resolve_to_their_explanation(client: FlaskClient) -> None:
    resp = client.get("/problems/invalid-argument")
    assert resp.status_code == 200
    assert "Invalid argument" in resp.text
    assert client.get("/problems/no-such-thing").status_code == 404


def test_unknown_paths_and_methods_are_problems(client: FlaskClient) -> None:
    resp = client.get("/v1/nothing-here")
    assert resp.status_code == 404
    assert resp.mimetype == "application/problem+json"
    resp = client.post("/v1/log/checkpoint")
    assert resp.status_code == 405
    assert resp.get_json()["type"] == "/problems/method-not-allowed"


def test_an_unexpected_error_is_a_500_problem_with_no_internals(app: Flask) -> None:
    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals")

    resp = app.test_client().get("/boom")
    assert resp.status_code == 500
    assert resp.get_json()["type"] == "/problems/internal-error"
    assert "secret" not in resp.text


def test_openapi_document_describes_the_running_api(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    paths = spec["paths"]
    for path in (
        "/healthz",
        "/v1/organisations",
        "/v1/log/checkpoint",
        "/v1/log/key",
        "/v1/log/entries/{index}",
        "/v1/log/proof/inclusion",
        "/v1/log/proof/consistency",
    ):
        assert path in paths, path
    params = {p["name"] for p in paths["/v1/log/proof/consistency"]["get"]["parameters"]}
    assert params == {"from", "to"}
    assert paths["/v1/organisations"]["get"]["security"] == [{"bearerAuth": []}]
    assert "security" not in paths["/v1/log/checkpoint"]["get"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
