"""Signing-key rotation (issue 16, item 4): ``consent-ledger keys rotate-signing`` adds a new
Ed25519 key under the same origin, every checkpoint is signed by both keys until the operator
ends the overlap with ``--retire-old``, ``GET /v1/log/key`` lists every key with the checkpoints
it signed, and ``verify`` accepts history under a listed key whose period covers it and nothing
else. Signatures are checked by tlog-scales, a signed-note verifier the project did not write."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select
from tlog_scales.signing import Vkey
from tlog_scales.tlog import Checkpoint as OutsideCheckpoint

from app import create_app, get_ledger
from app.ledger.checkpoint import Checkpoint, CheckpointSigner, load_private_key_pem
from app.models import LogCheckpoint
from app.services.container import Ledger
from app.services.log import keys
from tests.helpers import BOTH, bearer, ig_sign_in, logged_entries, tamper
from tests.nhs import valid_nhs_numbers

ORIGIN = "localhost/consent-ledger"


def _ok(runner: FlaskCliRunner, *args: str) -> str:
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _keys(client: FlaskClient) -> list[dict[str, Any]]:
    resp = client.get("/v1/log/key", headers={"Accept": "application/json"})
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    return resp.get_json()["keys"]  # type: ignore[no-any-return]


def _signature_lines(note: str) -> list[str]:
    return note.split("\n\n", 1)[1].splitlines()


def _verifies(note: str, vkey: str) -> bool:
    """tlog-scales' own check of one key's signature line."""
    try:
        OutsideCheckpoint.from_text(note).verify(Vkey.from_string(vkey))
    except Exception:
        return False
    return True


def _note_at(ledger: Ledger, size: int) -> str:
    with ledger.db.read() as session:
        note = session.execute(
            select(LogCheckpoint.note).where(LogCheckpoint.tree_size == size)
        ).scalar_one()
    return str(note)


def _resign(note: str, signer: CheckpointSigner) -> str:
    """The note's checkpoint signed by ``signer`` alone."""
    body = note.split("\n\n", 1)[0] + "\n"
    return signer.sign(Checkpoint.from_body(body.encode()))


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_rotation_signs_with_both_keys_until_the_old_one_is_retired(
    client: FlaskClient,
    runner: FlaskCliRunner,
    ledger: Ledger,
    orgs: list[str],
    make_token: Callable[..., str],
    instance_path: Path,
) -> None:
    old_vkey = client.get("/v1/log/key").text.strip()
    (listed,) = _keys(client)
    assert (listed["vkey"], listed["status"], listed["last_size"]) == (old_vkey, "active", None)

    out = _ok(runner, "keys", "rotate-signing")
    found = re.search(r"added signing key (\S+)", out)
    assert found, out
    new_vkey = found.group(1)
    assert new_vkey != old_vkey
    assert new_vkey.startswith(ORIGIN + "+")
    assert (instance_path / "signing-keys" / "2.pem").stat().st_mode & 0o077 == 0
    # The rotation logged the new key (a clear entry, nothing personal) under both keys at once.
    added = logged_entries(ledger)[-1]
    assert added["type"] == "log.key_added"
    assert added["data"]["vkey"] == new_vkey

    make_token("tt-leeds", "auditor")  # a write
    note = client.get("/v1/log/checkpoint").text
    lines = _signature_lines(note)
    assert len(lines) == 2
    assert all(line.startswith(f"\u2014 {ORIGIN} ") for line in lines)
    assert _verifies(note, old_vkey)
    assert _verifies(note, new_vkey)
    # curl readers get the newest key on the first line; JSON lists both, newest first.
    assert client.get("/v1/log/key").text.split("\n")[0] == new_vkey
    new, old = _keys(client)
    assert (new["vkey"], new["status"], old["vkey"], old["status"]) == (
        new_vkey,
        "active",
        old_vkey,
        "active",
    )
    with ledger.db.read() as session:
        sizes = session.execute(select(LogCheckpoint.tree_size)).scalars().all()
    assert old["first_size"] == min(sizes)  # the first checkpoint the log ever signed
    assert new["first_size"] == len(logged_entries(ledger)) - 1  # the log.key_added checkpoint

    # A second rotation during the overlap is refused: end it first.
    refused = runner.invoke(args=["keys", "rotate-signing"])
    assert refused.exit_code == 1
    assert "--retire-old" in refused.output

    before = len(logged_entries(ledger))
    out = _ok(runner, "keys", "rotate-signing", "--retire-old")
    assert "retired signing key" in out
    assert not (instance_path / "signing-key.pem").exists()  # the old private key is destroyed
    retired_entry = logged_entries(ledger)[-1]
    assert retired_entry["type"] == "log.key_retired"
    assert retired_entry["data"]["vkey"] == old_vkey

    make_token("tt-leeds", "ig_lead")  # a write after the retirement
    note = client.get("/v1/log/checkpoint").text
    (_line,) = _signature_lines(note)
    assert _verifies(note, new_vkey)
    assert not _verifies(note, old_vkey)
    new, old = _keys(client)
    assert (new["status"], new["last_size"]) == ("active", None)
    assert (old["vkey"], old["status"], old["last_size"]) == (old_vkey, "retired", before)
    assert old["last_at"] is not None
    assert client.get("/v1/log/key").text.strip() == new_vkey

    # The whole history verifies: old checkpoints under the old key, later ones under the new.
    out = _ok(runner, "verify")
    assert "log verified" in out
    # A fresh process (a restarted worker) accepts the log and keeps writing under the new key.
    assert ledger.recheck_health().ok
    assert client.get("/healthz").status_code == 200


def test_retire_old_is_refused_without_a_rotation(runner: FlaskCliRunner, orgs: list[str]) -> None:
    refused = runner.invoke(args=["keys", "rotate-signing", "--retire-old"])
    assert refused.exit_code == 1
    assert "no older signing key" in refused.output


def test_retire_old_is_refused_until_a_checkpoint_signed_by_both_is_published(
    client: FlaskClient,
    runner: FlaskCliRunner,
    ledger: Ledger,
    orgs: list[str],
    instance_path: Path,
) -> None:
    _ok(runner, "keys", "rotate-signing")
    record = instance_path / "newest-checkpoint"
    saved = record.read_bytes()
    # The record as it was before the rotation's checkpoint was published (a crash between the
    # commit and the record): nobody outside has seen a checkpoint signed by both yet.
    size = len(logged_entries(ledger))
    earlier = _note_at(ledger, size - 1)
    record.write_bytes(earlier.encode() + b"\0" * (4096 - len(earlier)) + b"\0" * 4096)
    refused = runner.invoke(args=["keys", "rotate-signing", "--retire-old"])
    assert refused.exit_code == 1
    assert "signed by both" in refused.output
    assert (instance_path / "signing-key.pem").exists()
    record.write_bytes(saved)
    _ok(runner, "keys", "rotate-signing", "--retire-old")


@pytest.mark.parametrize(
    "which",
    [
        pytest.param("never-listed", id="a key never listed"),
        pytest.param("retired", id="the retired key, after its retirement"),
        pytest.param("new-before", id="the new key, before it was listed"),
    ],
)
def test_verify_fails_on_a_checkpoint_signed_by_a_key_not_listed_for_it(
    runner: FlaskCliRunner,
    ledger: Ledger,
    orgs: list[str],
    make_token: Callable[..., str],
    instance_path: Path,
    which: str,
) -> None:
    old_pem = (instance_path / "signing-key.pem").read_bytes()
    before = len(logged_entries(ledger))
    _ok(runner, "keys", "rotate-signing")
    new_pem = (instance_path / "signing-keys" / "2.pem").read_bytes()
    _ok(runner, "keys", "rotate-signing", "--retire-old")
    make_token("tt-leeds", "auditor")
    size = len(logged_entries(ledger))
    signer, target = {
        "never-listed": (Ed25519PrivateKey.generate(), size),
        "retired": (load_private_key_pem(old_pem), size),
        "new-before": (load_private_key_pem(new_pem), before),
    }[which]
    forged = _resign(_note_at(ledger, target), CheckpointSigner(ORIGIN, signer))
    tamper(
        ledger,
        "UPDATE log_checkpoints SET note = :n WHERE tree_size = :s",
        n=forged,
        s=target,
    )
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 1
    assert f"the checkpoint for size {target} has no valid signature" in result.output


def test_the_key_listing_is_public_and_says_how_to_read_it(client: FlaskClient) -> None:
    text = client.get("/v1/log/key")
    assert text.mimetype == "text/plain"
    assert text.text.count("\n") == 1  # one key: exactly the line it always was
    (only,) = _keys(client)
    assert set(only) == {
        "vkey",
        "key_id",
        "generation",
        "status",
        "first_size",
        "first_at",
        "last_size",
        "last_at",
    }
    assert only["key_id"] == only["vkey"].split("+")[1]


def test_a_second_rotation_adds_generation_three_and_history_still_verifies(
    client: FlaskClient,
    runner: FlaskCliRunner,
    orgs: list[str],
    make_token: Callable[..., str],
    instance_path: Path,
) -> None:
    for _ in range(2):
        _ok(runner, "keys", "rotate-signing")
        make_token("tt-leeds", "auditor")
        _ok(runner, "keys", "rotate-signing", "--retire-old")
        make_token("tt-leeds", "auditor")
    assert sorted(p.name for p in (instance_path / "signing-keys").iterdir()) == ["3.pem"]
    listed = _keys(client)
    assert [(k["generation"], k["status"]) for k in listed] == [
        (3, "active"),
        (2, "retired"),
        (1, "retired"),
    ]
    # Periods meet without a gap: each retired key signed up to the checkpoint the next began
    # signing in, or beyond (the overlap).
    assert listed[1]["first_size"] <= listed[2]["last_size"]
    assert listed[0]["first_size"] <= listed[1]["last_size"]
    assert "log verified" in _ok(runner, "verify")


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_host_without_the_new_key_signs_with_the_old_until_it_is_retired_then_refuses(
    client: FlaskClient,
    runner: FlaskCliRunner,
    orgs: list[str],
    make_token: Callable[..., str],
    instance_path: Path,
    database_url: str,
    tmp_path: Path,
) -> None:
    """A second host serving the same database from its own instance folder, to which the
    operator has not copied the new key: it keeps writing under the old key during the
    overlap, answers 503 (not 500, nothing written) once the old key is retired, and writes
    under the new key as soon as the file is copied, without a restart."""
    other = tmp_path / "other-host"
    other.mkdir(mode=0o700)
    for name in ("signing-key.pem", "identifier.key", "webhook-seal.key", "newest-checkpoint"):
        shutil.copy2(instance_path / name, other / name)
    host = create_app({"TESTING": True, "INSTANCE_PATH": str(other), "DATABASE_URL": database_url})
    second = host.test_client()
    recorder = bearer(make_token("tt-leeds", "case_system"))
    people = iter(valid_nhs_numbers(5, start=943_486_000))

    def write(http: FlaskClient) -> Any:
        return http.post(
            "/v1/consents",
            headers=recorder,
            json={
                "subject": {"nhs_number": next(people)},
                "purpose": "referral",
                "recipients": ["ea-tt-leeds"],
                "data_categories": ["identity"],
                "form": "verbal",
            },
        )

    _ok(runner, "keys", "rotate-signing")
    old_vkey, new_vkey = (k["vkey"] for k in reversed(_keys(client)))
    assert write(second).status_code == 201
    note = client.get("/v1/log/checkpoint").text
    assert (_verifies(note, old_vkey), _verifies(note, new_vkey)) == (True, False)
    assert write(client).status_code == 201  # the rotating host signs with both
    _ok(runner, "keys", "rotate-signing", "--retire-old")

    refused = write(second)
    assert refused.status_code == 503
    assert refused.get_json()["type"] == "/problems/log-unavailable"
    assert "signing-keys" not in refused.text  # no paths for the caller

    (other / "signing-keys").mkdir(mode=0o700)
    shutil.copy2(instance_path / "signing-keys" / "2.pem", other / "signing-keys" / "2.pem")
    assert write(second).status_code == 201
    note = client.get("/v1/log/checkpoint").text
    assert (_verifies(note, old_vkey), _verifies(note, new_vkey)) == (False, True)
    assert "log verified" in _ok(runner, "verify")
    get_ledger(host).db.dispose()


def test_keys_list_shows_the_signing_keys_after_the_identifier_keys(
    runner: FlaskCliRunner, orgs: list[str], make_token: Callable[..., str]
) -> None:
    _ok(runner, "keys", "rotate-signing")
    make_token("tt-leeds", "auditor")
    _ok(runner, "keys", "rotate-signing", "--retire-old")
    lines = _ok(runner, "keys", "list").splitlines()
    signing = [line for line in lines if line.startswith("signing key")]
    assert [line.split()[3:5] for line in signing] == [["2", "active"], ["1", "retired"]]
    assert re.search(r"sizes \d+\.\. ", signing[0])  # still signing: no end
    assert re.search(r"sizes \d+\.\.\d+ ", signing[1])
    assert lines.index(signing[0]) > 0  # after the identifier key


def _key_init_prints(host: Flask, token: str) -> str:
    output = _ok(host.test_cli_runner(), "init")
    (shown,) = re.findall(r"^Log origin and verifier key: (\S+)$", output, re.M)
    return str(shown)


def _key_dashboard_shows(host: Flask, token: str) -> str:
    client = host.test_client()
    ig_sign_in(client, token)
    page = client.get("/ig/dashboard")
    assert page.status_code == 200
    (shown,) = re.findall(r"<dt>Verifier key</dt><dd><code>([^<]+)</code>", page.text)
    return str(shown)


@pytest.mark.parametrize("shown_by", [_key_init_prints, _key_dashboard_shows])
def test_the_key_shown_to_the_operator_is_the_one_the_log_signs_with(
    shown_by: Callable[[Flask, str], str],
    client: FlaskClient,
    ledger: Ledger,
    instance_path: Path,
    database_url: str,
    make_token: Callable[..., str],
) -> None:
    token = make_token("tt-leeds", "ig_lead")
    served = client.get("/v1/log/key").text.strip()
    # `keys rotate-signing` stopped after writing signing-keys/2.pem, before listing it: that
    # key has signed nothing, and a monitor given it fails at its first run.
    keys.add_signing_key(ledger.settings, 2)
    host = create_app(
        {"TESTING": True, "INSTANCE_PATH": str(instance_path), "DATABASE_URL": database_url}
    )
    try:
        assert shown_by(host, token) == served
    finally:
        get_ledger(host).db.dispose()
