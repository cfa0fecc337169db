"""The served checkpoint's floor only ever rises, even with several hosts' submitters raising it
at once (on PostgreSQL, a read-then-write raise could lose the higher of two updates, and the
served checkpoint would then step back: a false rollback for every monitor)."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.models import WitnessPublished
from app.services.container import Ledger
from app.services.log.witnesses import _raise_floor
from tests.helpers import BOTH


def _floor(ledger: Ledger) -> int | None:
    with ledger.db.read() as session:
        row = session.get(WitnessPublished, 1)
        return None if row is None else row.tree_size


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_the_floor_never_goes_down(ledger: Ledger) -> None:
    assert _floor(ledger) is None
    _raise_floor(ledger, 10)
    _raise_floor(ledger, 4)
    assert _floor(ledger) == 10


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_raises_from_many_submitters_at_once_end_at_the_highest(ledger: Ledger) -> None:
    sizes = list(range(1, 201))
    random.Random(16).shuffle(sizes)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda size: _raise_floor(ledger, size), sizes))
    assert _floor(ledger) == 200
