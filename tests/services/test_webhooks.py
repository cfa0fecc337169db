"""Webhooks (issue 15, item 2): each notification is pushed to the organisation's registered
URL, signed per Standard Webhooks, retried with backoff for a day, then given up and shown on
the IG dashboard. A real receiver on 127.0.0.1; the deliverer's pass (``deliver_due``, what
``serve`` and ``webhooks deliver`` run) is called directly so the clock can be moved."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select
from standardwebhooks import Webhook as Verifier

from app.models import Webhook, WebhookDelivery
from app.policy import Policy
from app.services.container import Ledger
from app.services.notifications import webhooks
from tests.api.test_notifications import EVALUATOR, Tokens, _feed, _post, _shared_for_evaluation
from tests.helpers import BOTH
from tests.nhs import valid_nhs_numbers
from tests.support.webhook_receiver import Receiver

NHS = valid_nhs_numbers(3, start=943_481_000)


@pytest.fixture
def tokens(policy: Policy, make_token: Callable[..., str]) -> Tokens:
    return {
        "tt": make_token("tt-leeds", "case_system"),
        "portal": make_token("tt-leeds", "patient_portal"),
        "eval": make_token(EVALUATOR, "case_system"),
        "eval_ig": make_token(EVALUATOR, "ig_lead"),
        "tt_ig": make_token("tt-leeds", "ig_lead"),
    }


def _register(runner: FlaskCliRunner, org: str, url: str) -> str:
    result = runner.invoke(args=["webhooks", "set", org, url])
    assert result.exit_code == 0, result.output
    secret = re.search(r"whsec_\S+", result.output)
    assert secret, result.output
    return secret.group(0)


def _withdraw_evaluation_consent(client: FlaskClient, tokens: Tokens, nhs: str) -> dict[str, Any]:
    """The person withdraws an evaluation consent under which the evaluator received data: the
    evaluator's erase notification."""
    consent = _shared_for_evaluation(client, tokens, nhs)["consent"]
    _post(
        client,
        tokens["portal"],
        f"/v1/consents/{consent['id']}/withdraw",
        {"reason": "person_withdrew"},
    )
    (erase,) = _feed(client, tokens["eval"])["items"]
    return erase  # type: ignore[no-any-return]


def _move_clock(ledger: Ledger, monkeypatch: pytest.MonkeyPatch, by: timedelta) -> None:
    real = ledger.clock
    monkeypatch.setattr(ledger, "clock", lambda: real() + by)


def _login(client: FlaskClient, token: str) -> None:
    form = client.get("/ig/")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf
    resp = client.post("/ig/sign-in", data={"csrf_token": csrf.group(1), "token": token})
    assert resp.status_code == 302


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_withdrawing_evaluation_consent_reaches_the_evaluators_webhook_once_signed(
    client: FlaskClient, runner: FlaskCliRunner, ledger: Ledger, tokens: Tokens
) -> None:
    with Receiver().running() as receiver:
        secret = _register(runner, EVALUATOR, receiver.url)
        erase = _withdraw_evaluation_consent(client, tokens, NHS[0])
        assert webhooks.deliver_due(ledger) == 1
        assert webhooks.deliver_due(ledger) == 0  # delivered: never sent again

        (got,) = receiver.received()
        # Verified with the Standard Webhooks library's own verifier, and the secret printed once.
        payload = Verifier(secret).verify(got.body, got.headers)
        assert got.webhook_id == erase["id"]
        assert payload["type"] == "notification.created"
        assert payload["data"]["id"] == erase["id"]
        assert payload["data"]["obligation"] == "cease_processing_and_erase"
        assert payload["data"]["disclosures"] == erase["disclosures"]
        assert NHS[0] not in got.body.decode()
        # Another secret does not verify it.
        with pytest.raises(Exception, match="signature"):
            Verifier("whsec_" + "A" * 43 + "=").verify(got.body, got.headers)

    # tt-leeds has a note_withdrawal notification too, but no webhook: nothing queued for it.
    with ledger.db.read() as session:
        rows = session.execute(select(WebhookDelivery)).scalars().all()
        sealed = session.execute(select(Webhook.secret_sealed)).scalar_one()
    assert [(r.obligation_id, r.attempts, r.delivered_at is not None) for r in rows] == [
        (erase["id"], 1, True)
    ]
    # The secret is stored sealed, and never listed.
    raw = Verifier(secret)._whsecret
    assert raw not in sealed
    listed = runner.invoke(args=["webhooks", "list"])
    assert listed.output == f"{EVALUATOR}\t{receiver.url}\n"


def test_a_receiver_answering_500_then_200_gets_the_same_id_twice_and_it_ends_delivered(
    client: FlaskClient,
    runner: FlaskCliRunner,
    ledger: Ledger,
    tokens: Tokens,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Receiver(statuses=[500, 200]).running() as receiver:
        secret = _register(runner, EVALUATOR, receiver.url)
        erase = _withdraw_evaluation_consent(client, tokens, NHS[1])
        assert webhooks.deliver_due(ledger) == 1
        assert webhooks.deliver_due(ledger) == 0  # not due again at once: it backs off
        (failing,) = webhooks.troubles(ledger, EVALUATOR)
        assert (failing.notification_id, failing.last_problem) == (erase["id"], "answered 500")
        assert failing.next_attempt_at is not None
        assert failing.given_up_at is None
        _move_clock(ledger, monkeypatch, timedelta(hours=1))
        assert webhooks.deliver_due(ledger) == 1
        first, second = receiver.received()

    assert first.webhook_id == second.webhook_id == erase["id"]
    assert (first.status, second.status) == (500, 200)
    assert Verifier(secret).verify(first.body, first.headers)["data"]["id"] == erase["id"]
    assert webhooks.troubles(ledger, EVALUATOR) == []
    with ledger.db.read() as session:
        row = session.execute(select(WebhookDelivery)).scalar_one()
    assert (row.attempts, row.last_status, row.delivered_at is not None) == (2, 200, True)


def test_a_receiver_that_does_not_answer_in_http_is_recorded_and_given_up(
    client: FlaskClient,
    runner: FlaskCliRunner,
    ledger: Ledger,
    tokens: Tokens,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(5)

    def answer_garbage() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(b"garbage\r\n\r\n")

    threading.Thread(target=answer_garbage, daemon=True).start()
    try:
        _register(runner, EVALUATOR, f"http://127.0.0.1:{listener.getsockname()[1]}/hook")
        erase = _withdraw_evaluation_consent(client, tokens, NHS[1])
        real = ledger.clock
        webhooks.deliver_due(ledger)
        (failing,) = webhooks.troubles(ledger, EVALUATOR)
        assert "no usable answer" in failing.last_problem
        assert failing.next_attempt_at is not None  # backing off, not retried at once
        monkeypatch.setattr(ledger, "clock", lambda: real() + timedelta(days=2))
        webhooks.deliver_due(ledger)
        (given_up,) = webhooks.troubles(ledger, EVALUATOR)
        assert given_up.given_up_at is not None
        assert given_up.notification_id == erase["id"]
    finally:
        listener.close()


def test_a_receiver_down_for_more_than_a_day_is_given_up_and_shown_on_the_dashboard(
    client: FlaskClient,
    runner: FlaskCliRunner,
    ledger: Ledger,
    tokens: Tokens,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = ledger.clock
    with Receiver(statuses=[503]).running() as receiver:
        _register(runner, EVALUATOR, receiver.url)
        erase = _withdraw_evaluation_consent(client, tokens, NHS[2])
        # The deliverer wakes every 30 minutes for 26 hours: backing off, it tries far fewer
        # times than it wakes, tries last at the day's end, then gives up.
        for half_hours in range(0, 53):
            monkeypatch.setattr(
                ledger, "clock", lambda h=half_hours: real() + h * timedelta(minutes=30)
            )
            webhooks.deliver_due(ledger)
        attempts = len(receiver.received())
    assert 5 < attempts < 40
    assert {r.webhook_id for r in receiver.received()} == {erase["id"]}
    (given_up,) = webhooks.troubles(ledger, EVALUATOR)
    assert given_up.next_attempt_at is None
    assert given_up.given_up_at is not None
    assert given_up.given_up_at - given_up.created_at >= timedelta(days=1)
    assert given_up.attempts == attempts

    _login(client, tokens["eval_ig"])
    page = client.get("/ig/dashboard").text
    section = page[page.index("Webhook deliveries failing") :]
    assert erase["id"] in section
    assert "Given up" in section
    assert "answered 503" in section
    # Another organisation's IG lead does not see it.
    client.post("/ig/sign-out", data={"csrf_token": _csrf(page)})
    _login(client, tokens["tt_ig"])
    assert erase["id"] not in client.get("/ig/dashboard").text


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://case.example.org/hooks/consent", True),
        ("http://127.0.0.1:8080/hook", True),
        ("http://localhost/hook", True),
        ("http://case.example.org/hook", False),
        ("ftp://case.example.org/hook", False),
        ("file:///etc/passwd", False),
        ("https://user:secret@case.example.org/hook", False),
        ("not a url", False),
        ("https://case.example.org:abc/hook", False),
        ("https://case.example.org:99999/hook", False),
    ],
)
def test_webhook_urls_must_be_https_except_to_this_machine(
    runner: FlaskCliRunner, orgs: list[str], url: str, accepted: bool
) -> None:
    result = runner.invoke(args=["webhooks", "set", "tt-leeds", url])
    assert (result.exit_code == 0) == accepted, result.output
    if not accepted:
        assert "url: must" in result.output
        assert "whsec_" not in result.output


def test_an_unknown_organisation_cannot_have_a_webhook(
    runner: FlaskCliRunner, orgs: list[str]
) -> None:
    result = runner.invoke(args=["webhooks", "set", "no-such-org", "https://x.example/h"])
    assert result.exit_code == 1
    assert "no organisation 'no-such-org'" in result.output


def test_a_payload_is_json_with_the_notification(
    client: FlaskClient, runner: FlaskCliRunner, ledger: Ledger, tokens: Tokens
) -> None:
    with Receiver().running() as receiver:
        _register(runner, EVALUATOR, receiver.url)
        erase = _withdraw_evaluation_consent(client, tokens, NHS[0])
        webhooks.deliver_due(ledger)
        (got,) = receiver.received()
    assert got.headers["Content-Type"] == "application/json"
    assert json.loads(got.body)["data"] == erase


def test_erasing_the_person_still_pushes_what_was_open_and_pushes_the_erasure(
    client: FlaskClient, runner: FlaskCliRunner, ledger: Ledger, tokens: Tokens
) -> None:
    with Receiver().running() as receiver:
        _register(runner, EVALUATOR, receiver.url)
        _withdraw_evaluation_consent(client, tokens, NHS[0])
        # Erased before the deliverer ran: the withdrawal's obligation stays open (it names no
        # one, and the evaluator must still act on it), and the erasure's own is pushed too.
        erased = runner.invoke(
            args=["erase", "--reason", "recorded_in_error", "--reference", "IG-1"],
            input=f"{NHS[0]}\n",
        )
        assert erased.exit_code == 0, erased.output
        webhooks.deliver_due(ledger)
        got = receiver.received()
    causes = sorted(json.loads(g.body)["data"]["cause"]["type"] for g in got)
    assert causes == ["consent.withdrawn", "subject.erased"]
    for g in got:
        assert NHS[0].encode() not in g.body
    with ledger.db.read() as session:
        ids = set(session.execute(select(WebhookDelivery.obligation_id)).scalars())
    assert ids == {g.webhook_id for g in got}


def test_deliver_once_sends_what_is_due_and_a_removed_webhook_gets_nothing_more(
    client: FlaskClient, runner: FlaskCliRunner, tokens: Tokens
) -> None:
    with Receiver().running() as receiver:
        _register(runner, EVALUATOR, receiver.url)
        first = _withdraw_evaluation_consent(client, tokens, NHS[0])
        sent = runner.invoke(args=["webhooks", "deliver", "--once"])
        assert sent.exit_code == 0, sent.output
        assert [r.webhook_id for r in receiver.received()] == [first["id"]]

        removed = runner.invoke(args=["webhooks", "remove", EVALUATOR])
        assert removed.exit_code == 0, removed.output
        consent = _shared_for_evaluation(client, tokens, NHS[1])["consent"]
        _post(
            client,
            tokens["portal"],
            f"/v1/consents/{consent['id']}/withdraw",
            {"reason": "person_withdrew"},
        )
        assert runner.invoke(args=["webhooks", "deliver", "--once"]).exit_code == 0
        assert len(receiver.received()) == 1
        # Still in the feed: push was extra, pull is the record.
        assert len(_feed(client, tokens["eval"])["items"]) == 2
    assert runner.invoke(args=["webhooks", "list"]).output == "no webhooks\n"
    again = runner.invoke(args=["webhooks", "remove", EVALUATOR])
    assert again.exit_code == 1
    assert "has no webhook" in again.output
