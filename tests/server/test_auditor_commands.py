"""README's "An auditor's whole check, in five commands" runs as written: against a served demo
whose checkpoints an outside witness (aics-witness) cosigns in the background, with the outside
checkers (aics-tlog, tlog-scales) on the PATH, in an empty folder, with no token."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from app.ledger.cosignature import CosignatureVerifier
from app.ledger.errors import VerificationError
from tests.server.conftest import Server
from tests.support.aics_witness import AicsWitness, _tool

pytestmark = [pytest.mark.server, pytest.mark.witness]

REPO = Path(__file__).resolve().parents[2]
SECTION = "#### An auditor's whole check, in five commands"


def _commands() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```sh\n(.*?)```", section, re.S)[0]
    return [line for line in block.splitlines() if line.strip()]


def _cosigned(url: str, witness: CosignatureVerifier) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            witness.verify(requests.get(url + "/log/checkpoint", timeout=10).text)
            return
        except VerificationError:
            assert time.monotonic() < deadline, "no cosignature within a minute"
            time.sleep(0.5)


def test_the_auditors_five_commands_work_as_pasted(
    demo_instance: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = _commands()
    assert len(commands) == 5
    witness = AicsWitness(tmp_path / "witness")
    listing = tmp_path / "witnesses.txt"
    listing.write_text(f"{witness.vkey} {witness.url}\n")
    monkeypatch.setenv("CONSENT_LEDGER_WITNESSES", str(listing))
    srv = Server(demo_instance, workers=2)
    try:
        log_key = requests.get(srv.url + "/v1/log/key", timeout=10).text.strip()
        witness.add_log(log_key.split("+")[0], log_key)
        witness.start()
        _cosigned(srv.url, CosignatureVerifier.from_verifier_key(witness.vkey))

        # A receipt someone kept: entry 3's, as the API hands it to any client.
        token = next(
            t["token"]
            for t in json.loads((demo_instance / "demo-tokens.json").read_text())
            if t["role"] == "auditor"
        )
        auth = {"Authorization": f"Bearer {token}"}
        auditor = tmp_path / "auditor"
        auditor.mkdir()
        receipt = requests.get(srv.url + "/v1/log/proof/receipt?index=3", headers=auth, timeout=10)
        (auditor / "receipt.tlog-proof").write_text(receipt.text)
        fingerprint = requests.get(srv.url + "/v1/log/entries/3", headers=auth, timeout=10)

        outside = Path(_tool("aics-tlog")).parent
        ours = Path(sys.executable).parent  # consent-ledger and tlog-tiles
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENT_LEDGER_")}
        env |= {
            "PATH": f"{ours}:{outside}:{os.environ['PATH']}",
            "URL": srv.url,
            "WITNESS_KEY": witness.vkey,
            "FINGERPRINT": fingerprint.json()["leaf_hash"],
        }
        outputs = []
        for command in commands:
            ran = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command],
                cwd=auditor,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert ran.returncode == 0, f"{command}\n{ran.stdout}{ran.stderr}"
            outputs.append(ran.stdout)
        assert (auditor / "log.vkey").read_text().strip() == log_key
        assert outputs[1].startswith(f"ok: {srv.url} size ")
        assert "receipt checks: entry 3 is in the log" in outputs[4]
    finally:
        srv.stop()
        witness.stop()
