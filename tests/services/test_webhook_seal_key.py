"""Webhook signing secrets outlive a signing-key rotation (issue 16, item 4): they are sealed
under a key of their own (``webhook-seal.key``), which never rotates, and secrets sealed the
old way (under a key derived from the signing key) are re-sealed once, in one transaction, before
the signing key can change."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select
from standardwebhooks import Webhook as Verifier

from app import create_app, get_ledger
from app.models import Webhook, WebhookDelivery
from app.services.container import Ledger
from app.services.log import keys
from app.services.notifications import webhooks
from tests.api.test_notifications import EVALUATOR, Tokens, _feed, _post, _shared_for_evaluation
from tests.helpers import BOTH
from tests.nhs import valid_nhs_numbers
from tests.services.test_webhooks import _register, tokens
from tests.support.webhook_receiver import Receiver

__all__ = ["tokens"]  # the fixture, shared with test_webhooks
NHS = valid_nhs_numbers(2, start=943_484_000)


def _erase_notification(client: FlaskClient, tokens: Tokens, nhs: str) -> str:
    """A person withdraws an evaluation consent the evaluator received data under: the id of
    the evaluator's new erase notification."""
    before = {item["id"] for item in _feed(client, tokens["eval"])["items"]}
    consent = _shared_for_evaluation(client, tokens, nhs)["consent"]
    _post(
        client,
        tokens["portal"],
        f"/v1/consents/{consent['id']}/withdraw",
        {"reason": "person_withdrew"},
    )
    (new,) = [i["id"] for i in _feed(client, tokens["eval"])["items"] if i["id"] not in before]
    return str(new)


def _sealed(ledger: Ledger) -> bytes:
    with ledger.db.read() as session:
        return bytes(session.execute(select(Webhook.secret_sealed)).scalar_one())


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_secret_sealed_the_old_way_still_delivers_after_rotation_and_retirement(
    client: FlaskClient,
    runner: FlaskCliRunner,
    ledger: Ledger,
    tokens: Tokens,
    instance_path: Path,
) -> None:
    # An instance from before the seal key: its secrets are sealed under the signing key.
    (instance_path / "webhook-seal.key").unlink()
    with Receiver().running() as receiver:
        secret = _register(runner, EVALUATOR, receiver.url)
        old_way = _sealed(ledger)

        rotated = runner.invoke(args=["keys", "rotate-signing"])
        assert rotated.exit_code == 0, rotated.output
        assert "re-sealed 1 webhook secret" in rotated.output
        assert (instance_path / "webhook-seal.key").stat().st_mode & 0o077 == 0
        assert _sealed(ledger) != old_way
        first = _erase_notification(client, tokens, NHS[0])
        assert webhooks.deliver_due(ledger) == 1

        retired = runner.invoke(args=["keys", "rotate-signing", "--retire-old"])
        assert retired.exit_code == 0, retired.output
        assert not (instance_path / "signing-key.pem").exists()
        second = _erase_notification(client, tokens, NHS[1])
        assert webhooks.deliver_due(ledger) == 1

        got = receiver.received()
    assert [g.webhook_id for g in got] == [first, second]
    for delivery in got:  # signed with the secret printed at registration, never re-issued
        Verifier(secret).verify(delivery.body, delivery.headers)


def test_init_reseals_the_old_way_once(
    runner: FlaskCliRunner, ledger: Ledger, tokens: Tokens, instance_path: Path
) -> None:
    (instance_path / "webhook-seal.key").unlink()
    with Receiver().running() as receiver:
        _register(runner, EVALUATOR, receiver.url)
    old_way = _sealed(ledger)
    assert runner.invoke(args=["init"]).exit_code == 0
    resealed = _sealed(ledger)
    assert resealed != old_way
    assert runner.invoke(args=["init"]).exit_code == 0
    assert _sealed(ledger) == resealed  # once: nothing left to re-seal


def _second_host(instance_path: Path, database_url: str, folder: Path) -> Flask:
    """Another application server on the same database, set up as README says before the seal
    key existed: the signing and identifier keys copied, no webhook-seal.key."""
    folder.mkdir(mode=0o700)
    for name in ("signing-key.pem", "identifier.key", "newest-checkpoint"):
        shutil.copy2(instance_path / name, folder / name)
    return create_app({"TESTING": True, "INSTANCE_PATH": str(folder), "DATABASE_URL": database_url})


# What an operator runs on the second host: each is refused, naming the file to copy, until
# the file is there, then works.
SECOND_HOST_STEPS = {
    "init": ["init"],
    "rotate-signing": ["keys", "rotate-signing"],
    "deliver": ["webhooks", "deliver", "--once"],
    "set": ["webhooks", "set", EVALUATOR, "http://127.0.0.1:9/hook"],
}


@pytest.mark.parametrize("backend", BOTH, indirect=True)
@pytest.mark.parametrize("second_holds", ["no seal key", "another seal key"])
@pytest.mark.parametrize("step", sorted(SECOND_HOST_STEPS))
def test_a_second_host_without_the_databases_seal_key_is_told_what_to_copy(
    step: str,
    second_holds: str,
    client: FlaskClient,
    runner: FlaskCliRunner,
    ledger: Ledger,
    tokens: Tokens,
    instance_path: Path,
    database_url: str,
    tmp_path: Path,
) -> None:
    # Two hosts from before the seal key; the upgrade (`init`, as README says) on the first.
    (instance_path / "webhook-seal.key").unlink()
    other = tmp_path / "other-host"
    host = _second_host(instance_path, database_url, other)
    second = get_ledger(host)
    if second_holds == "another seal key":  # as an earlier `init` on this host left it
        keys.ensure_webhook_seal_key(second.settings)
    stray = (other / "webhook-seal.key").read_bytes() if second_holds != "no seal key" else None
    try:
        with Receiver().running() as receiver:
            secret = _register(runner, EVALUATOR, receiver.url)
            assert runner.invoke(args=["init"]).exit_code == 0
            sealed = _sealed(ledger)
            notification = _erase_notification(client, tokens, NHS[0])
            vkeys = client.get("/v1/log/key", headers={"Accept": "application/json"}).json

            refused = host.test_cli_runner().invoke(args=SECOND_HOST_STEPS[step])
            assert refused.exit_code == 1, refused.output
            assert isinstance(refused.exception, SystemExit), repr(refused.exception)
            assert f"copy webhook-seal.key (mode 0600) to {other / 'webhook-seal.key'}" in (
                refused.output
            )
            # No second key made, nothing sealed under a key the first host lacks, no
            # signing key added, and the delivery is still due.
            held = (other / "webhook-seal.key").read_bytes() if stray is not None else None
            assert held == stray
            assert (other / "webhook-seal.key").exists() == (stray is not None)
            assert _sealed(ledger) == sealed
            assert client.get("/v1/log/key", headers={"Accept": "application/json"}).json == vkeys

            (other / "webhook-seal.key").unlink(missing_ok=True)
            shutil.copy2(instance_path / "webhook-seal.key", other / "webhook-seal.key")
            listed = host.test_cli_runner().invoke(args=["keys", "list"])
            assert f"webhook seal key  {_seal_key_id(instance_path)}  held" in listed.output
            done = host.test_cli_runner().invoke(args=SECOND_HOST_STEPS[step])
            assert done.exit_code == 0, done.output
            if step == "deliver":
                (got,) = receiver.received()
                assert got.webhook_id == notification
                Verifier(secret).verify(got.body, got.headers)
    finally:
        second.db.dispose()


def _seal_key_id(instance_path: Path) -> str:
    return keys.webhook_seal_key_id((instance_path / "webhook-seal.key").read_bytes())


def test_the_background_deliverer_of_a_host_without_the_seal_key_says_once_what_to_copy(
    client: FlaskClient,
    runner: FlaskCliRunner,
    ledger: Ledger,
    tokens: Tokens,
    instance_path: Path,
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (instance_path / "webhook-seal.key").unlink()
    host = _second_host(instance_path, database_url, tmp_path / "other-host")
    second = get_ledger(host)
    try:
        _register(runner, EVALUATOR, "http://127.0.0.1:9/hook")
        assert runner.invoke(args=["init"]).exit_code == 0
        _erase_notification(client, tokens, NHS[0])
        stop = threading.Event()
        deliverer = threading.Thread(
            target=webhooks.run, args=(second, stop), kwargs={"poll_seconds": 0.02}
        )
        with caplog.at_level(logging.ERROR, logger="consent_ledger.webhooks"):
            deliverer.start()
            time.sleep(0.5)  # many passes
            stop.set()
            deliverer.join()
        # One line naming the file to copy, not a traceback every pass.
        (said,) = [r for r in caplog.records if r.name == "consent_ledger.webhooks"]
        assert said.exc_info is None
        assert "copy webhook-seal.key" in said.getMessage()
        with ledger.db.read() as session:  # still due, for a host that holds the key
            assert session.execute(select(WebhookDelivery.attempts)).scalar_one() == 0
    finally:
        second.db.dispose()
