"""``consent-ledger monitor`` against real servers (gunicorn), as an auditor's cron job runs it:
a subprocess with no instance and no token, reading only the public checkpoint and tiles.

Two instances share one signing key and one origin but not their history (the demo's entries
carry their own ids and times): what a log operator showing different people different logs
would serve. The monitor, holding the state of one, is shown the other.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.ledger.checkpoint import CheckpointSigner, CheckpointVerifier
from tests.nhs import valid_nhs_numbers
from tests.server.conftest import CLI, Server, _run

pytestmark = pytest.mark.server


def _monitor(url: str, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CONSENT_LEDGER_INSTANCE_PATH"}
    return subprocess.run(
        [CLI, "monitor", url, "--state", str(state), *args],
        env=env,
        cwd=state.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _write(srv: Server, instance: Path, count: int, start: int) -> None:
    token = next(
        t["token"]
        for t in json.loads((instance / "demo-tokens.json").read_text())
        if t["role"] == "case_system" and t["organisation"] == "tt-leeds"
    )
    with requests.Session() as http:
        for nhs in valid_nhs_numbers(count, start=start):
            resp = http.post(
                srv.url + "/v1/consents",
                headers={"Authorization": f"Bearer {token}"},
                json={
                    "subject": {"nhs_number": nhs},
                    "purpose": "referral",
                    "recipients": ["ea-tt-leeds"],
                    "data_categories": ["identity", "service_status"],
                    "form": "verbal",
                },
                timeout=10,
            )
            assert resp.status_code == 201, resp.text


def _size(srv: Server) -> int:
    return int(requests.get(srv.url + "/log/checkpoint", timeout=10).text.split("\n")[1])


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[tuple[Path, Path, Server, Server]]:
    """Two served demo instances with one signing key and origin, and different histories."""
    one, two = tmp_path / "one", tmp_path / "two"
    _run(one, "init")
    _run(one, "demo")
    two.mkdir(mode=0o700)
    shutil.copy(one / "signing-key.pem", two / "signing-key.pem")
    _run(two, "init")
    _run(two, "demo")
    first = Server(one, workers=2)
    try:
        second = Server(two, workers=2)
        try:
            yield one, two, first, second
        finally:
            second.stop()
    finally:
        first.stop()


def test_the_monitor_follows_one_log_and_catches_the_other_history(
    twins: tuple[Path, Path, Server, Server], tmp_path: Path
) -> None:
    one, two, srv1, srv2 = twins
    vkey = requests.get(srv1.url + "/v1/log/key", timeout=10).text.split()[0]
    assert requests.get(srv2.url + "/v1/log/key", timeout=10).text.split()[0] == vkey
    watch = tmp_path / "auditor"
    watch.mkdir()
    state = watch / "state.json"

    # First run: the key got out of band; every entry checked.
    size = _size(srv1)
    done = _monitor(srv1.url, state, "--key", vkey)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ok: {srv1.url} size {size} root ")
    assert f"{size} new entries checked" in done.stdout
    assert done.stderr == ""
    early = watch / "early.json"
    shutil.copy(state, early)

    # The other instance, same size or not, signs another tree under the same key.
    shown = watch / "shown.json"
    shutil.copy(early, shown)
    caught = _monitor(srv2.url, shown)
    assert caught.returncode == 3, caught.stderr
    assert caught.stderr.startswith(f"SPLIT VIEW: {srv2.url}: split view")

    # Writes in between, past a tile boundary: the second run checks only the new entries.
    _write(srv1, one, 200, start=943_476_700)
    grown = _size(srv1)
    assert size < 256 < grown
    again = _monitor(srv1.url, state)
    assert again.returncode == 0, again.stderr
    assert f"size {grown} root" in again.stdout
    assert f"{grown - size} new entries checked" in again.stdout
    saved = json.loads(state.read_text())
    assert saved["size"] == grown
    CheckpointVerifier.from_verifier_key(vkey).verify(saved["checkpoint"])

    # Shown the other instance, still smaller than what was seen: a rollback.
    late = watch / "late.json"
    shutil.copy(state, late)
    rolled = _monitor(srv2.url, late)
    assert rolled.returncode == 4, rolled.stderr
    assert f"ROLLBACK: {srv2.url}: rollback: the log's signed tree went from {grown} to" in (
        rolled.stderr
    )
    assert json.loads(late.read_text()) == saved  # a failed run leaves the state as it was

    # The other instance grows past the saved size: its tiles do not extend what was seen.
    _write(srv2, two, 250, start=943_576_700)
    assert _size(srv2) > size
    split = _monitor(srv2.url, early)
    assert split.returncode == 3, split.stderr
    assert "does not extend the tree of" in split.stderr
    evidence = (watch / "early.json.evidence").read_text()
    first_note = json.loads(early.read_text())["checkpoint"]
    served_note = requests.get(srv2.url + "/log/checkpoint", timeout=10).text
    for note in (first_note, served_note):
        assert note in evidence
        assert note in split.stderr


def test_a_first_run_needs_the_log_key_and_a_dead_log_fails(
    demo_instance: Path, tmp_path: Path
) -> None:
    srv = Server(demo_instance, workers=1)
    state = tmp_path / "state.json"
    try:
        missing = _monitor(srv.url, state)
        assert missing.returncode == 2
        assert "needs the log's verifier key (--key)" in missing.stderr
        # A key under the log's own name that is not the log's: nothing it signed is trusted.
        impostor = CheckpointSigner("localhost/consent-ledger", Ed25519PrivateKey.generate())
        refused = _monitor(srv.url, state, "--key", impostor.verifier_key())
        assert refused.returncode == 1
        assert "signed by no key this monitor trusts" in refused.stderr
        assert not state.exists()
        vkey = requests.get(srv.url + "/v1/log/key", timeout=10).text.split()[0]
        assert _monitor(srv.url, state, "--key", vkey).returncode == 0
    finally:
        srv.stop()
    saved = state.read_text()
    gone = _monitor(srv.url, state)
    assert gone.returncode == 1
    assert "could not connect" in gone.stderr
    assert state.read_text() == saved


def test_the_monitor_follows_a_signing_key_rotation_and_then_refuses_the_old_key(
    tmp_path: Path,
) -> None:
    instance = tmp_path / "log"
    _run(instance, "init")
    _run(instance, "demo")
    old_key = (instance / "signing-key.pem").read_bytes()
    srv = Server(instance, workers=2)
    try:
        vkey = requests.get(srv.url + "/v1/log/key", timeout=10).text.split()[0]
        watch = tmp_path / "auditor"
        watch.mkdir()
        state = watch / "state.json"
        assert _monitor(srv.url, state, "--key", vkey).returncode == 0

        # The operator rotates (the service keeps serving): the next checkpoint is signed by
        # both keys and the log announces the new one; the monitor adopts it from there.
        _run(instance, "keys", "rotate-signing")
        _write(srv, instance, 2, start=943_476_900)
        adopted = _monitor(srv.url, state)
        assert adopted.returncode == 0, adopted.stderr
        new_vkey = requests.get(srv.url + "/v1/log/key", timeout=10).text.split()[0]
        assert new_vkey != vkey
        assert new_vkey in adopted.stderr  # said where cron mails it

        # The overlap ends; checkpoints carry the new key's line alone, and still pass.
        _run(instance, "keys", "rotate-signing", "--retire-old")
        _write(srv, instance, 2, start=943_477_000)
        after = _monitor(srv.url, state)
        assert after.returncode == 0, after.stderr
        # The retirement is read from the log's own log.key_retired entry, and said.
        assert f"log key {vkey} retired by the log" in after.stderr
        saved = json.loads(state.read_text())
        assert list(saved["retired_keys"]) == [vkey]
        assert saved["log_keys"] == [vkey, new_vkey]
        note = requests.get(srv.url + "/log/checkpoint", timeout=10).text
        assert note.count("\n— ") == 1
    finally:
        srv.stop()

    # Someone who kept the retired private key signs a checkpoint of another history: the
    # monitor, which read that key's retirement in the log, refuses it.
    stolen = instance.parent / "stolen"
    stolen.mkdir(mode=0o700)
    (stolen / "signing-key.pem").write_bytes(old_key)
    _run(stolen, "init")
    _run(stolen, "demo")
    forged_size = 300  # past the honest log's size: only the signature can refuse it
    forger = Server(stolen, workers=1)
    try:
        _write(forger, stolen, forged_size, start=943_478_000)
        refused = _monitor(forger.url, state)
        assert refused.returncode == 1, refused.stderr
        assert "signed by no key this monitor trusts" in refused.stderr
        assert f"log key {vkey} was retired by the log" in refused.stderr
    finally:
        forger.stop()
