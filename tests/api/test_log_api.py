"""The log endpoints, checked by a verifier written from RFC 9162 and C2SP (tests/support), not
by the project's own ledger code."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from tests.helpers import BOTH, bearer
from tests.support import rfc9162_verifier as rfc


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_an_independent_verifier_accepts_everything_the_api_serves(
    client: FlaskClient, orgs: list[str], make_token: Callable[..., str]
) -> None:
    auth = bearer(make_token("tt-leeds", "auditor"))
    vkey = client.get("/v1/log/key").text.strip()
    note = client.get("/v1/log/checkpoint").text
    cp = rfc.verify_checkpoint(note, vkey)
    assert cp.origin == "localhost/consent-ledger"
    assert cp.size == len(orgs) + 1  # the organisations, then the auditor client

    leaves = []
    for i in range(cp.size):
        body = client.get(f"/v1/log/entries/{i}", headers=auth).get_json()
        leaf = base64.b64decode(body["leaf"])
        assert rfc.leaf_hash(leaf).hex() == body["leaf_hash"]
        leaves.append(leaf)
    assert rfc.root_from_leaves(leaves) == cp.root_hash
    assert leaves[0].startswith(b'{"data":{')  # canonical JSON: keys sorted

    for size in range(1, cp.size + 1):
        root = rfc.root_from_leaves(leaves[:size])
        for index in range(size):
            p = client.get(
                f"/v1/log/proof/inclusion?index={index}&size={size}", headers=auth
            ).get_json()
            assert p["root_hash"] == root.hex()
            rfc.verify_inclusion(
                bytes.fromhex(p["leaf_hash"]),
                index,
                size,
                [bytes.fromhex(h) for h in p["hashes"]],
                root,
            )
        for old in range(1, size + 1):
            c = client.get(
                f"/v1/log/proof/consistency?from={old}&to={size}", headers=auth
            ).get_json()
            rfc.verify_consistency(
                old,
                size,
                [bytes.fromhex(h) for h in c["hashes"]],
                bytes.fromhex(c["from_root"]),
                root,
            )
            assert c["from_root"] == rfc.root_from_leaves(leaves[:old]).hex()

    # size defaults to the newest checkpoint's
    p = client.get("/v1/log/proof/inclusion?index=0", headers=auth).get_json()
    assert p["size"] == cp.size
    assert p["root_hash"] == cp.root_hash.hex()


def test_a_proof_for_a_tampered_leaf_does_not_verify(
    client: FlaskClient, orgs: list[str], make_token: Callable[..., str]
) -> None:
    auth = bearer(make_token())
    cp = rfc.verify_checkpoint(
        client.get("/v1/log/checkpoint").text, client.get("/v1/log/key").text.strip()
    )
    p = client.get("/v1/log/proof/inclusion?index=2", headers=auth).get_json()
    forged = rfc.leaf_hash(b'{"data":{"forged":true}}')
    with pytest.raises(rfc.Invalid):
        rfc.verify_inclusion(
            forged, 2, cp.size, [bytes.fromhex(h) for h in p["hashes"]], cp.root_hash
        )


@pytest.mark.parametrize(
    ("url", "field", "detail"),
    [
        ("/v1/log/proof/inclusion?index=99", "index", "99 is outside 0..9"),
        ("/v1/log/proof/inclusion?index=0&size=11", "size", "11 is outside 1..10"),
        ("/v1/log/proof/inclusion?index=5&size=3", "index", "5 is outside 0..2"),
        ("/v1/log/proof/inclusion?index=-1", "index", "greater than or equal to 0"),
        ("/v1/log/proof/inclusion?index=abc", "index", "whole number written in the digits 0-9"),
        ("/v1/log/proof/inclusion", "index", "Missing data for required field"),
        ("/v1/log/proof/consistency?from=7&to=3", "from", "7 is outside 1..3"),
        ("/v1/log/proof/consistency?from=1&to=12", "to", "12 is outside 1..10"),
        ("/v1/log/proof/consistency?from=0&to=3", "from", "greater than or equal to 1"),
    ],
)
def test_bad_proof_arguments_are_400_problems_naming_the_argument(
    client: FlaskClient,
    orgs: list[str],
    make_token: Callable[..., str],
    url: str,
    field: str,
    detail: str,
) -> None:
    resp = client.get(url, headers=bearer(make_token()))
    assert resp.status_code == 400
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["type"] == "/problems/invalid-argument"
    assert body["status"] == 400
    assert [e["field"] for e in body["errors"]] == [field]
    assert detail in body["errors"][0]["message"]


def test_an_entry_beyond_the_log_is_404(
    client: FlaskClient, orgs: list[str], make_token: Callable[..., str]
) -> None:
    resp = client.get("/v1/log/entries/10", headers=bearer(make_token()))
    assert resp.status_code == 404
    assert resp.get_json()["detail"] == "there is no entry 10: the log holds entries 0 to 9"


def test_an_empty_log_has_no_checkpoint(client: FlaskClient) -> None:
    resp = client.get("/v1/log/checkpoint")
    assert resp.status_code == 404
    assert resp.mimetype == "application/problem+json"
    assert client.get("/healthz").get_json() == {"status": "ok", "log_size": 0}


def test_checkpoint_and_key_are_plain_text_and_public(client: FlaskClient, orgs: list[str]) -> None:
    key = client.get("/v1/log/key")
    assert key.status_code == 200
    assert key.mimetype == "text/plain"
    name, key_id, data = key.text.strip().split("+", 2)
    assert name == "localhost/consent-ledger"
    assert len(key_id) == 8
    assert base64.b64decode(data)[0] == 1
    cp = client.get("/v1/log/checkpoint")
    assert cp.mimetype == "text/plain"
    assert cp.text.startswith("localhost/consent-ledger\n9\n")
