"""Webhook signing secrets outlive a signing-key rotation (issue 16, item 4): they are sealed
under a key of their own (``webhook-seal.key``), which never rotates, and secrets sealed the
old way (under a key derived from the signing key) are re-sealed once, in one transaction, before
the signing key can change."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select
from standardwebhooks import Webhook as Verifier

from app.models import Webhook
from app.services.container import Ledger
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
