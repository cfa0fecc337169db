"""Every /v1 endpoint but the checkpoint and key needs a valid token; roles are enforced."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import bearer

PUBLIC = {"/v1/log/checkpoint", "/v1/log/key"}


def _v1_get_urls(app: Flask) -> list[str]:
    urls = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/v1") and "GET" in (rule.methods or ()):
            urls.append(rule.rule.replace("<int:index>", "0"))
    return sorted(urls)


def test_every_v1_endpoint_but_checkpoint_and_key_needs_a_token(
    app: Flask, client: FlaskClient, orgs: list[str]
) -> None:
    urls = _v1_get_urls(app)
    assert "/v1/organisations" in urls
    for url in urls:
        resp = client.get(url)
        if url in PUBLIC:
            assert resp.status_code == 200, url
            continue
        assert resp.status_code == 401, url
        assert resp.mimetype == "application/problem+json"
        assert resp.get_json()["type"] == "/problems/unauthenticated"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer cl_0000000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "Bearer not-a-token",
        "bearer cl_00",
    ],
)
def test_bad_tokens_are_refused_alike(client: FlaskClient, orgs: list[str], header: str) -> None:
    resp = client.get("/v1/organisations", headers={"Authorization": header})
    assert resp.status_code == 401
    assert resp.get_json()["detail"] == "a valid bearer token is required"


def test_a_token_with_its_secret_altered_is_refused(
    client: FlaskClient, make_token: Callable[..., str]
) -> None:
    token = make_token()
    assert client.get("/v1/organisations", headers=bearer(token)).status_code == 200
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    resp = client.get("/v1/organisations", headers=bearer(forged))
    assert resp.status_code == 401
    assert token not in resp.text


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("auditor", 200),
        ("ig_lead", 200),
        ("case_system", 403),
        ("patient_portal", 403),
        ("admin", 403),
    ],
)
def test_log_entries_are_for_auditors_and_ig_leads(
    client: FlaskClient, make_token: Callable[..., str], role: str, status: int
) -> None:
    resp = client.get("/v1/log/entries/0", headers=bearer(make_token("tt-leeds", role)))
    assert resp.status_code == status
    if status == 403:
        assert resp.get_json()["type"] == "/problems/forbidden"


@pytest.mark.parametrize("role", ["case_system", "ig_lead", "patient_portal", "auditor", "admin"])
def test_any_client_may_list_organisations_and_fetch_proofs(
    client: FlaskClient, make_token: Callable[..., str], role: str
) -> None:
    auth = bearer(make_token("whp-leeds", role))
    orgs = client.get("/v1/organisations", headers=auth)
    assert orgs.status_code == 200
    by_id = {o["id"]: o for o in orgs.get_json()}
    assert by_id["tt-leeds"]["kind"] == "health"
    assert by_id["tt-leeds"]["ods_code"] == "X9T01"
    assert client.get("/v1/log/proof/inclusion?index=0", headers=auth).status_code == 200


def test_every_v1_write_needs_a_token(app: Flask, client: FlaskClient, orgs: list[str]) -> None:
    posts = sorted(
        rule.rule.replace("<string:consent_id>", "cns_x").replace("<string:objection_id>", "obj_x")
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/v1") and "POST" in (rule.methods or ())
    )
    assert "/v1/consents" in posts
    assert "/v1/subjects/access-links" in posts
    for url in posts:
        resp = client.post(url, json={})
        assert resp.status_code == 401, url
        assert resp.get_json()["type"] == "/problems/unauthenticated"
