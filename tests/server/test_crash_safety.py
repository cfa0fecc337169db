"""Crash safety of the real server: SIGKILL gunicorn (master and every worker) while several
clients are writing, restart it on the same instance, and check that nothing acknowledged was
lost or changed. Repeated over several kill/restart cycles on one instance.

After each kill, with the server down: the old port refuses connections (no worker survived to
hold the socket) and ``consent-ledger verify`` passes on the crashed files. After the restart:
every write acknowledged in any cycle so far is at the index its receipt named, with the same
leaf hash and consent id; every receipt's checkpoint verifies and the new checkpoint is
consistent with it (checked with the independent RFC 9162 verifier); and a new write succeeds
at the next dense index.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.nhs import valid_nhs_numbers
from tests.server.conftest import CLI, WORKER_THREADS, Server
from tests.support import rfc9162_verifier as rfc

pytestmark = pytest.mark.server

CYCLES = 3
SERVER_WORKERS = 3
WRITE_SECONDS = 1.5  # writing before each kill
# Per writer and cycle; the time bound normally ends a burst first. Two writers share a token,
# so a client makes at most 2 * 250 + 1 writes in one server's life: under the default per-client
# limit (600/minute) even if one worker takes them all, so a 429 here means a tighter default.
MAX_WRITES_PER_WRITER = 250
BURST_DEADLINE = 30.0  # hard bound on one burst, however the server behaves
# (token key in demo-tokens.json, recipient): each writer records as its own organisation.
WRITERS = (
    ("case_system:jcp-leeds-city", "tt-leeds"),
    ("case_system:tt-leeds", "ea-tt-leeds"),
    ("case_system:ea-tt-leeds", "tt-leeds"),
    ("case_system:jcp-leeds-city", "whp-leeds"),
)
NHS = valid_nhs_numbers(4 * len(WRITERS), start=999_100_000)


@dataclass(frozen=True)
class Ack:
    """An acknowledged write: a 201 whose receipt the client received in full."""

    cycle: int
    consent_id: str
    index: int
    leaf_hash: str
    checkpoint: str


@dataclass
class Burst:
    """What the writers of one cycle saw."""

    acks: list[Ack] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # any answer but a 201, any early error
    unanswered: int = 0  # requests that got no complete answer once the kill was under way
    in_flight_at_kill: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0


def _h(token: str) -> dict[str, str]:
    # A fresh connection per request, so writes spread over the workers.
    return {"Authorization": f"Bearer {token}", "Connection": "close"}


def _body(nhs: str, recipient: str, n: int) -> dict[str, object]:
    return {
        "subject": {"nhs_number": nhs},
        "purpose": "referral",
        "recipients": [recipient],
        "data_categories": ["identity", "service_status"],
        "form": "written",
        "evidence_sha256": f"{n:064x}",
    }


def _writer(
    url: str,
    token: str,
    recipient: str,
    numbers: list[str],
    cycle: int,
    burst: Burst,
    killing: threading.Event,
) -> None:
    deadline = time.monotonic() + BURST_DEADLINE
    try:
        for n in range(MAX_WRITES_PER_WRITER):
            if time.monotonic() > deadline:
                break
            with burst.lock:
                burst.in_flight += 1
            try:
                resp = requests.post(
                    url + "/v1/consents",
                    headers=_h(token),
                    json=_body(numbers[n % len(numbers)], recipient, n),
                    timeout=10,
                )
                body = resp.json() if resp.status_code == 201 else None
            except (requests.RequestException, ValueError) as exc:
                # Once the kill is under way a write without a full answer is not acknowledged;
                # the server is gone, so this writer is done. Before it, an error is a failure.
                with burst.lock:
                    if killing.is_set():
                        burst.unanswered += 1
                    else:
                        burst.unexpected.append(f"before the kill: {exc!r}")
                return
            finally:
                with burst.lock:
                    burst.in_flight -= 1
            if body is None:
                with burst.lock:
                    burst.unexpected.append(f"{resp.status_code}: {resp.text[:300]}")
                return
            receipt = body["ledger"]
            with burst.lock:
                burst.acks.append(
                    Ack(
                        cycle,
                        body["id"],
                        receipt["index"],
                        receipt["leaf_hash"],
                        receipt["checkpoint"],
                    )
                )
    except BaseException as exc:  # surfaced by the test
        with burst.lock:
            burst.unexpected.append(f"writer crashed: {exc!r}")


def _write_then_kill(srv: Server, tokens: dict[str, str], cycle: int) -> Burst:
    """Run the writers for WRITE_SECONDS, then SIGKILL the server's whole process group while
    they are still posting; return what they were told."""
    burst = Burst()
    killing = threading.Event()
    threads = [
        threading.Thread(
            target=_writer,
            args=(srv.url, tokens[key], recipient, NHS[4 * w : 4 * w + 4], cycle, burst, killing),
            daemon=True,
        )
        for w, (key, recipient) in enumerate(WRITERS)
    ]
    for t in threads:
        t.start()
    time.sleep(WRITE_SECONDS)
    # Kill while a write is on the wire if one can be caught within a second.
    catch_by = time.monotonic() + 1
    while burst.in_flight == 0 and time.monotonic() < catch_by:
        time.sleep(0.001)
    before = srv.processes()
    killing.set()
    with burst.lock:
        burst.in_flight_at_kill = burst.in_flight
    srv.kill()
    for t in threads:
        t.join(timeout=BURST_DEADLINE + 15)
    assert not any(t.is_alive() for t in threads), "a writer did not stop after the kill"
    # The master and every worker were running, and all of them are gone.
    assert srv.proc.pid in before, before
    assert len(before) >= SERVER_WORKERS + 1, before
    assert srv.processes() == []
    return burst


def _verify_cli(instance: Path) -> str:
    env = {**os.environ, "CONSENT_LEDGER_INSTANCE_PATH": str(instance)}
    done = subprocess.run(
        [CLI, "verify", "--quiet"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "log verified" in done.stdout
    return done.stdout


def _check_acknowledged(
    http: requests.Session, srv: Server, auditor: str, vkey: str, acks: list[Ack]
) -> rfc.Checkpoint:
    """Every acknowledged write is where its receipt says, and the newest checkpoint is
    consistent with every receipt's checkpoint. Returns the newest checkpoint."""
    health = http.get(srv.url + "/healthz", timeout=10)
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"
    newest = rfc.verify_checkpoint(http.get(srv.url + "/v1/log/checkpoint", timeout=10).text, vkey)
    assert newest.size == health.json()["log_size"]
    assert newest.size >= max(a.index for a in acks) + 1
    indexes = [a.index for a in acks]
    assert len(indexes) == len(set(indexes)), "one index was acknowledged for two writes"

    auth = {"Authorization": f"Bearer {auditor}"}
    for ack in acks:
        got = http.get(srv.url + f"/v1/log/entries/{ack.index}", headers=auth, timeout=10)
        assert got.status_code == 200, (ack, got.text)
        entry = got.json()
        assert entry["index"] == ack.index
        assert entry["leaf_hash"] == ack.leaf_hash, ack
        assert rfc.leaf_hash(base64.b64decode(entry["leaf"])).hex() == ack.leaf_hash, ack
        assert entry["entry"]["type"] == "consent.granted"
        assert entry["entry"]["data"]["consent_id"] == ack.consent_id

        # The receipt's checkpoint includes the entry: its own, or its batch's when writes
        # that were in flight together were signed together (thread workers).
        signed = rfc.verify_checkpoint(ack.checkpoint, vkey)
        assert signed.size > ack.index, ack
        inclusion = http.get(
            srv.url + "/v1/log/proof/inclusion",
            params={"index": ack.index, "size": signed.size},
            headers=auth,
            timeout=10,
        )
        assert inclusion.status_code == 200, (ack, inclusion.text)
        rfc.verify_inclusion(
            bytes.fromhex(ack.leaf_hash),
            ack.index,
            signed.size,
            [bytes.fromhex(h) for h in inclusion.json()["hashes"]],
            signed.root_hash,
        )
        proof = http.get(
            srv.url + "/v1/log/proof/consistency",
            params={"from": signed.size, "to": newest.size},
            headers=auth,
            timeout=10,
        )
        assert proof.status_code == 200, (ack, proof.text)
        rfc.verify_consistency(
            signed.size,
            newest.size,
            [bytes.fromhex(h) for h in proof.json()["hashes"]],
            signed.root_hash,
            newest.root_hash,
        )
    return newest


@pytest.mark.parametrize("threads", WORKER_THREADS)
def test_acknowledged_writes_survive_sigkill_of_the_whole_server(
    demo_instance: Path, tmp_path: Path, threads: int
) -> None:
    tokens = {
        f"{t['role']}:{t['organisation']}": t["token"]
        for t in json.loads((demo_instance / "demo-tokens.json").read_text())
    }
    auditor = tokens["auditor:tt-leeds"]
    acks: list[Ack] = []
    report: list[str] = []
    srv = Server(demo_instance, workers=SERVER_WORKERS, threads=threads, new_session=True)
    vkey = requests.get(srv.url + "/v1/log/key", timeout=10).text.strip()
    try:
        for cycle in range(CYCLES):
            burst = _write_then_kill(srv, tokens, cycle)
            assert burst.unexpected == [], (
                "writers were refused or failed before the kill (a 429 here means the rate "
                f"limit is too tight for this load): {burst.unexpected[:5]}"
            )
            assert burst.acks, f"cycle {cycle}: no write was acknowledged before the kill"
            acks.extend(burst.acks)
            report.append(
                f"cycle {cycle}: {len(burst.acks)} acknowledged, {burst.in_flight_at_kill} in "
                f"flight at the kill, {burst.unanswered} unanswered"
            )

            # Nothing answers on the old port: no worker survived holding the socket.
            with pytest.raises(requests.ConnectionError):
                requests.get(srv.url + "/healthz", timeout=5)
            # The files as the crash left them verify offline.
            _verify_cli(demo_instance)

            shutil.copyfile(srv.log, tmp_path / f"server-{cycle}.log")  # restarts truncate it
            srv = Server(demo_instance, workers=SERVER_WORKERS, threads=threads, new_session=True)
            with requests.Session() as http:
                assert http.get(srv.url + "/v1/log/key", timeout=10).text.strip() == vkey
                newest = _check_acknowledged(http, srv, auditor, vkey, acks)

                # The service serves: a new write lands at the next dense index and extends
                # the tree the restarted server started from.
                resp = http.post(
                    srv.url + "/v1/consents",
                    headers={"Authorization": f"Bearer {tokens['case_system:tt-leeds']}"},
                    json=_body(NHS[0], "ea-tt-leeds", 10_000 + cycle),
                    timeout=10,
                )
                assert resp.status_code == 201, resp.text
                receipt = resp.json()["ledger"]
                assert receipt["index"] == newest.size
                acks.append(
                    Ack(
                        cycle,
                        resp.json()["id"],
                        receipt["index"],
                        receipt["leaf_hash"],
                        receipt["checkpoint"],
                    )
                )
                _check_acknowledged(http, srv, auditor, vkey, acks[-1:])
        print("\n".join(report))  # shown with -s; the numbers behind the test
    finally:
        srv.kill()
    # Every acknowledged write of every cycle, once more, and the whole log offline.
    assert "log verified" in _verify_cli(demo_instance)
