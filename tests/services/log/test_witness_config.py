"""``CONSENT_LEDGER_WITNESSES`` and ``CONSENT_LEDGER_WITNESS_QUORUM``: a usable file gives its
witnesses; anything else refuses start-up naming the file, the line and why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.ledger.checkpoint import CheckpointSigner
from app.ledger.cosignature import CosignatureSigner
from app.services.log.witness_config import WitnessConfigError, load_policy

W1 = CosignatureSigner("witness.test/w1", Ed25519PrivateKey.generate()).verifier().verifier_key()
W2 = CosignatureSigner("witness.test/w2", Ed25519PrivateKey.generate()).verifier().verifier_key()
_W1_KEY = Ed25519PrivateKey.generate()
W1_AGAIN = CosignatureSigner("witness.test/alias", _W1_KEY).verifier().verifier_key()
W1_SAME_KEY = CosignatureSigner("witness.test/w1b", _W1_KEY).verifier().verifier_key()
# A log's note key (type 0x01), not a witness's cosignature key (0x04).
LOG_KEY = CheckpointSigner("log.test/x", Ed25519PrivateKey.generate()).verifier_key()

GOOD = f"""# our witnesses
{W1} http://127.0.0.1:7380

   # the second, behind a prefix
{W2}  https://witness.example/w2/
"""


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "witnesses.txt"
    path.write_text(text)
    return str(path)


def test_a_good_file_names_its_witnesses_and_the_quorum_defaults_to_all(tmp_path: Path) -> None:
    policy = load_policy(_file(tmp_path, GOOD), None)
    assert [(w.verifier.verifier_key(), w.add_checkpoint_url) for w in policy.witnesses] == [
        (W1, "http://127.0.0.1:7380/add-checkpoint"),
        (W2, "https://witness.example/w2/add-checkpoint"),
    ]
    assert policy.quorum == 2
    assert load_policy(_file(tmp_path, GOOD), "1").quorum == 1


def test_no_file_means_no_witnesses() -> None:
    policy = load_policy(None, None)
    assert not policy.configured
    assert policy.quorum == 0


BAD = [
    pytest.param(
        f"{W1}\n", None, "line 1: expected a witness verifier key and its URL", id="no-url"
    ),
    pytest.param(
        f"# one\n\n{W1} http://a.test extra\n", None, "line 3: expected", id="three-fields"
    ),
    pytest.param(
        f"{LOG_KEY} http://a.test\n", None, "line 1: not a witness verifier key", id="log-key"
    ),
    pytest.param(
        f"{W1[:-4]}AAA= http://a.test\n", None, "line 1: not a witness verifier key", id="bad-key"
    ),
    pytest.param(f"{W1} ftp://a.test\n", None, "line 1: the URL 'ftp://a.test'", id="ftp-url"),
    pytest.param(f"{W1} a.test/w1\n", None, "line 1: the URL 'a.test/w1'", id="no-scheme"),
    pytest.param(
        f"{W1} http://a.test\n{W1} http://b.test\n", None, "line 2: the witness", id="twice"
    ),
    pytest.param(
        f"{W1_SAME_KEY} http://a.test\n{W1_AGAIN} http://b.test\n",
        None,
        "line 2: the key of witness.test/alias",
        id="one-key-two-names",
    ),
    pytest.param(GOOD, "3", "QUORUM=3 cannot be met: 2 witnesses are configured", id="quorum-3"),
    pytest.param(GOOD, "0", "QUORUM='0' is not a whole number from 1", id="quorum-0"),
    pytest.param(GOOD, "two", "QUORUM='two' is not a whole number", id="quorum-word"),
]


@pytest.mark.parametrize(("text", "quorum", "message"), BAD)
def test_a_bad_configuration_is_refused_saying_where_and_why(
    tmp_path: Path, text: str, quorum: str | None, message: str
) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(WitnessConfigError) as caught:
        load_policy(path, quorum)
    assert message in str(caught.value)
    if "line" in message:
        assert f"CONSENT_LEDGER_WITNESSES file {path}, line" in str(caught.value)


@pytest.mark.parametrize(
    "url", ["https://user:s3cret@w.example/x?token=abc", "ftp://user:s3cret@w.example/x"]
)
def test_a_refused_witness_url_never_echoes_its_password(tmp_path: Path, url: str) -> None:
    with pytest.raises(WitnessConfigError) as caught:
        load_policy(_file(tmp_path, f"{W1} {url}\n"), None)
    assert "user name or password" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_quorum_without_witnesses_or_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WitnessConfigError, match="QUORUM=1 cannot be met: 0 witnesses"):
        load_policy(None, "1")
    with pytest.raises(WitnessConfigError, match=r"nowhere\.txt cannot be read"):
        load_policy(str(tmp_path / "nowhere.txt"), None)


def test_the_service_refuses_to_start_with_a_bad_file(tmp_path: Path) -> None:
    path = _file(tmp_path, f"{W1}\n")
    env = {
        **os.environ,
        "CONSENT_LEDGER_INSTANCE_PATH": str(tmp_path / "instance"),
        "CONSENT_LEDGER_WITNESSES": path,
    }
    cli = str(Path(sys.executable).with_name("consent-ledger"))
    done = subprocess.run(
        [cli, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"Error: CONSENT_LEDGER_WITNESSES file {path}, line 1: expected a witness verifier key "
        "and its URL prefix separated by a space, found 1 field"
    )
