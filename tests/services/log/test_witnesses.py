"""Witness cosigning against an outside witness: ``aics-witness`` from PyPI, on loopback.

The submitter runs once per step (``consent-ledger witnesses submit --once``); its
cosignatures are read back from ``/log/checkpoint`` and ``/v1/log/checkpoint`` and checked
with our verifier and with ``aics-tlog``'s, which we did not write. A fork (a second instance
with the same key and origin but another history) shown to the same witness is refused.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select

from app import create_app, get_ledger
from app.config import SIGNING_KEY_FILE
from app.ledger.checkpoint import CheckpointVerifier
from app.ledger.cosignature import CosignatureVerifier, cosigners
from app.ledger.errors import VerificationError
from app.models import WitnessCosignature, WitnessStatus
from app.services import organisations
from app.services.access import clients
from app.services.container import Ledger
from app.services.log import keys
from app.services.log.log_store import make_entry
from tests.conftest import ORGS_FILE
from tests.helpers import BOTH, bearer, ig_sign_in
from tests.support.aics_witness import AicsWitness, outside_verify

pytestmark = pytest.mark.witness
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def grow(ledger: Ledger, size: int, tag: str = "a") -> None:
    """Append entries up to ``size`` leaves in one transaction (one signed checkpoint)."""
    with ledger.db.write() as session:
        have = ledger.log_store.size(session)
        entries = [make_entry("bulk", NOW, {"n": i, "history": tag}) for i in range(have, size)]
        ledger.log_store.append(session, entries, NOW)


def witnessed_app(
    instance: Path, database_url: str, witnesses: list[AicsWitness], quorum: int | None = None
) -> Flask:
    """An instance configured with ``witnesses`` (which are told to trust its log key)."""
    listing = instance / "witnesses.txt"
    listing.write_text("".join(f"{w.vkey} {w.url}\n" for w in witnesses))
    config = {"INSTANCE_PATH": str(instance), "DATABASE_URL": database_url}
    config["WITNESSES"] = str(listing)
    if quorum is not None:
        config["WITNESS_QUORUM"] = str(quorum)
    app = create_app({"TESTING": True, **config})
    ledger = get_ledger(app)
    keys.ensure_keys(ledger.settings)
    for w in witnesses:
        w.add_log(ledger.settings.log_origin, ledger.log_store.signer.verifier_key())
    return app


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[AicsWitness]:
    w = AicsWitness(tmp_path / "witness-1", "witness.test/w1")
    yield w
    w.stop()


@pytest.fixture
def second_witness(tmp_path: Path) -> Iterator[AicsWitness]:
    w = AicsWitness(tmp_path / "witness-2", "witness.test/w2")
    yield w
    w.stop()


@pytest.fixture
def witnessed(
    instance_path: Path, database_url: str, witness: AicsWitness
) -> Iterator[tuple[Flask, AicsWitness]]:
    app = witnessed_app(instance_path, database_url, [witness])
    witness.start()
    yield app, witness
    get_ledger(app).db.dispose()


def submit(app: Flask) -> str:
    result = app.test_cli_runner().invoke(args=["witnesses", "submit", "--once"])
    assert result.exit_code == 0, result.output
    return result.output


def served(client: FlaskClient, path: str = "/log/checkpoint") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.text


def witness_health(client: FlaskClient) -> dict[str, dict[str, object]]:
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json["status"] == "ok"
    return {w["name"]: w for w in health.json["witnesses"]["witnesses"]}


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_an_outside_witness_cosigns_and_an_outside_verifier_accepts(
    witnessed: tuple[Flask, AicsWitness],
) -> None:
    app, witness = witnessed
    ledger, client = get_ledger(app), app.test_client()
    log_key = ledger.log_store.signer.verifier_key()
    origin = ledger.settings.log_origin
    ours = CosignatureVerifier.from_verifier_key(witness.vkey)
    grow(ledger, 5)
    # Nothing cosigned yet: the newest signed checkpoint is served, so a new log is usable.
    with pytest.raises(VerificationError):
        ours.verify(served(client))

    submit(app)
    for path in ("/log/checkpoint", "/v1/log/checkpoint"):
        note = served(client, path)
        assert CheckpointVerifier.from_verifier_key(log_key).verify(note).size == 5
        ours.verify(note)
        assert "witness.test/w1" in outside_verify(note, origin, log_key, [witness.vkey], 1)

    # A newer checkpoint is published once the witness has cosigned it, which it does only
    # with a consistency proof from 5 (the witness checks it).
    grow(ledger, 9)
    assert CheckpointVerifier.from_verifier_key(log_key).verify(served(client)).size == 5
    assert witness_health(client)["witness.test/w1"]["behind"] == 4
    submit(app)
    note = served(client)
    assert CheckpointVerifier.from_verifier_key(log_key).verify(note).size == 9
    outside_verify(note, origin, log_key, [witness.vkey], 1)
    state = witness_health(client)["witness.test/w1"]
    assert (state["cosigned_size"], state["behind"], state["last_error"]) == (9, 0, None)

    # An offline receipt at that size carries the cosignature too (c2sp.org/tlog-proof).
    organisations.import_organisations(
        ledger, organisations.read_organisation_file(ORGS_FILE), str(ORGS_FILE)
    )
    token = clients.create_client(ledger, "tt-leeds", "auditor", None).token
    receipt = client.get("/v1/log/proof/receipt?index=3&size=9", headers=bearer(token))
    assert receipt.status_code == 200
    ours.verify(receipt.text.split("\n\n", 1)[1])


def test_a_witness_ahead_of_our_status_is_resubmitted_from_its_size(
    witnessed: tuple[Flask, AicsWitness],
) -> None:
    app, witness = witnessed
    ledger, client = get_ledger(app), app.test_client()
    grow(ledger, 5)
    submit(app)
    with ledger.db.write() as session:  # our record of it lost: we would send "old 0"
        session.execute(delete(WitnessStatus))
    grow(ledger, 8)
    submit(app)  # 409 naming 5, then again from 5 with a proof
    note = served(client)
    assert (
        CheckpointVerifier.from_verifier_key(ledger.log_store.signer.verifier_key())
        .verify(note)
        .size
        == 8
    )
    CosignatureVerifier.from_verifier_key(witness.vkey).verify(note)
    assert witness_health(client)["witness.test/w1"]["last_error"] is None


def test_a_fork_shown_to_the_witness_is_refused_recorded_and_not_stored(
    witnessed: tuple[Flask, AicsWitness], tmp_path: Path, sqlite_template: Path
) -> None:
    app, witness = witnessed
    ledger = get_ledger(app)
    grow(ledger, 5)
    submit(app)

    # Another instance with the same signing key and origin, and another history.
    other = tmp_path / "other"
    other.mkdir()
    shutil.copyfile(ledger.settings.signing_key_path, other / SIGNING_KEY_FILE)
    shutil.copyfile(sqlite_template, other / "db.sqlite3")
    fork = witnessed_app(other, f"sqlite:///{other / 'db.sqlite3'}", [witness])
    forked = get_ledger(fork)
    assert forked.log_store.signer.verifier_key() == ledger.log_store.signer.verifier_key()
    try:
        grow(forked, 7, tag="b")
        submit(fork)
        client = fork.test_client()
        state = witness_health(client)["witness.test/w1"]
        assert "(422)" in str(state["last_error"])
        assert state["cosigned_size"] == 0
        with forked.db.read() as session:
            stored = session.execute(select(func.count()).select_from(WitnessCosignature))
            assert stored.scalar() == 0
        theirs = CosignatureVerifier.from_verifier_key(witness.vkey)
        assert cosigners(served(client), [theirs]) == []
    finally:
        forked.db.dispose()
    # The witness still cosigns the history it saw first.
    grow(ledger, 6)
    submit(app)
    CosignatureVerifier.from_verifier_key(witness.vkey).verify(served(app.test_client()))


def test_with_a_quorum_of_two_and_one_down_the_served_checkpoint_waits(
    instance_path: Path, database_url: str, witness: AicsWitness, second_witness: AicsWitness
) -> None:
    app = witnessed_app(instance_path, database_url, [witness, second_witness], quorum=2)
    witness.start()
    second_witness.start()
    ledger, client = get_ledger(app), app.test_client()
    log_key = ledger.log_store.signer.verifier_key()
    origin = ledger.settings.log_origin
    both = [witness.vkey, second_witness.vkey]
    try:
        grow(ledger, 5)
        submit(app)
        outside_verify(served(client), origin, log_key, both, 2)

        second_witness.stop()
        grow(ledger, 9)
        submit(app)
        # One cosignature at 9 is not the quorum: 5 is still served, with both.
        note = served(client)
        assert CheckpointVerifier.from_verifier_key(log_key).verify(note).size == 5
        outside_verify(note, origin, log_key, both, 2)
        states = witness_health(client)
        assert (states["witness.test/w1"]["behind"], states["witness.test/w1"]["last_error"]) == (
            0,
            None,
        )
        down = states["witness.test/w2"]
        assert (down["cosigned_size"], down["behind"]) == (5, 4)
        assert str(down["last_error"]).startswith("could not connect")
        report = client.get("/healthz").json["witnesses"]
        assert (report["witnessed_size"], report["served_size"]) == (5, 5)
        status = app.test_cli_runner().invoke(args=["witnesses", "status"]).output
        assert "newest checkpoint the quorum cosigned: size 5" in status
        assert "witness.test/w2+" in status
        assert "cosigned 5\tbehind 4 entries" in status
        assert "last error: could not connect: ConnectionRefusedError" in status

        # The IG lead's dashboard says the same.
        organisations.import_organisations(
            ledger, organisations.read_organisation_file(ORGS_FILE), str(ORGS_FILE)
        )
        ig_sign_in(client, clients.create_client(ledger, "tt-leeds", "ig_lead", None).token)
        page = client.get("/ig/dashboard")
        assert page.status_code == 200
        text = " ".join(re.sub(r"<[^>]+>", " ", page.text).split())
        assert "The published checkpoint holds 5 entries of" in text
        assert "The newest that 2 witnesses cosigned: 5 entries." in text
        assert "witness.test/w2 5 entries" in text
        assert "could not connect: ConnectionRefusedError" in text
    finally:
        ledger.db.dispose()


def test_the_served_checkpoint_never_steps_back_when_the_witnesses_change(
    instance_path: Path, database_url: str, witness: AicsWitness, second_witness: AicsWitness
) -> None:
    app = witnessed_app(instance_path, database_url, [witness, second_witness], quorum=1)
    witness.start()
    second_witness.start()
    ledger = get_ledger(app)
    log_key = CheckpointVerifier.from_verifier_key(ledger.log_store.signer.verifier_key())
    try:
        grow(ledger, 5)
        submit(app)
        second_witness.stop()
        grow(ledger, 9)
        submit(app)  # only the first cosigns 9; quorum 1: 9 is served
        assert log_key.verify(served(app.test_client())).size == 9
    finally:
        ledger.db.dispose()

    # The operator drops the first witness: the second cosigned only 5, but a monitor that
    # saw 9 must not be shown 5 (a rollback to it).
    app = witnessed_app(instance_path, database_url, [second_witness])
    ledger = get_ledger(app)
    try:
        assert log_key.verify(served(app.test_client())).size == 9
        second_witness.start()
        time.sleep(1.1)  # its backoff after one failure (at most FIRST_RETRY) is over
        submit(app)
        note = served(app.test_client())
        assert log_key.verify(note).size == 9
        CosignatureVerifier.from_verifier_key(second_witness.vkey).verify(note)
    finally:
        ledger.db.dispose()
