"""The background submitter in the real server (gunicorn): an outside witness (aics-witness)
cosigns what the demo writes, while a second configured witness that never answers holds up
no write: submitting is never on a request's path."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.ledger.checkpoint import CheckpointVerifier
from app.ledger.cosignature import CosignatureSigner, CosignatureVerifier
from app.ledger.errors import VerificationError
from app.services.log.witnesses import SUBMIT_TIMEOUT_SECONDS
from tests.nhs import valid_nhs_numbers
from tests.server.conftest import Server
from tests.support.aics_witness import AicsWitness, free_port, outside_verify

pytestmark = [pytest.mark.server, pytest.mark.witness]
NHS = valid_nhs_numbers(1, start=943_476_700)


@pytest.fixture
def silent_witness() -> Iterator[str]:
    """The URL of a witness that accepts connections and never answers."""
    port = free_port()
    with socket.create_server(("127.0.0.1", port), backlog=16):
        yield f"http://127.0.0.1:{port}"


def test_the_server_gets_cosignatures_in_the_background_and_writes_never_wait(
    demo_instance: Path,
    tmp_path: Path,
    silent_witness: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    witness = AicsWitness(tmp_path / "witness")
    silent = CosignatureSigner("witness.test/silent", Ed25519PrivateKey.generate()).verifier()
    listing = tmp_path / "witnesses.txt"
    listing.write_text(f"{witness.vkey} {witness.url}\n{silent.verifier_key()} {silent_witness}\n")
    monkeypatch.setenv("CONSENT_LEDGER_WITNESSES", str(listing))
    monkeypatch.setenv("CONSENT_LEDGER_WITNESS_QUORUM", "1")
    tokens = {
        f"{t['role']}:{t['organisation']}": t["token"]
        for t in json.loads((demo_instance / "demo-tokens.json").read_text())
    }
    srv = Server(demo_instance, workers=2)
    try:
        log_key = requests.get(srv.url + "/v1/log/key", timeout=10).text.strip()
        origin = log_key.split("+")[0]
        witness.add_log(origin, log_key)
        witness.start()

        started = time.monotonic()
        answer = requests.post(
            srv.url + "/v1/consents",
            headers={"Authorization": f"Bearer {tokens['case_system:jcp-leeds-city']}"},
            json={
                "subject": {"nhs_number": NHS[0]},
                "purpose": "referral",
                "recipients": ["tt-leeds"],
                "data_categories": ["identity"],
                "form": "written",
                "evidence_sha256": "ab" * 32,
            },
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        # Sent to the silent witness on the request's path, it would have waited its timeout.
        assert time.monotonic() - started < SUBMIT_TIMEOUT_SECONDS
        size = answer.json()["ledger"]["index"] + 1

        theirs = CosignatureVerifier.from_verifier_key(witness.vkey)
        deadline = time.monotonic() + 60
        while True:
            note = requests.get(srv.url + "/log/checkpoint", timeout=10).text
            signed = CheckpointVerifier.from_verifier_key(log_key).verify(note)
            try:
                theirs.verify(note)
            except VerificationError:
                pass
            else:
                if signed.size >= size:
                    break
            assert time.monotonic() < deadline, "no cosignature within a minute"
            time.sleep(0.5)
        outside_verify(note, origin, log_key, [witness.vkey], 1)

        health = requests.get(srv.url + "/healthz", timeout=10).json()
        assert health["status"] == "ok"
        states = {w["name"]: w for w in health["witnesses"]["witnesses"]}
        assert states["witness.test/w1"]["cosigned_size"] >= size
        assert states["witness.test/silent"]["cosigned_size"] == 0
        assert states["witness.test/silent"]["last_error"] == (
            f"no answer within {SUBMIT_TIMEOUT_SECONDS:g} s"
        )
    finally:
        srv.stop()
        witness.stop()
    assert "Traceback" not in srv.log.read_text()
