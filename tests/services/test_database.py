"""``Database.write``: what runs after a write transaction (the published-checkpoint record)
runs only once it has committed."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.services.container import Ledger
from tests.helpers import BOTH


@pytest.fixture
def committed(ledger: Ledger) -> list[int]:
    seen: list[int] = []
    ledger.db.after_commit(lambda session: seen.append(1))
    return seen


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_callbacks_run_after_a_commit(ledger: Ledger, committed: list[int]) -> None:
    with ledger.db.write() as session:
        session.execute(text("SELECT 1"))
    assert committed == [1]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_callbacks_do_not_run_when_the_body_raised(ledger: Ledger, committed: list[int]) -> None:
    def refused_write() -> None:
        with ledger.db.write() as session:
            session.execute(text("SELECT 1"))
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        refused_write()
    assert committed == []


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_callbacks_do_not_run_when_the_body_rolled_back_without_raising(
    ledger: Ledger, committed: list[int]
) -> None:
    """A body that rolls back and carries on (an error caught inside it) leaves the block
    without an exception, but nothing was committed, so nothing may be published."""
    with ledger.db.write() as session:
        session.execute(text("SELECT 1"))
        session.rollback()
    assert committed == []
