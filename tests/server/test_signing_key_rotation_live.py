"""A served demo keeps answering writes while the operator rotates the signing key with the CLI
(issue 16, item 4): running workers sign with both keys from the rotation on, and with the new
key alone once the old one is retired, without a restart; ``verify`` then passes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tlog_scales.signing import Vkey
from tlog_scales.tlog import Checkpoint

from tests.nhs import valid_nhs_numbers
from tests.server.conftest import Server, _run

pytestmark = pytest.mark.server
NHS = valid_nhs_numbers(21, start=943_485_000)


@pytest.fixture
def server(demo_instance: Path) -> Iterator[Server]:
    srv = Server(demo_instance, workers=3)
    try:
        yield srv
    finally:
        srv.stop()


def _token(instance: Path) -> str:
    for t in json.loads((instance / "demo-tokens.json").read_text()):
        if (t["role"], t["organisation"]) == ("case_system", "tt-leeds"):
            return str(t["token"])
    raise AssertionError("no demo token for tt-leeds")


def _signed_by(note: str, vkey: str) -> bool:
    try:
        Checkpoint.from_text(note).verify(Vkey.from_string(vkey))
    except Exception:
        return False
    return True


def _consent(url: str, token: str, i: int) -> str:
    resp = requests.post(
        url + "/v1/consents",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "subject": {"nhs_number": NHS[i]},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity"],
            "form": "verbal",
        },
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["ledger"]["checkpoint"])


def test_workers_follow_a_rotation_by_the_cli_without_a_restart(
    server: Server, demo_instance: Path
) -> None:
    token = _token(demo_instance)
    old = requests.get(server.url + "/v1/log/key", timeout=10).text.strip()
    for i in range(3):
        assert _signed_by(_consent(server.url, token, i), old)

    _run(demo_instance, "keys", "rotate-signing")
    new = requests.get(server.url + "/v1/log/key", timeout=10).text.split("\n")[0]
    assert new != old
    for i in range(3, 12):
        note = _consent(server.url, token, i)
        assert (_signed_by(note, old), _signed_by(note, new)) == (True, True), note

    _run(demo_instance, "keys", "rotate-signing", "--retire-old")
    for i in range(12, 21):
        note = _consent(server.url, token, i)
        assert (_signed_by(note, old), _signed_by(note, new)) == (False, True), note
    listed = requests.get(
        server.url + "/v1/log/key", headers={"Accept": "application/json"}, timeout=10
    ).json()["keys"]
    assert [(k["vkey"], k["status"]) for k in listed] == [(new, "active"), (old, "retired")]
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
    assert "log verified" in _run(demo_instance, "verify", "--quiet").stdout
