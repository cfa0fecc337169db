"""The sequencer writes what arrives together as one batch: one transaction, one signed
checkpoint, use cases in arrival order, a failing use case undone alone, a failing batch
recording nothing and answering every caller.

Batches are formed for real: a first write holds the sequencer (its use case waits on an event
inside its batch), the writes under test queue up behind it in a known order, and are released
together into the next batch. Real SQLite and PostgreSQL, real services.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import func, select, text

from app.errors import DomainError
from app.models import Consent, IdempotencyRecord, LogCheckpoint, LogEntry
from app.policy import Policy
from app.services.access import clients
from app.services.access.clients import Principal
from app.services.access.idempotency import IdempotencyKey, WriteResult
from app.services.consents import consents
from app.services.consents.subjects import SubjectIdentifier
from app.services.container import Ledger
from app.services.decisions import decisions
from app.services.log.log_store import PUBLISHED
from app.services.log.sequencer import Batch, BatchFailed, SequencerBusy
from tests.helpers import BOTH
from tests.nhs import valid_nhs_numbers
from tests.support import rfc9162_verifier as rfc

NHS = valid_nhs_numbers(8, start=943_478_300)
REFERRAL = ("identity", "service_status")
WAIT = 30  # seconds: generous, only reached if the sequencer is broken


class Queued:
    """A write running on its own thread, as a request on a gthread worker does."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self.result = call()
        except BaseException as exc:  # handed to the test
            self.error = exc

    def get(self) -> Any:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the write never returned"
        if self.error is not None:
            raise self.error
        return self.result


@contextmanager
def held(ledger: Ledger) -> Iterator[Callable[[Callable[[], Any]], Queued]]:
    """Hold the sequencer in a batch of its own; writes queued inside the block (in the order
    they are queued) form the next batch when the block ends."""
    entered, release = threading.Event(), threading.Event()

    def hold(batch: Batch) -> None:
        entered.set()
        assert release.wait(WAIT)

    holder = Queued(lambda: ledger.sequencer.run(hold))
    assert entered.wait(WAIT)
    queued: list[Queued] = []

    def queue(call: Callable[[], Any]) -> Queued:
        write = Queued(call)
        deadline = time.monotonic() + WAIT
        while ledger.sequencer.waiting < len(queued) + 1:
            assert time.monotonic() < deadline, "the write did not reach the sequencer"
            time.sleep(0.001)
        queued.append(write)
        return write

    try:
        yield queue
    finally:
        release.set()
        holder.get()


@pytest.fixture
def people(ledger: Ledger, policy: Policy, make_token: Callable[..., str]) -> dict[str, Principal]:
    roles = {"tt": ("tt-leeds", "case_system"), "jcp": ("jcp-leeds-city", "case_system")}
    return {
        name: clients.authenticate(ledger, f"Bearer {make_token(org, role)}")
        for name, (org, role) in roles.items()
    }


def _consent(ledger: Ledger, by: Principal, nhs: str) -> WriteResult:
    return consents.record_consent(
        ledger,
        by,
        consents.ConsentInput(
            SubjectIdentifier.nhs_number(nhs), "referral", ("ea-tt-leeds",), REFERRAL, "verbal"
        ),
        None,
    )


def _decide(
    ledger: Ledger, by: Principal, nhs: str, idem: IdempotencyKey | None = None
) -> WriteResult:
    inp = decisions.DecisionInput(
        SubjectIdentifier.nhs_number(nhs), "tt-leeds", "ea-tt-leeds", "referral", REFERRAL
    )
    return decisions.decide(ledger, by, inp, idem)


def _checkpoints(ledger: Ledger) -> int:
    with ledger.db.read() as session:
        return session.execute(select(func.count()).select_from(LogCheckpoint)).scalar_one()


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_writes_queued_together_share_one_transaction_and_one_checkpoint(
    ledger: Ledger, people: dict[str, Principal]
) -> None:
    before = _checkpoints(ledger)
    with held(ledger) as queue:
        writes = [queue(lambda n=n: _consent(ledger, people["tt"], NHS[n])) for n in range(5)]
    receipts = [w.get().body["ledger"] for w in writes]
    # Arrival order is log order; one checkpoint covers them all, and each receipt verifies.
    first = receipts[0]["index"]
    assert [r["index"] for r in receipts] == list(range(first, first + 5))
    assert len({r["checkpoint"] for r in receipts}) == 1
    assert _checkpoints(ledger) == before + 1  # the holder's batch appended nothing: unsigned
    vkey = ledger.log_store.signer.verifier_key()
    cp = rfc.verify_checkpoint(receipts[0]["checkpoint"], vkey)
    assert cp.size == first + 5
    with ledger.db.read() as session:
        for r in receipts:
            leaf = session.get(LogEntry, r["index"]).leaf  # type: ignore[union-attr]
            proof = ledger.log_store.inclusion_proof(session, r["index"], cp.size)
            rfc.verify_inclusion(
                rfc.leaf_hash(leaf), r["index"], cp.size, proof.hashes, cp.root_hash
            )
    assert ledger.sequencer.stats.largest >= 5


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_withdrawal_earlier_in_a_batch_binds_a_decision_later_in_it(
    ledger: Ledger, people: dict[str, Principal]
) -> None:
    consent_id = _consent(ledger, people["tt"], NHS[0]).body["id"]
    assert _decide(ledger, people["tt"], NHS[0]).body["decision"] == "permit"
    with held(ledger) as queue:
        before = queue(lambda: _decide(ledger, people["tt"], NHS[0]))
        withdrawal = queue(
            lambda: consents.withdraw_consent(ledger, people["tt"], consent_id, None, None)
        )
        after = queue(lambda: _decide(ledger, people["tt"], NHS[0]))
    first, withdrawn, second = before.get().body, withdrawal.get().body, after.get().body
    assert first["decision"] == "permit"
    assert second["decision"] == "deny"
    assert first["ledger"]["index"] + 1 == withdrawn["ledger"]["index"]
    assert withdrawn["ledger"]["index"] + 1 == second["ledger"]["index"]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_consent_for_a_new_person_earlier_in_a_batch_is_seen_by_a_decision_later_in_it(
    ledger: Ledger, people: dict[str, Principal]
) -> None:
    """The batch loads everyone it decides about before its first write: a person it does
    not know yet, and one whose facts it has loaded, are read again once a write of the same
    batch has changed them."""
    with held(ledger) as queue:
        unknown_before = queue(lambda: _decide(ledger, people["tt"], NHS[7]))
        consent = queue(lambda: _consent(ledger, people["tt"], NHS[7]))
        known_after = queue(lambda: _decide(ledger, people["tt"], NHS[7]))
    before, recorded, after = unknown_before.get().body, consent.get().body, known_after.get().body
    assert before["decision"] == "deny"
    assert after["decision"] == "permit"
    assert after["consents"] == [recorded["id"]]
    assert before["subject_ref"] == recorded["subject_ref"] == after["subject_ref"]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_failing_use_case_is_undone_alone_and_the_rest_of_its_batch_is_recorded(
    ledger: Ledger, people: dict[str, Principal]
) -> None:
    consent_id = _consent(ledger, people["tt"], NHS[1]).body["id"]
    consents.withdraw_consent(ledger, people["tt"], consent_id, None, None)
    with ledger.db.read() as session:
        size = session.execute(select(func.count()).select_from(LogEntry)).scalar_one()

    def half_written(batch: Batch) -> None:
        # Appends, writes a projection row, then fails: all of it must go.
        ledger.log_store.append(
            batch.session,
            [{"v": 1, "type": "test.entry", "time": "2026-01-01T00:00:00Z", "data": {}}],
            ledger.clock(),
        )
        batch.session.execute(text("UPDATE organisations SET name = 'changed'"))
        raise DomainError("refused after writing")

    with held(ledger) as queue:
        ok_before = queue(lambda: _consent(ledger, people["tt"], NHS[2]))
        again = queue(
            lambda: consents.withdraw_consent(ledger, people["tt"], consent_id, None, None)
        )
        broken = queue(lambda: ledger.sequencer.run(half_written))
        ok_after = queue(lambda: _consent(ledger, people["tt"], NHS[3]))
    with pytest.raises(consents.AlreadyWithdrawn):
        again.get()
    with pytest.raises(DomainError, match="refused after writing"):
        broken.get()
    a, b = ok_before.get().body["ledger"], ok_after.get().body["ledger"]
    assert (a["index"], b["index"]) == (size, size + 1)
    with ledger.db.read() as session:
        assert session.execute(select(func.count()).select_from(LogEntry)).scalar_one() == size + 2
        names = session.execute(text("SELECT DISTINCT name FROM organisations")).scalars().all()
    assert "changed" not in names
    # The log is whole: the stored tree is the one the newest checkpoint signs.
    with ledger.db.read() as session:
        assert ledger.log_store.check_against_checkpoint(session) == size + 2


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_batch_that_fails_records_nothing_and_every_caller_is_told(
    ledger: Ledger, people: dict[str, Principal]
) -> None:
    with ledger.db.read() as session:
        size = session.execute(select(func.count()).select_from(LogEntry)).scalar_one()

    def breaks_the_transaction(batch: Batch) -> None:
        # A statement the database refuses outright (not a constraint): the batch cannot go on.
        batch.session.execute(text("SELECT * FROM no_such_table"))

    with held(ledger) as queue:
        ok = queue(lambda: _consent(ledger, people["tt"], NHS[4]))
        broken = queue(lambda: ledger.sequencer.run(breaks_the_transaction))
        also_ok = queue(lambda: _decide(ledger, people["tt"], NHS[4]))
    for write in (ok, broken, also_ok):
        with pytest.raises(BatchFailed) as failed:
            write.get()
        assert failed.value.status == 503
    with ledger.db.read() as session:
        assert session.execute(select(func.count()).select_from(LogEntry)).scalar_one() == size
    # The next batch goes through, over the same tree.
    assert _consent(ledger, people["tt"], NHS[4]).body["ledger"]["index"] == size


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_refusal_that_rested_on_a_write_of_a_failed_batch_is_not_given(
    ledger: Ledger, people: dict[str, Principal]
) -> None:
    """A refusal found after other writes of the same transaction may rest on them: if their
    batch then fails, the caller must be told to retry, never that the consent was already
    withdrawn (found in review)."""
    consent_id = _consent(ledger, people["tt"], NHS[1]).body["id"]

    def breaks_the_transaction(batch: Batch) -> None:
        batch.session.execute(text("SELECT * FROM no_such_table"))

    def withdraw() -> WriteResult:
        return consents.withdraw_consent(ledger, people["tt"], consent_id, None, None)

    with held(ledger) as queue:
        first, second = queue(withdraw), queue(withdraw)
        broken = queue(lambda: ledger.sequencer.run(breaks_the_transaction))
    # The first withdrawal is written on its own before the second runs again, first in its
    # batch, on what the first committed: so its refusal is true.
    assert first.get().status == 200
    with pytest.raises(consents.AlreadyWithdrawn):
        second.get()
    with pytest.raises(BatchFailed):
        broken.get()
    with ledger.db.read() as session:
        status = session.execute(select(Consent.status).where(Consent.id == consent_id))
        assert status.scalar_one() == "withdrawn"


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_an_error_after_the_commit_does_not_tell_callers_nothing_was_recorded(
    ledger: Ledger, people: dict[str, Principal]
) -> None:
    """Once a batch has committed, its receipts are the callers', whatever fails after the
    commit (found in review: they were told to retry, and a retry would record twice)."""

    def fails_after_commit(session: Any) -> None:
        if PUBLISHED in session.info:
            raise OSError("closing the record's lock failed")

    ledger.db._after_commit.insert(0, fails_after_commit)
    try:
        with held(ledger) as queue:
            writes = [queue(lambda n=n: _consent(ledger, people["tt"], NHS[2 + n])) for n in (0, 1)]
        answers = [w.get() for w in writes]
    finally:
        ledger.db._after_commit.remove(fails_after_commit)
    assert [a.status for a in answers] == [201, 201]
    with ledger.db.read() as session:
        for a in answers:
            assert session.get(LogEntry, a.body["ledger"]["index"]) is not None


def test_a_prepare_that_fails_refuses_only_its_own_write(
    ledger: Ledger, people: dict[str, Principal]
) -> None:
    def broken_prepare(batch: Batch) -> None:
        raise ValueError("prepare failed")

    with held(ledger) as queue:
        before = queue(lambda: _consent(ledger, people["tt"], NHS[2]))
        broken = queue(lambda: ledger.sequencer.run(lambda batch: None, broken_prepare))
        after = queue(lambda: _consent(ledger, people["tt"], NHS[3]))
    with pytest.raises(ValueError, match="prepare failed"):
        broken.get()
    assert [before.get().status, after.get().status] == [201, 201]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_retry_in_the_same_batch_as_its_original_gets_the_original_answer(
    ledger: Ledger, people: dict[str, Principal]
) -> None:
    _consent(ledger, people["tt"], NHS[5])
    principal = people["tt"]
    idem = IdempotencyKey(principal.client_id, "retry-1", b"\x01" * 32)
    other_body = IdempotencyKey(principal.client_id, "retry-1", b"\x02" * 32)
    with held(ledger) as queue:
        original = queue(lambda: _decide(ledger, principal, NHS[5], idem))
        retry = queue(lambda: _decide(ledger, principal, NHS[5], idem))
        misuse = queue(lambda: _decide(ledger, principal, NHS[5], other_body))
    first, again = original.get(), retry.get()
    assert not first.replayed
    assert again.replayed
    assert again.body == first.body
    with pytest.raises(DomainError) as reused:
        misuse.get()
    assert reused.value.slug == "idempotency-key-reused"
    # One decision logged, and its response kept for later retries, checkpoint and all.
    with ledger.db.read() as session:
        record = session.get(IdempotencyRecord, (principal.client_id, "retry-1"))
        assert record is not None
    assert _decide(ledger, principal, NHS[5], idem).body == first.body


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_writes_beyond_the_queue_limit_are_refused_with_nothing_recorded(
    ledger: Ledger, people: dict[str, Principal], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger.sequencer, "max_pending", 2)
    with held(ledger) as queue:
        queued = [queue(lambda n=n: _consent(ledger, people["tt"], NHS[6 + n])) for n in range(2)]
        with pytest.raises(SequencerBusy) as busy:
            _consent(ledger, people["jcp"], NHS[6])
        assert busy.value.status == 503
    assert [w.get().status for w in queued] == [201, 201]


def test_a_use_case_cannot_wait_for_a_batch_from_inside_one(ledger: Ledger) -> None:
    def nested(batch: Batch) -> None:
        ledger.sequencer.run(lambda inner: None)

    with pytest.raises(RuntimeError, match="inside one"):
        ledger.sequencer.run(nested)
    # The sequencer is not wedged by it.
    assert ledger.sequencer.run(lambda batch: "fine") == "fine"
