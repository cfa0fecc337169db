"""The log in the database: dense indexes, one checkpoint per write, proofs, fail-closed checks."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.ledger import merkle
from app.models import LogCheckpoint, LogEntry
from app.services.container import Ledger
from app.services.log.log_store import LogInconsistent, make_entry
from app.services.log.verify import verify_log
from tests.helpers import BOTH, tamper
from tests.support import rfc9162_verifier as rfc

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _append(ledger: Ledger, n: int, tag: str = "t") -> list[int]:
    out = []
    for i in range(n):
        with ledger.db.write() as session:
            (r,) = ledger.log_store.append(
                session, [make_entry("test.entry", NOW, {"tag": tag, "n": i})], NOW
            )
        out.append(r.index)
    return out


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_appends_are_dense_and_every_receipt_verifies(ledger: Ledger) -> None:
    vkey = ledger.log_store.signer.verifier_key()
    leaves: list[bytes] = []
    for i in range(20):
        with ledger.db.write() as session:
            (receipt,) = ledger.log_store.append(
                session, [make_entry("test.entry", NOW, {"n": i})], NOW
            )
        with ledger.db.read() as session:
            leaf = session.get(LogEntry, receipt.index).leaf  # type: ignore[union-attr]
        leaves.append(leaf)
        assert receipt.index == i
        cp = rfc.verify_checkpoint(receipt.checkpoint, vkey)
        assert cp.size == i + 1
        assert cp.root_hash == rfc.root_from_leaves(leaves)
        with ledger.db.read() as session:
            proof = ledger.log_store.inclusion_proof(session, receipt.index, cp.size)
        rfc.verify_inclusion(rfc.leaf_hash(leaf), i, cp.size, proof.hashes, cp.root_hash)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_batch_append_signs_one_checkpoint(ledger: Ledger) -> None:
    with ledger.db.write() as session:
        receipts = ledger.log_store.append(
            session, [make_entry("test.entry", NOW, {"n": i}) for i in range(5)], NOW
        )
    assert [r.index for r in receipts] == [0, 1, 2, 3, 4]
    assert len({r.checkpoint for r in receipts}) == 1
    with ledger.db.read() as session:
        sizes = session.execute(select(LogCheckpoint.tree_size)).scalars().all()
    assert sizes == [5]


def test_stored_proofs_equal_the_reference_tree(ledger: Ledger) -> None:
    _append(ledger, 37)
    reference = merkle.MemoryTree()
    with ledger.db.read() as session:
        for row in session.execute(select(LogEntry).order_by(LogEntry.idx)).scalars():
            reference.append(row.leaf)
        for size in range(1, 38):
            for index in range(size):
                got = ledger.log_store.inclusion_proof(session, index, size)
                assert got.hashes == reference.inclusion_proof(index, size)
                assert got.root_hash == reference.root(size)
            for old in range(1, size + 1):
                c = ledger.log_store.consistency_proof(session, old, size)
                assert c.hashes == reference.consistency_proof(old, size)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_rolled_back_write_leaves_no_gap(ledger: Ledger) -> None:
    _append(ledger, 2)

    def failing_use_case() -> None:
        with ledger.db.write() as session:
            ledger.log_store.append(session, [make_entry("test.entry", NOW, {"n": "x"})], NOW)
            raise RuntimeError("the use case failed after appending")

    with pytest.raises(RuntimeError):
        failing_use_case()
    assert _append(ledger, 1) == [2]
    with ledger.db.read() as session:
        assert verify_log(session, ledger.keyring()).ok


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_concurrent_writers_serialise_on_the_head(ledger: Ledger) -> None:
    errors: list[BaseException] = []

    def worker(tag: str) -> None:
        try:
            _append(ledger, 8, tag)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with ledger.db.read() as session:
        indexes = session.execute(select(LogEntry.idx).order_by(LogEntry.idx)).scalars().all()
        result = verify_log(session, ledger.keyring())
    assert indexes == list(range(32))
    assert result.ok, result.problem
    assert result.checkpoints == 32


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_start_up_check_refuses_a_tampered_tree(ledger: Ledger, database_url: str) -> None:
    _append(ledger, 3)
    assert ledger.health().ok
    tamper(ledger, "UPDATE log_entries SET leaf = :leaf WHERE idx = 2", leaf=b'{"forged":true}')
    with pytest.raises(LogInconsistent, match="entry 2"), ledger.db.read() as session:
        ledger.log_store.check_against_checkpoint(session)
    state = ledger.recheck_health()
    assert not state.ok
    assert "entry 2" in (state.reason or "")


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_append_refuses_to_extend_a_tree_that_contradicts_its_checkpoint(ledger: Ledger) -> None:
    _append(ledger, 4)
    tamper(ledger, "UPDATE log_nodes SET hash = :h WHERE level = 2 AND idx = 0", h=b"\0" * 32)
    with pytest.raises(LogInconsistent), ledger.db.write() as session:
        ledger.log_store.append(session, [make_entry("test.entry", NOW, {})], NOW)
    with ledger.db.read() as session:
        assert ledger.log_store.size(session) == 4


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_checks_see_one_snapshot_while_writers_append(ledger: Ledger) -> None:
    """The start-up check and verify read the head, entries and checkpoints in one snapshot, so
    a concurrent append never makes a healthy log look inconsistent."""
    _append(ledger, 3)
    done = threading.Event()

    def writer() -> None:
        try:
            _append(ledger, 60, "live")
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    checks = 0
    try:
        while not done.is_set() or checks < 5:
            with ledger.db.read() as session:
                ledger.log_store.check_against_checkpoint(session)
            with ledger.db.read() as session:
                result = verify_log(session, ledger.keyring())
            assert result.ok, result.problem
            checks += 1
    finally:
        thread.join()
    assert checks >= 5
