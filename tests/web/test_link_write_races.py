"""A patient page write races whatever ends its link (issue 14 review).

The page reads the access link before its write queues for the log-head lock. If an erasure,
a revocation of the link or of its issuing client, or the link's expiry lands in between, the
write must still be refused: otherwise it logs an entry (and, for an objection, a row and an
opening) under the reference of a person who has just been erased, where no mapping leads and a
second erasure cannot reach it. Each race is reproduced deterministically: resolve the link as
the page does, let the other event commit, then make the write.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

import app.web.patient as patient_page
from app.errors import NotFound
from app.models import Consent, ConsentEvent, LogEntry, LogOpening, Objection
from app.policy import Policy
from app.services.access import clients
from app.services.access.web_sessions import (
    PatientAccess,
    resolve_access_link,
    revoke_access_link,
)
from app.services.consents import consents, erasure, subjects
from app.services.container import Ledger
from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers

NHS = valid_nhs_numbers(1, start=943_479_300)[0]


@dataclass
class Person:
    """A person with a referral consent and a national data opt-out recorded by tt-leeds, and a
    portal's link to their page."""

    consent_id: str
    token: str
    link_id: str
    portal_token: str
    objection_id: str


@pytest.fixture
def person(client: FlaskClient, policy: Policy, make_token: Callable[..., str]) -> Person:
    given = client.post(
        "/v1/consents",
        headers=bearer(make_token("tt-leeds", "case_system")),
        json={
            "subject": {"nhs_number": NHS},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity"],
            "form": "verbal",
        },
    )
    assert given.status_code == 201, given.get_json()
    opted_out = client.post(
        "/v1/objections",
        headers=bearer(make_token("tt-leeds", "case_system")),
        json={"subject": {"nhs_number": NHS}, "scope": "national_data_opt_out"},
    )
    assert opted_out.status_code == 201, opted_out.get_json()
    portal = make_token("tt-leeds", "patient_portal")
    link = client.post(
        "/v1/subjects/access-links", headers=bearer(portal), json={"subject": {"nhs_number": NHS}}
    )
    assert link.status_code == 201, link.get_json()
    body = link.get_json()
    return Person(
        given.get_json()["id"],
        body["url"].rsplit("/p/", 1)[1],
        body["id"],
        portal,
        opted_out.get_json()["id"],
    )


# -- what ends the link between the page's read of it and its write -----------------------------


def _erase(ledger: Ledger, p: Person, _: pytest.MonkeyPatch) -> None:
    erasure.erase(
        ledger, None, subjects.SubjectIdentifier.nhs_number(NHS), "recorded_in_error", "RACE-1"
    )


def _revoke_link(ledger: Ledger, p: Person, _: pytest.MonkeyPatch) -> None:
    portal = clients.authenticate(ledger, f"Bearer {p.portal_token}")
    revoke_access_link(ledger, portal, p.link_id)


def _revoke_issuer(ledger: Ledger, p: Person, _: pytest.MonkeyPatch) -> None:
    clients.revoke_client(ledger, p.portal_token.split(".", 1)[0])


def _rotate_issuer(ledger: Ledger, p: Person, _: pytest.MonkeyPatch) -> None:
    clients.rotate_token(ledger, p.portal_token.split(".", 1)[0])


def _expire(ledger: Ledger, p: Person, monkeypatch: pytest.MonkeyPatch) -> None:
    real = ledger.clock
    monkeypatch.setattr(ledger, "clock", lambda: real() + timedelta(days=8))


ENDINGS: dict[str, Callable[[Ledger, Person, pytest.MonkeyPatch], None]] = {
    "person erased": _erase,
    "link revoked": _revoke_link,
    "issuer revoked": _revoke_issuer,
    "issuer's token rotated": _rotate_issuer,
    "link expired": _expire,
}

# -- the page's writes, made as its handlers make them -------------------------------------------


def _object(ledger: Ledger, access: PatientAccess, _: Person) -> Any:
    return consents.record_objection_for_ref(
        ledger, access.principal, access.link.subject_ref, "direct_care", None
    )


def _withdraw(ledger: Ledger, access: PatientAccess, p: Person) -> Any:
    return consents.withdraw_consent(
        ledger, access.principal, p.consent_id, "person_withdrew", None
    )


def _withdraw_objection(ledger: Ledger, access: PatientAccess, p: Person) -> Any:
    return consents.withdraw_objection(ledger, access.principal, p.objection_id, None)


WRITES = {
    "objection": _object,
    "withdrawal": _withdraw,
    "objection withdrawal": _withdraw_objection,
}


def _written(ledger: Ledger, ref: str) -> tuple[Any, ...]:
    """Everything a write through the link could leave: log entries, the person's openings,
    objections, and their consents' statuses and events."""
    with ledger.db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(LogEntry)),
            session.scalar(
                select(func.count()).select_from(LogOpening).where(LogOpening.subject_ref == ref)
            ),
            session.scalar(
                select(func.count()).select_from(Objection).where(Objection.subject_ref == ref)
            ),
            sorted(
                session.execute(
                    select(Consent.id, Consent.status).where(Consent.subject_ref == ref)
                ).all()
            ),
            session.scalar(
                select(func.count())
                .select_from(ConsentEvent)
                .join(Consent, Consent.id == ConsentEvent.consent_id)
                .where(Consent.subject_ref == ref)
            ),
        )


@pytest.mark.parametrize("backend", BOTH, indirect=True)
@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("write", WRITES)
def test_a_write_through_a_link_that_ended_after_it_was_read_is_refused(
    ledger: Ledger, person: Person, monkeypatch: pytest.MonkeyPatch, write: str, ending: str
) -> None:
    access = resolve_access_link(ledger, person.token)  # what the page's POST handler reads first
    assert access is not None
    ref = access.link.subject_ref
    ENDINGS[ending](ledger, person, monkeypatch)
    before = _written(ledger, ref)
    with pytest.raises(NotFound, match="access link has ended") as refused:
        WRITES[write](ledger, access, person)
    assert refused.value.status == 404
    assert _written(ledger, ref) == before
    if ending == "person erased":
        # Nothing under the erased reference for a second erasure to miss.
        assert before[1:] == (0, 0, [], 0)


# -- the page itself ------------------------------------------------------------------------------


def _csrf(client: FlaskClient, token: str) -> str:
    form = re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"/p/{token}/object").text)
    assert form
    return form.group(1)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
@pytest.mark.parametrize("ending", ["person erased", "link revoked"])
@pytest.mark.parametrize("write", WRITES)
def test_the_page_answers_a_write_racing_the_end_of_its_link_as_a_dead_link(
    client: FlaskClient,
    ledger: Ledger,
    person: Person,
    monkeypatch: pytest.MonkeyPatch,
    write: str,
    ending: str,
) -> None:
    csrf = _csrf(client, person.token)
    path = {
        "objection": f"/p/{person.token}/object",
        "withdrawal": f"/p/{person.token}/consents/{person.consent_id}/withdraw",
        "objection withdrawal": f"/p/{person.token}/objections/{person.objection_id}/withdraw",
    }[write]
    read = resolve_access_link(ledger, person.token)
    assert read is not None
    ref = read.link.subject_ref
    ended: list[tuple[Any, ...]] = []

    # The other event commits just after the handler has read the link, as it would while the
    # page's write waited for the log-head lock.
    def resolve_then_end(led: Ledger, token: str) -> PatientAccess | None:
        access = resolve_access_link(led, token)
        ENDINGS[ending](led, person, monkeypatch)
        ended.append(_written(led, ref))
        return access

    monkeypatch.setattr(patient_page, "resolve_access_link", resolve_then_end)
    resp = client.post(path, data={"csrf_token": csrf})
    assert resp.status_code == 404
    assert "This link does not work" in resp.text
    # Only the ending was logged (the erasure or the revocation), nothing of the page's write.
    assert ended == [_written(ledger, ref)]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_link_cannot_withdraw_another_persons_consent_through_the_service(
    client: FlaskClient, ledger: Ledger, person: Person, make_token: Callable[..., str]
) -> None:
    """The page looks the consent up among the person's own before it writes; the write checks
    it again under the lock against the link's person, so the rule does not rest on the page."""
    other = valid_nhs_numbers(1, start=943_479_400)[0]
    theirs = client.post(
        "/v1/consents",
        headers=bearer(make_token("tt-leeds", "case_system")),
        json={
            "subject": {"nhs_number": other},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity"],
            "form": "verbal",
        },
    ).get_json()
    access = resolve_access_link(ledger, person.token)
    assert access is not None
    before = _written(ledger, theirs["subject_ref"])
    with pytest.raises(NotFound, match="does not open that record"):
        consents.withdraw_consent(ledger, access.principal, theirs["id"], "person_withdrew", None)
    assert _written(ledger, theirs["subject_ref"]) == before
    assert before[3] == [(theirs["id"], "active")]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_link_cannot_withdraw_another_persons_objection_through_the_service(
    client: FlaskClient, ledger: Ledger, person: Person, make_token: Callable[..., str]
) -> None:
    """As for a consent: the write checks the objection's person against the link's."""
    other = valid_nhs_numbers(1, start=943_479_400)[0]
    theirs = client.post(
        "/v1/objections",
        headers=bearer(make_token("tt-leeds", "case_system")),
        json={"subject": {"nhs_number": other}, "scope": "direct_care"},
    ).get_json()
    access = resolve_access_link(ledger, person.token)
    assert access is not None
    before = _written(ledger, theirs["subject_ref"])
    with pytest.raises(NotFound, match="does not open that record"):
        consents.withdraw_objection(ledger, access.principal, theirs["id"], None)
    assert _written(ledger, theirs["subject_ref"]) == before
