"""Openings of committed leaves (log format 2): ``verify`` tells an erased entry from a lost or
altered opening, and every reader fails on the latter, naming the entry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select

from app.models import LogOpening
from app.policy import Policy
from app.services.container import Ledger
from tests.helpers import BOTH, bearer, tamper
from tests.nhs import valid_nhs_numbers

NHS = valid_nhs_numbers(2, start=943_478_600)


@pytest.fixture
def logged(client: FlaskClient, policy: Policy, make_token: Callable[..., str]) -> list[int]:
    """Two people's consents: the indexes of their committed entries."""
    token = make_token("tt-leeds", "case_system")
    out = []
    for nhs in NHS:
        resp = client.post(
            "/v1/consents",
            json={
                "subject": {"nhs_number": nhs},
                "purpose": "referral",
                "recipients": ["ea-tt-leeds"],
                "data_categories": ["identity"],
                "form": "verbal",
            },
            headers=bearer(token),
        )
        assert resp.status_code == 201
        out.append(resp.get_json()["ledger"]["index"])
    return out


def _opening(ledger: Ledger, index: int) -> LogOpening:
    with ledger.db.read() as session:
        row = session.execute(select(LogOpening).where(LogOpening.idx == index)).scalar_one()
        session.expunge(row)
        return row


# How an opening can go wrong: (the tamper, given the two indexes; what verify must say).
DAMAGE: dict[str, tuple[Callable[[Ledger, list[int]], None], str]] = {
    "deleted without an erasure": (
        lambda ledger, ix: tamper(ledger, "DELETE FROM log_openings WHERE idx = :i", i=ix[0]),
        "opening is missing, and no subject.erased entry covers it",
    ),
    "salt changed": (
        lambda ledger, ix: tamper(
            ledger, "UPDATE log_openings SET salt = :s WHERE idx = :i", s=b"\x00" * 32, i=ix[0]
        ),
        "the opening does not match the leaf's commitment",
    ),
    "swapped with another person's": (
        lambda ledger, ix: tamper(
            ledger,
            "UPDATE log_openings SET salt = :s, entry = :e WHERE idx = :i",
            s=_opening(ledger, ix[1]).salt,
            e=_opening(ledger, ix[1]).entry,
            i=ix[0],
        ),
        "the opening does not match the leaf's commitment",
    ),
    "filed under another person": (
        lambda ledger, ix: tamper(
            ledger,
            "UPDATE log_openings SET subject_ref = :r WHERE idx = :i",
            r=_opening(ledger, ix[1]).subject_ref,
            i=ix[0],
        ),
        "filed under another person than the entry names",
    ),
    "beside a clear leaf": (
        lambda ledger, ix: tamper(
            ledger,
            "INSERT INTO log_openings (idx, subject_ref, salt, entry) VALUES (0, 'sub_x', :s, :e)",
            s=b"\x01" * 32,
            e=b"{}",
        ),
        "in the clear but an opening is stored for it",
    ),
}


@pytest.mark.parametrize("backend", BOTH, indirect=True)
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_verify_names_an_opening_that_is_lost_or_altered(
    runner: FlaskCliRunner, ledger: Ledger, logged: list[int], damage: str
) -> None:
    assert runner.invoke(args=["verify"]).exit_code == 0
    change, said = DAMAGE[damage]
    change(ledger, logged)
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 1, result.output
    assert "log verification FAILED: entry " in result.output
    assert said in result.output
    rebuilt = runner.invoke(args=["rebuild", "--check"])
    assert rebuilt.exit_code == 1, rebuilt.output


def test_an_opening_cannot_be_changed_in_place(ledger: Ledger, logged: list[int]) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DatabaseError

    with pytest.raises(DatabaseError, match="never changed"), ledger.db.write_engine.begin() as c:
        c.execute(text("UPDATE log_openings SET salt = :s"), {"s": b"\x00" * 32})


def test_an_erased_entry_reads_as_erased_and_a_lost_one_as_unreadable(
    client: FlaskClient, ledger: Ledger, logged: list[int], make_token: Callable[..., Any]
) -> None:
    auditor = make_token("tt-leeds", "auditor")
    resp = client.post(
        "/v1/subjects/erasures",
        json={
            "subject": {"nhs_number": NHS[0]},
            "reason": "recorded_in_error",
            "reference": "IG-42",
        },
        headers=bearer(auditor),
    )
    assert resp.status_code == 201, resp.get_json()
    erased = client.get(f"/v1/log/entries/{logged[0]}", headers=bearer(auditor)).get_json()
    assert (erased["state"], erased["erased_by"]) == ("erased", resp.get_json()["ledger"]["index"])
    tamper(ledger, "DELETE FROM log_openings WHERE idx = :i", i=logged[1])
    lost = client.get(f"/v1/log/entries/{logged[1]}", headers=bearer(auditor)).get_json()
    assert (lost["state"], lost["entry"], lost["erased_by"]) == ("unreadable", None, None)
