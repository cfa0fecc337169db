"""Obligations, and the notifications that carry them (issue 15; ig-rules "Telling the
organisations that must act"; UK GDPR Art 19).

A withdrawal, an objection and an erasure each create, in the same transaction as their log
entry, one obligation per organisation that must act:

- every organisation that received data under what changed: ``notify_recipient``, or
  ``cease_processing_and_erase`` for a withdrawn evaluation consent (the policy's withdrawal
  rule says which) and for an erasure;
- the organisation that recorded a withdrawn consent, unless its own case system or IG lead
  withdrew it (the person did, through a portal or their link): ``note_withdrawal``.

An organisation's case systems read theirs from ``GET /v1/notifications`` and close each with an
acknowledgement, which is logged (``obligation.acknowledged``): an erase obligation is closed
only as ``erased`` with the hash of the organisation's own evidence of the destruction. A
notification names the consent and the disclosures concerned by id, date and categories, never
the person: the discloser passes the disclosure id along with the data it shares, so the
recipient finds its own copy by that id.

Obligations are the service's record of who was asked to do what; the log holds the entries
that caused them and every acknowledgement, not the obligations themselves (``rebuild`` leaves
them alone).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session, aliased

from app.errors import Conflict, FieldError, InvalidRequest, NotFound
from app.ids import new_id
from app.ledger.events import ObligationAcknowledged, time_text
from app.models import (
    DecisionRecord,
    Disclosure,
    DisclosureConsent,
    Obligation,
    Organisation,
    WebhookDelivery,
    table,
)
from app.policy import Policy
from app.policy.model import Rule
from app.services.access.clients import Principal
from app.services.access.idempotency import IdempotencyKey, WriteResult, run_write
from app.services.container import Ledger
from app.services.log.projections import append_events
from app.services.notifications import webhooks

NOTIFY_RECIPIENT = "notify_recipient"
CEASE_AND_ERASE = "cease_processing_and_erase"
NOTE_WITHDRAWAL = "note_withdrawal"

# What closes each kind of obligation.
OUTCOMES = {NOTIFY_RECIPIENT: "noted", NOTE_WITHDRAWAL: "noted", CEASE_AND_ERASE: "erased"}
STATES = ("open", "acknowledged", "all")
READER_ROLES = ("case_system", "ig_lead")
MAX_PAGE = 200
_SHA256 = re.compile(r"[0-9a-f]{64}")


class AlreadyAcknowledged(Conflict):
    slug = "already-acknowledged"


@dataclass(frozen=True)
class Owed:
    """One organisation's obligation, before it is stored."""

    organisation_id: str
    kind: str
    disclosures: list[dict[str, Any]] = field(default_factory=list)


_INSERT = insert(table(Obligation))


def create(
    session: Session,
    now: datetime,
    *,
    cause: str,
    cause_index: int,
    owed: Iterable[Owed],
    subject_ref: str | None,
    consent_id: str | None = None,
    objection_id: str | None = None,
    purpose: str | None = None,
) -> list[str]:
    """Store the obligations ``owed`` because of the entry at ``cause_index``; their ids."""
    owed_list = list(owed)
    rows = [
        {
            "id": new_id("obl"),
            "organisation_id": o.organisation_id,
            "kind": o.kind,
            "cause": cause,
            "cause_index": cause_index,
            "consent_id": consent_id,
            "objection_id": objection_id,
            "purpose": purpose,
            "disclosures": o.disclosures,
            "subject_ref": subject_ref,
            "created_at": now,
        }
        for o in owed_list
    ]
    if rows:
        session.connection().execute(_INSERT, rows)
        # Pushed as well as pulled: queued in this transaction, so never one without the other.
        webhooks.enqueue(
            session,
            now,
            ((str(r["id"]), o.organisation_id) for r, o in zip(rows, owed_list, strict=True)),
        )
    return [str(row["id"]) for row in rows]


def _received(session: Session, *where: Any) -> dict[str, list[dict[str, Any]]]:
    """The disclosures matching ``where``, by the organisation that received them."""
    rows = session.execute(
        select(
            Disclosure.id,
            Disclosure.to_org,
            Disclosure.disclosed_at,
            Disclosure.purpose,
            Disclosure.data_categories,
        )
        .where(*where)
        .order_by(Disclosure.disclosed_at, Disclosure.id)
    ).all()
    out: dict[str, list[dict[str, Any]]] = {}
    for disclosure_id, to_org, at, purpose, categories in rows:
        out.setdefault(to_org, []).append(_shared(disclosure_id, at, purpose, categories))
    return out


def _shared(
    disclosure_id: str, at: datetime, purpose: str, categories: Sequence[str]
) -> dict[str, Any]:
    """A disclosure as a notification names it: what the recipient finds its copy by."""
    return {
        "id": disclosure_id,
        "disclosed_at": time_text(at),
        "purpose": purpose,
        "data_categories": list(categories),
    }


def owed_on_withdrawal(
    session: Session, consent_id: str, recorded_by: str, withdrawn_by: Principal, kind: str
) -> list[Owed]:
    """Every organisation that received data under the consent (``kind``: the policy's
    withdrawal obligation for its purpose), and its recorder unless the recorder's own case
    system or IG lead withdrew it (the person, through a portal or their link, or another
    organisation did: the recorder's records must say so)."""
    under = select(DisclosureConsent.disclosure_id).where(
        DisclosureConsent.consent_id == consent_id
    )
    owed = [
        Owed(org, kind, shared)
        for org, shared in sorted(_received(session, Disclosure.id.in_(under)).items())
    ]
    by_recorder = (
        withdrawn_by.organisation_id == recorded_by
        and withdrawn_by.role in READER_ROLES
        and not withdrawn_by.via_link
    )
    # One obligation per organisation: a recorder that also received data under it is told
    # by that obligation already.
    if not by_recorder and all(o.organisation_id != recorded_by for o in owed):
        owed.append(Owed(recorded_by, NOTE_WITHDRAWAL))
    return owed


def owed_on_objection(session: Session, policy: Policy, subject_ref: str, scope: str) -> list[Owed]:
    """Every organisation that received the person's data under a rule the objection now
    blocks: one that an objection of this scope blocks (implied consent, G3) or overrides once
    made later (explicit consent for direct care, P1-consent to P7), and s251 support from a
    health organisation for the national data opt-out. Each share is judged by the rules its
    decision rested on, under the policy in force."""
    rules = {rule.id: rule for rule in policy.rules}
    sender = aliased(Organisation)
    rows = session.execute(
        select(
            Disclosure.id,
            Disclosure.to_org,
            Disclosure.disclosed_at,
            Disclosure.purpose,
            Disclosure.data_categories,
            Disclosure.legal_basis_type,
            sender.kind,
            DecisionRecord.result,
        )
        .join(DecisionRecord, DecisionRecord.id == Disclosure.decision_id)
        .join(sender, sender.id == Disclosure.from_org)
        .where(Disclosure.subject_ref == subject_ref)
        .order_by(Disclosure.disclosed_at, Disclosure.id)
    ).all()
    received: dict[str, list[dict[str, Any]]] = {}
    for disclosure_id, to_org, at, purpose, categories, legal_basis, kind, result in rows:
        rested_on = [rules[r["rule"]] for r in result.get("reasons", []) if r["rule"] in rules]
        if any(_blocked_by(rule, scope, legal_basis, kind) for rule in rested_on):
            received.setdefault(to_org, []).append(_shared(disclosure_id, at, purpose, categories))
    return [Owed(org, NOTIFY_RECIPIENT, shared) for org, shared in sorted(received.items())]


def _blocked_by(rule: Rule, scope: str, legal_basis: str | None, sender_kind: str) -> bool:
    if scope in (rule.blocked_by_objection, rule.overridden_by_later_objection):
        return True
    alternative = rule.alternative
    return (
        alternative is not None
        and legal_basis == alternative.legal_basis
        and alternative.blocked_by_objection == scope
        and sender_kind in alternative.when_from
    )


def owed_on_erasure(session: Session, subject_refs: Sequence[str]) -> list[Owed]:
    """Every organisation that received the person's data: it must erase what it holds (Art 17,
    19). Read before the person's rows are deleted."""
    received = _received(session, Disclosure.subject_ref.in_(subject_refs))
    return [Owed(org, CEASE_AND_ERASE, shared) for org, shared in sorted(received.items())]


def forget_person(session: Session, subject_refs: Sequence[str]) -> None:
    """Unlink the obligations about an erased person from them. Open ones stay open (an
    organisation must still note a withdrawal, or erase what it received, and may acknowledge
    under the id it was given, and a pending push of it is still made); they already name no
    one, and are no longer found by the person. Acknowledged ones are deleted, with their
    deliveries: their acknowledgements are in the log."""
    person = Obligation.subject_ref.in_(subject_refs)
    done = select(Obligation.id).where(person, Obligation.acknowledged_at.is_not(None))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.obligation_id.in_(done)))
    session.execute(delete(Obligation).where(person, Obligation.acknowledged_at.is_not(None)))
    session.execute(update(Obligation).where(person).values(subject_ref=None))


# -- who was told -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Told:
    """One organisation told of a change to a person's records, and whether it has done what it
    was asked (for the report and the person's own page)."""

    organisation_id: str
    kind: str
    cause: str
    consent_id: str | None
    objection_id: str | None
    disclosure_ids: tuple[str, ...]
    told_at: datetime
    acknowledged_at: datetime | None
    outcome: str | None


def told_about(session: Session, subject_ref: str) -> list[Told]:
    """Every obligation about the person, oldest first."""
    rows = session.execute(
        select(Obligation).where(Obligation.subject_ref == subject_ref).order_by(Obligation.seq)
    ).scalars()
    return [
        Told(
            o.organisation_id,
            o.kind,
            o.cause,
            o.consent_id,
            o.objection_id,
            tuple(d["id"] for d in o.disclosures),
            o.created_at,
            o.acknowledged_at,
            o.outcome,
        )
        for o in rows
    ]


@dataclass(frozen=True)
class OpenObligation:
    organisation_id: str
    kind: str
    cause: str
    consent_id: str | None
    objection_id: str | None
    created_at: datetime


def open_obligations(
    session: Session, organisation_id: str | None, limit: int = 50
) -> tuple[list[OpenObligation], int]:
    """The oldest open obligations (of one organisation, or of all with ``None``), and how many
    are open in all."""
    query = select(Obligation).where(Obligation.acknowledged_at.is_(None))
    if organisation_id is not None:
        query = query.where(Obligation.organisation_id == organisation_id)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.order_by(Obligation.seq).limit(limit)).scalars()
    return [
        OpenObligation(
            o.organisation_id, o.kind, o.cause, o.consent_id, o.objection_id, o.created_at
        )
        for o in rows
    ], total


# -- the feed -----------------------------------------------------------------------------------


def notification_view(o: Obligation) -> dict[str, Any]:
    acknowledged_at = o.acknowledged_at
    return {
        "id": o.id,
        "cursor": str(o.seq),
        "organisation": o.organisation_id,
        "obligation": o.kind,
        "state": "open" if acknowledged_at is None else "acknowledged",
        "created_at": time_text(o.created_at),
        "cause": {"type": o.cause, "ledger_index": o.cause_index},
        "consent_id": o.consent_id,
        "objection_id": o.objection_id,
        "purpose": o.purpose,
        "disclosures": list(o.disclosures),
        "acknowledgement": None
        if acknowledged_at is None
        else {
            "at": time_text(acknowledged_at),
            "outcome": o.outcome,
            "evidence_sha256": o.evidence_sha256,
            "client_id": o.acknowledged_by_client,
            "ledger_index": o.acknowledged_index,
        },
    }


def feed(
    ledger: Ledger, principal: Principal, state: str, after: int | None, limit: int
) -> dict[str, Any]:
    """The organisation's notifications, oldest first, after the cursor ``after``; ``next`` is
    the cursor to ask with for the rest (null when there is none)."""
    query = select(Obligation).where(Obligation.organisation_id == principal.organisation_id)
    if state == "open":
        query = query.where(Obligation.acknowledged_at.is_(None))
    elif state == "acknowledged":
        query = query.where(Obligation.acknowledged_at.is_not(None))
    if after is not None:
        query = query.where(Obligation.seq > after)
    with ledger.db.read() as session:
        rows = session.execute(query.order_by(Obligation.seq).limit(limit + 1)).scalars().all()
        items = [notification_view(o) for o in rows[:limit]]
    more = len(rows) > limit
    return {"items": items, "next": items[-1]["cursor"] if more else None}


# -- acknowledging ------------------------------------------------------------------------------


def _check_outcome(kind: str, outcome: str, evidence: str | None) -> None:
    expected = OUTCOMES[kind]
    problems = []
    if outcome != expected:
        problems.append(
            FieldError("outcome", f"a {kind} obligation is acknowledged as {expected!r}", "json")
        )
    if kind == CEASE_AND_ERASE and evidence is None:
        problems.append(
            FieldError(
                "evidence_sha256",
                "is required: the SHA-256 of your own record that the data was destroyed",
                "json",
            )
        )
    elif kind != CEASE_AND_ERASE and evidence is not None:
        problems.append(FieldError("evidence_sha256", f"is not taken for a {kind}", "json"))
    if evidence is not None and not _SHA256.fullmatch(evidence):
        problems.append(FieldError("evidence_sha256", "must be 64 lowercase hex digits", "json"))
    if problems:
        raise InvalidRequest.from_fields("the acknowledgement is not valid", problems)


def acknowledge(
    ledger: Ledger,
    principal: Principal,
    obligation_id: str,
    outcome: str,
    evidence_sha256: str | None,
    idem: IdempotencyKey | None,
) -> WriteResult:
    """Close one of the organisation's obligations; the acknowledgement is logged."""

    def use_case(session: Session) -> tuple[int, dict[str, Any]]:
        now = ledger.clock()
        obligation = session.execute(
            select(Obligation).where(Obligation.id == obligation_id)
        ).scalar_one_or_none()
        # Another organisation's obligation is not there for this one.
        if obligation is None or obligation.organisation_id != principal.organisation_id:
            raise NotFound(f"there is no notification {obligation_id!r} for this organisation")
        if obligation.acknowledged_at is not None:
            raise AlreadyAcknowledged(
                f"notification {obligation_id} was acknowledged at "
                f"{time_text(obligation.acknowledged_at)}",
                extra={"notification": notification_view(obligation)},
            )
        _check_outcome(obligation.kind, outcome, evidence_sha256)
        event = ObligationAcknowledged(
            obligation_id=obligation.id,
            cause_index=obligation.cause_index,
            kind=obligation.kind,
            organisation=principal.organisation_id,
            client_id=principal.client_id,
            outcome=outcome,
            evidence_sha256=evidence_sha256,
        )
        (receipt,) = append_events(ledger.log_store, session, now, [event])
        obligation.acknowledged_at = now
        obligation.outcome = outcome
        obligation.evidence_sha256 = evidence_sha256
        obligation.acknowledged_by_client = principal.client_id
        obligation.acknowledged_index = receipt.index
        session.flush()
        return 200, {**notification_view(obligation), "ledger": receipt}

    return run_write(ledger, idem, use_case)
