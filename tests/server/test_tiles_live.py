"""The public tiles over real HTTP (gunicorn), read by tlog-scales, a tlog-tiles client the
project did not write: its library over HTTP, and its ``tlog-tiles`` command as an auditor would
run it (README, "Tiles"). No token anywhere."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tlog_scales.backend import HttpBackend
from tlog_scales.reader import TilesReader
from tlog_scales.signing import Vkey
from tlog_scales.tiles import leaf_hash

from tests.server.conftest import Server
from tests.support import rfc9162_verifier as rfc

pytestmark = pytest.mark.server
TLOG_TILES = str(Path(sys.executable).with_name("tlog-tiles"))


@pytest.fixture
def server(demo_instance: Path) -> Iterator[Server]:
    srv = Server(demo_instance, workers=2)
    try:
        yield srv
    finally:
        srv.stop()


def test_an_auditor_reads_the_demo_log_from_its_tiles(server: Server) -> None:
    vkey = requests.get(server.url + "/v1/log/key", timeout=10).text.strip()
    note = requests.get(server.url + "/log/checkpoint", timeout=10).text
    signed = rfc.verify_checkpoint(note, vkey)

    reader = TilesReader(HttpBackend(server.url + "/log"))
    checkpoint = reader.get_checkpoint()
    checkpoint.verify(Vkey.from_string(vkey))  # the client's own signature check
    assert (checkpoint.size, checkpoint.root_hash) == (signed.size, signed.root_hash)
    assert reader.calculate_root_hash() == signed.root_hash

    # The command an auditor runs: the last leaf, checked against the checkpoint's root.
    leaf = subprocess.run(
        [TLOG_TILES, "get-leaf", "--check", server.url + "/log", "-1"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    assert leaf == reader.get_entry(signed.size - 1)
    # And a c2sp.org/tlog-proof for the first leaf, which verifies under the same root.
    proof = subprocess.run(
        [TLOG_TILES, "gen-proof", server.url + "/log", "0"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    header, index, *rest = proof.split("\n")
    assert (header, index) == ("c2sp.org/tlog-proof@v1", "index 0")
    hashes = [base64.b64decode(line) for line in rest[: rest.index("")]]
    rfc.verify_inclusion(leaf_hash(reader.get_entry(0)), 0, signed.size, hashes, signed.root_hash)
