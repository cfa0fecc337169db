"""``consent-ledger check-receipt``: a receipt kept as a file is checked offline, with the key
alone, and every way it can be wrong is named."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient, FlaskCliRunner

from app.ledger.checkpoint import CheckpointSigner
from tests.helpers import bearer
from tests.server.conftest import CLI


@pytest.fixture
def receipt(
    client: FlaskClient, orgs: list[str], make_token: Callable[..., str], tmp_path: Path
) -> tuple[Path, str, str]:
    """A receipt file for entry 2, the log's verifier key and the entry's fingerprint."""
    auth = bearer(make_token("tt-leeds", "auditor"))
    path = tmp_path / "receipt-2.tlog-proof"
    path.write_text(client.get("/v1/log/proof/receipt?index=2", headers=auth).text)
    fingerprint = client.get("/v1/log/entries/2", headers=auth).json["leaf_hash"]
    return path, client.get("/v1/log/key").text.strip(), fingerprint


def test_a_good_receipt_checks_with_the_key_alone(
    runner: FlaskCliRunner, receipt: tuple[Path, str, str]
) -> None:
    path, vkey, fingerprint = receipt
    result = runner.invoke(
        args=["check-receipt", str(path), "--key", vkey, "--fingerprint", fingerprint]
    )
    assert result.exit_code == 0, result.output
    assert "receipt checks: entry 2 is in the log" in result.output


OTHER_KEY = CheckpointSigner("localhost/consent-ledger", Ed25519PrivateKey.generate())


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("another key", "not signed by the log's key"),
        ("another entry's fingerprint", "does not lead from this fingerprint"),
        ("index moved past the tree", "is not in the signed tree"),
        ("index moved inside the tree", "does not lead from this fingerprint"),
        ("not a proof", "the first line must be c2sp.org/tlog-proof@v1"),
        ("fingerprint not hex", "--fingerprint must be 64 lowercase hex digits"),
        ("key malformed", "--key is not a verifier key"),
    ],
)
def test_a_wrong_receipt_fails_saying_why(
    runner: FlaskCliRunner, receipt: tuple[Path, str, str], change: str, says: str
) -> None:
    path, vkey, fingerprint = receipt
    text = path.read_text()
    if change == "another key":
        vkey = OTHER_KEY.verifier_key()
    elif change == "another entry's fingerprint":
        fingerprint = "00" * 32
    elif change == "index moved past the tree":
        path.write_text(text.replace("index 2\n", "index 9999\n"))
    elif change == "index moved inside the tree":
        path.write_text(text.replace("index 2\n", "index 3\n"))
    elif change == "not a proof":
        path.write_text("hello\n\n" + text)
    elif change == "fingerprint not hex":
        fingerprint = "xyz"
    elif change == "key malformed":
        vkey = vkey + "x"
    result = runner.invoke(
        args=["check-receipt", str(path), "--key", vkey, "--fingerprint", fingerprint]
    )
    assert result.exit_code == 1
    assert says in result.output


def test_any_of_several_keys_may_have_signed_it(
    runner: FlaskCliRunner, receipt: tuple[Path, str, str]
) -> None:
    path, vkey, fingerprint = receipt
    args = ["--key", OTHER_KEY.verifier_key(), "--key", vkey, "--fingerprint", fingerprint]
    result = runner.invoke(args=["check-receipt", str(path), *args])
    assert result.exit_code == 0, result.output


def test_it_needs_no_instance_and_reads_standard_input(
    receipt: tuple[Path, str, str], tmp_path: Path
) -> None:
    path, vkey, fingerprint = receipt
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENT_LEDGER_")}
    done = subprocess.run(
        [CLI, "check-receipt", "-", "--key", vkey, "--fingerprint", fingerprint],
        input=path.read_text(),
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "receipt checks" in done.stdout
    assert list(elsewhere.iterdir()) == []  # nothing created where it ran


def test_a_forged_line_beside_the_good_signature_rejects_the_receipt(
    runner: FlaskCliRunner, receipt: tuple[Path, str, str]
) -> None:
    path, vkey, fingerprint = receipt
    # A line under another key of the log's name, over other text: it does not verify. Given
    # that key too, the receipt is refused, though the log's own line is good.
    forged = OTHER_KEY.sign_note(b"localhost/consent-ledger\n1\n" + b"A" * 43 + b"=\n")
    path.write_text(path.read_text() + forged.rsplit("\n\n", 1)[1])
    args = ["--key", vkey, "--key", OTHER_KEY.verifier_key(), "--fingerprint", fingerprint]
    result = runner.invoke(args=["check-receipt", str(path), *args])
    assert result.exit_code == 1
    assert "not signed by the log's key" in result.output
    alone = runner.invoke(
        args=["check-receipt", str(path), "--key", vkey, "--fingerprint", fingerprint]
    )
    assert alone.exit_code == 0, alone.output  # a stranger's line is ignored, as it should be
