"""Webhooks from the real server (issue 15, item 2): ``consent-ledger serve`` starts the
deliverer itself, and SIGKILL of the whole server (master and every worker) while a delivery is
in flight loses no notification and repeats no delivery id to a receiver that answered 2xx.

Deterministic: the receiver answers the first two deliveries and holds the third unanswered
while the server is killed, so at the kill every delivery is either answered and recorded
(the deliverer sends one at a time, recording each answer before the next send) or in flight.
After the restart the held one is sent again with the same id (at least once: its answer never
reached the sender) and the rest are sent once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
from standardwebhooks import Webhook as Verifier

from tests.nhs import valid_nhs_numbers
from tests.server.conftest import WORKER_THREADS, Server, _run
from tests.support.webhook_receiver import Received, Receiver

pytestmark = pytest.mark.server

NOTIFICATIONS = 6
HELD = 3  # the delivery in flight at the kill
NHS = valid_nhs_numbers(NOTIFICATIONS, start=943_483_000)


def _tokens(instance: Path) -> dict[str, str]:
    return {
        f"{t['role']}:{t['organisation']}": t["token"]
        for t in json.loads((instance / "demo-tokens.json").read_text())
    }


def _withdrawn_by_the_person(url: str, tokens: dict[str, str], nhs: str) -> str:
    """A consent tt-leeds records and the person withdraws through the portal: tt-leeds must
    note it (a note_withdrawal notification). The consent id."""
    recorder = {"Authorization": f"Bearer {tokens['case_system:tt-leeds']}"}
    portal = {"Authorization": f"Bearer {tokens['patient_portal:tt-leeds']}"}
    consent = requests.post(
        url + "/v1/consents",
        headers=recorder,
        json={
            "subject": {"nhs_number": nhs},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity"],
            "form": "verbal",
        },
        timeout=10,
    )
    assert consent.status_code == 201, consent.text
    consent_id = str(consent.json()["id"])
    withdrawn = requests.post(
        f"{url}/v1/consents/{consent_id}/withdraw",
        headers=portal,
        json={"reason": "person_withdrew"},
        timeout=10,
    )
    assert withdrawn.status_code == 200, withdrawn.text
    return consent_id


def _wait_for(condition: object, seconds: float = 45) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def _answered_ids(received: list[Received]) -> list[str]:
    return [r.webhook_id for r in received if r.answered and 200 <= r.status < 300]


@pytest.mark.parametrize("threads", WORKER_THREADS)
def test_killing_the_server_mid_delivery_loses_none_and_repeats_no_answered_id(
    demo_instance: Path, threads: int
) -> None:
    tokens = _tokens(demo_instance)
    with Receiver(hold_at=HELD).running() as receiver:
        out = _run(demo_instance, "webhooks", "set", "tt-leeds", receiver.url).stdout
        secret = next(word for word in out.split() if word.startswith("whsec_"))

        srv = Server(demo_instance, workers=3, threads=threads, new_session=True)
        try:
            consents = {_withdrawn_by_the_person(srv.url, tokens, nhs) for nhs in NHS}
            feed = requests.get(
                srv.url + "/v1/notifications",
                headers={"Authorization": f"Bearer {tokens['case_system:tt-leeds']}"},
                timeout=10,
            ).json()["items"]
            expected = {n["id"] for n in feed if n["consent_id"] in consents}
            assert len(expected) == NOTIFICATIONS
            assert receiver.holding.wait(30), "the deliverer never reached the held delivery"
        finally:
            srv.kill()
        receiver.release()
        before = receiver.received()
        assert len(before) == HELD  # one at a time: nothing sent after the one in flight
        in_flight = before[-1].webhook_id

        srv = Server(demo_instance, workers=3, threads=threads, new_session=True)
        try:
            _wait_for(lambda: set(_answered_ids(receiver.received())) == expected)
            time.sleep(2)  # a few more polls: anything repeated would arrive now
        finally:
            srv.stop()
        received = receiver.received()
        log = srv.log.read_text()
    assert "sending again 1 deliveries left unanswered by a stopped deliverer" in log
    assert "Traceback" not in log

    # None lost: every notification reached the receiver and was answered 2xx.
    assert set(_answered_ids(received)) == expected
    # No id repeated to a receiver that answered it 2xx: each answered once, never sent after.
    answered = _answered_ids(received)
    assert len(answered) == len(set(answered)) == NOTIFICATIONS
    for i, r in enumerate(received):
        if r.answered:
            assert r.webhook_id not in [later.webhook_id for later in received[i + 1 :]]
    # The one whose answer never reached the sender was sent again, with the same id.
    assert [r.webhook_id for r in received].count(in_flight) == 2
    assert len(received) == NOTIFICATIONS + 1
    for r in received[HELD:]:
        assert Verifier(secret).verify(r.body, r.headers)["data"]["id"] == r.webhook_id
