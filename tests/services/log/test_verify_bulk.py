"""``verify_log`` checks each batch in bulk and falls back to the entry-by-entry reference
check: both must give the same result (first bad entry, message, checkpoints counted), also for
damage in nodes that span batches and in checkpoints signed in the middle of one."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from app.models import LogCheckpoint
from app.services.container import Ledger
from app.services.log import verify
from app.services.log.log_store import make_entry
from app.services.log.verify import verify_log
from tests.helpers import BOTH, tamper

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SIZE = 10_300  # three batches of verify.BATCH (5,000), the last one short


def _build(ledger: Ledger) -> list[int]:
    """Uneven appends, so checkpoints fall anywhere in a batch; returns their sizes."""
    rng = random.Random(3)
    done = 0
    while done < SIZE:
        n = min(rng.choice([1, 2, 333, 1_500]), SIZE - done)
        with ledger.db.write() as session:
            ledger.log_store.append(
                session, [make_entry("bulk", NOW, {"n": done + i}) for i in range(n)], NOW
            )
        done += n
    with ledger.db.read() as session:
        return list(session.execute(select(LogCheckpoint.tree_size)).scalars())


def _both_ways(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    with ledger.db.read() as session:
        bulk = verify_log(session, ledger.keyring())
    with monkeypatch.context() as m:
        m.setattr(verify, "_check_batch_in_bulk", lambda *args: False)
        with ledger.db.read() as session:
            by_entry = verify_log(session, ledger.keyring())
    return bulk, by_entry


BAD = b"\1" * 32


@pytest.mark.parametrize(
    ("sql", "params", "named"),
    [
        ("UPDATE log_entries SET leaf = :v WHERE idx = 9000", {"v": b'{"forged":1}'}, "entry 9000"),
        ("UPDATE log_nodes SET hash = :h WHERE level = 13 AND idx = 0", {"h": BAD}, "entry 8191"),
        ("UPDATE log_nodes SET hash = :h WHERE level = 2 AND idx = 2499", {"h": BAD}, "entry 9999"),
        (
            "UPDATE log_nodes SET hash = :h WHERE level = 3 AND idx = 1250",
            {"h": BAD},
            "entry 10007",
        ),
        ("DELETE FROM log_nodes WHERE level = 0 AND idx = 5000", {}, "entry 5000"),
        ("DELETE FROM log_entries WHERE idx = 5000", {}, "entry 5000 is missing"),
        ("DELETE FROM log_entries WHERE idx >= 10100", {}, "only 10100 entries"),
        (
            "UPDATE log_checkpoints SET note = replace(note, 'localhost', 'localhosx') "
            "WHERE tree_size = (SELECT min(tree_size) FROM log_checkpoints WHERE tree_size > 5001)",
            {},
            "no valid signature",
        ),
    ],
)
def test_bulk_check_and_reference_agree_on_damage(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, sql: str, params: dict[str, Any], named: str
) -> None:
    _build(ledger)
    tamper(ledger, sql, **params)
    bulk, by_entry = _both_ways(ledger, monkeypatch)
    assert not bulk.ok
    assert named in (bulk.problem or "")
    assert bulk == by_entry


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_bulk_check_and_reference_agree_on_a_good_log(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = _build(ledger)
    bulk, by_entry = _both_ways(ledger, monkeypatch)
    assert bulk.ok, bulk.problem
    assert bulk.checkpoints == len(sizes)
    assert bulk == by_entry
