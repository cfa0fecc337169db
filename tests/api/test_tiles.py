"""The public log as C2SP tlog-tiles, read by a tiles client the project did not write.

``tlog-scales``' ``TilesReader`` fetches the checkpoint, hash tiles and entry bundles through the
Flask test client, without a token, and recomputes the root; the checkpoint is verified with
the independent verifier in ``tests/support``. Nothing here uses the service's Merkle code.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from tlog_scales.reader import TilesReader

from app.services.container import Ledger
from app.services.log import log_store
from app.services.log.log_store import make_entry
from tests.helpers import BOTH, bearer, recorded_statements, tamper
from tests.support import rfc9162_verifier as rfc

NOW = datetime(2026, 1, 1, tzinfo=UTC)
FOREVER = "public, max-age=31536000, immutable"


class FlaskBackend:
    """tlog-scales' ``TilesBackend``: ``get(*path)`` gives the resource's bytes or None. Sends
    no token; records what was asked and answered."""

    def __init__(self, client: FlaskClient, prefix: str = "/log") -> None:
        self.client = client
        self.prefix = prefix
        self.fetched: dict[str, int] = {}

    def get(self, *path: str) -> bytes | None:
        url = "/".join((self.prefix, *path))
        response = self.client.get(url)
        self.fetched[url] = response.status_code
        return response.data if response.status_code == 200 else None


def grow(ledger: Ledger, size: int) -> None:
    """Append ``bulk`` entries up to ``size`` leaves, in one transaction (one checkpoint)."""
    with ledger.db.write() as session:
        have = ledger.log_store.size(session)
        entries = [make_entry("bulk", NOW, {"n": i}) for i in range(have, size)]
        ledger.log_store.append(session, entries, NOW)


SIZES = [1, 255, 256, 257, 511, 512, 600]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_an_outside_tiles_client_gets_the_signed_root(client: FlaskClient, ledger: Ledger) -> None:
    vkey = client.get("/v1/log/key").get_data(as_text=True).strip()
    for size in SIZES:
        grow(ledger, size)
        backend = FlaskBackend(client)
        reader = TilesReader(backend)
        assert reader.get_checkpoint().size == size
        note = backend.client.get("/log/checkpoint").get_data(as_text=True)
        signed = rfc.verify_checkpoint(note, vkey)
        assert signed.size == size
        assert note == client.get("/v1/log/checkpoint").get_data(as_text=True)
        assert reader.calculate_root_hash() == signed.root_hash, size
        for index in sorted({0, size // 2, size - 1}):
            leaf = reader.get_entry(index)
            proof = reader.get_inclusion_proof(index, size)
            rfc.verify_inclusion(
                rfc.leaf_hash(leaf), index, size, proof.node_hashes, signed.root_hash
            )
        assert all(status == 200 for status in backend.fetched.values()), backend.fetched


@pytest.mark.parametrize(
    ("size", "paths"),
    [
        # Ends inside a level-0 tile: its partial tile, and the level-1 tile over the full one.
        (600, {"/log/tile/0/002.p/88", "/log/tile/1/000.p/2"}),
        # Ends on a tile boundary: no partial level-0 tile exists, the level-1 one has width 2.
        (512, {"/log/tile/1/000.p/2"}),
        (256, {"/log/tile/1/000.p/1"}),
    ],
)
def test_partial_tiles_are_what_the_client_reads(
    client: FlaskClient, ledger: Ledger, size: int, paths: set[str]
) -> None:
    grow(ledger, size)
    backend = FlaskBackend(client)
    reader = TilesReader(backend)
    reader.get_checkpoint()
    reader.calculate_root_hash()
    assert {p for p, status in backend.fetched.items() if status == 200} >= paths


def test_a_leaf_in_a_bundle_is_the_logged_leaf(
    client: FlaskClient, ledger: Ledger, make_token: Callable[..., str]
) -> None:
    grow(ledger, 300)
    bundle = client.get("/log/tile/entries/001.p/44")
    assert bundle.status_code == 200
    assert bundle.content_type == "application/octet-stream"
    token = make_token("tt-leeds", "auditor")
    stored = client.get("/v1/log/entries/257", headers=bearer(token)).get_json()
    leaf = base64.b64decode(stored["leaf"])
    first = int.from_bytes(bundle.data[:2], "big")
    second = bundle.data[2 + first :]
    assert int.from_bytes(second[:2], "big") == len(leaf)
    assert second[2 : 2 + len(leaf)] == leaf


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_tile_is_one_query(client: FlaskClient, ledger: Ledger) -> None:
    grow(ledger, 600)
    client.get("/log/checkpoint")  # the service checks its log once, on the first request
    for path in ("/log/tile/0/001", "/log/tile/entries/002.p/88"):
        with recorded_statements(ledger) as seen:
            assert client.get(path).status_code == 200
        tile_reads = [s for s in seen if "log_nodes" in s or "log_entries" in s]
        assert len(tile_reads) == 1, seen


@pytest.mark.parametrize(
    "path",
    [
        "/log/tile/00/000",
        "/log/tile/64/000",
        "/log/tile/-1/000",
        "/log/tile/data/000",
        "/log/tile/0/1",
        "/log/tile/0/0000",
        "/log/tile/0/x000",
        "/log/tile/0/001/000",
        "/log/tile/0/x000/001",
        "/log/tile/0/00a",
        "/log/tile/0/%D9%A0%D9%A0%D9%A0",
        "/log/tile/0/000.p",
        "/log/tile/0/000.p/0",
        "/log/tile/0/000.p/256",
        "/log/tile/0/000.p/01",
        "/log/tile/0/000.p/5/6",
        "/log/tile/entries/x000",
        "/log/tile/entries/000.p/256",
    ],
)
def test_malformed_tile_paths_are_400_problems(
    client: FlaskClient, ledger: Ledger, path: str
) -> None:
    grow(ledger, 300)
    response = client.get(path)
    assert response.status_code == 400, (path, response.data)
    assert response.content_type == "application/problem+json"
    body = response.get_json()
    assert body["type"] == "/problems/invalid-argument"
    assert body["errors"][0]["location"] == "path"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "path",
    [
        "/log/tile/0/001",  # full tile 1 needs 512 leaves
        "/log/tile/0/001.p/45",  # 256 + 45 > 300
        "/log/tile/0/002.p/1",
        "/log/tile/1/000",
        "/log/tile/1/000.p/2",  # only one full level-0 tile under it
        "/log/tile/2/000.p/1",
        "/log/tile/63/x999/999",
        "/log/tile/entries/001",
        "/log/tile/entries/001.p/45",
        "/log/tile/entries/x001/000",
        "/log/tile/0/" + "x999/" * 300 + "999",  # well formed, far beyond any log
    ],
)
def test_tiles_beyond_the_log_are_404_problems(
    client: FlaskClient, ledger: Ledger, path: str
) -> None:
    grow(ledger, 300)
    response = client.get(path)
    assert response.status_code == 404, (path, response.data)
    assert response.content_type == "application/problem+json"
    assert response.headers["Cache-Control"] == "no-store"


def test_the_empty_log_serves_no_checkpoint_and_no_tile(client: FlaskClient) -> None:
    for path in ("/log/checkpoint", "/log/tile/0/000.p/1", "/log/tile/entries/000.p/1"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.content_type == "application/problem+json"


@pytest.mark.parametrize(
    ("path", "content_type", "cache_control"),
    [
        ("/log/checkpoint", "text/plain; charset=utf-8", "no-cache"),
        ("/log/tile/0/000", "application/octet-stream", FOREVER),
        ("/log/tile/entries/000", "application/octet-stream", FOREVER),
        ("/log/tile/0/001.p/44", "application/octet-stream", "public, max-age=60"),
        ("/log/tile/1/000.p/1", "application/octet-stream", "public, max-age=60"),
        ("/log/tile/entries/001.p/44", "application/octet-stream", "public, max-age=60"),
    ],
)
def test_public_headers(
    client: FlaskClient, ledger: Ledger, path: str, content_type: str, cache_control: str
) -> None:
    grow(ledger, 300)
    response = client.get(path)  # no Authorization header
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Cache-Control"] == cache_control
    # Public data, fetched without credentials: a browser page on any site may read it.
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # The API itself keeps its headers.
    api = client.get("/v1/log/checkpoint")
    assert api.headers["Cache-Control"] == "no-store"
    assert "Access-Control-Allow-Origin" not in api.headers


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_bundle_holding_a_clear_personal_leaf_is_refused(
    client: FlaskClient, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    grow(ledger, 255)
    # A log begun before format 2: an entry about a person was a leaf in the clear.
    monkeypatch.setattr(log_store, "COMMITTED_TYPES", frozenset())
    with ledger.db.write() as session:
        personal = {"subject_ref": "s" * 40, "nhs_number": "9434765919"}
        ledger.log_store.append(session, [make_entry("consent.granted", NOW, personal)], NOW)
    monkeypatch.undo()
    grow(ledger, 300)

    refused = client.get("/log/tile/entries/000")
    assert refused.status_code == 403
    assert refused.content_type == "application/problem+json"
    body = refused.get_json()
    assert body["type"] == "/problems/bundle-withheld"
    assert "255" in body["detail"]
    assert b"9434765919" not in refused.data
    assert refused.headers["Cache-Control"] == "no-store"
    # Bundles without one, and every hash tile, are still served; the root still checks out.
    assert client.get("/log/tile/entries/000.p/255").status_code == 200
    assert client.get("/log/tile/entries/001.p/44").status_code == 200
    assert client.get("/log/tile/0/000").status_code == 200
    reader = TilesReader(FlaskBackend(client))
    reader.get_checkpoint()
    note = client.get("/log/checkpoint").get_data(as_text=True)
    vkey = client.get("/v1/log/key").get_data(as_text=True).strip()
    assert reader.calculate_root_hash() == rfc.verify_checkpoint(note, vkey).root_hash


def test_a_bundle_holding_a_damaged_leaf_is_refused(client: FlaskClient, ledger: Ledger) -> None:
    grow(ledger, 10)
    tamper(ledger, "UPDATE log_entries SET leaf = :leaf WHERE idx = 3", leaf=b'{"data": 1')
    refused = client.get("/log/tile/entries/000.p/10")
    assert refused.status_code == 403
    body = refused.get_json()
    assert body["type"] == "/problems/bundle-withheld"
    assert "entry 3 cannot be read" in body["detail"]
    assert client.get("/log/tile/entries/000.p/3").status_code == 200
