"""Consents and objections: recorded, confirmed, withdrawn; each change a signed log entry.

Every write is one transaction (``run_write``): lock the log head, check, append the entry, and
update the projections (``consents``, ``consent_events``, ``objections``) that decisions read,
so a withdrawal binds the very next request in any worker. Log entries carry ``subject_ref``,
never the person's identifier.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, cast, or_, select
from sqlalchemy.orm import Session

from app.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidRequest,
    LogUnavailable,
    NotFound,
    listed_twice,
)
from app.ids import new_id
from app.ledger.events import (
    ConsentConfirmed,
    ConsentGranted,
    ConsentWithdrawn,
    Event,
    Notify,
    ObjectionRecorded,
    ObjectionWithdrawn,
    time_text,
)
from app.models import (
    Consent,
    ConsentEvent,
    Disclosure,
    DisclosureConsent,
    Objection,
    Organisation,
)
from app.policy import engine
from app.services import organisations
from app.services.access.clients import Principal
from app.services.access.idempotency import IdempotencyKey, WriteResult, run_write
from app.services.access.links import check_link
from app.services.consents import capture, subjects
from app.services.container import Ledger
from app.services.decisions import policies
from app.services.log.log_store import Receipt
from app.services.log.projections import ACTIVE, WITHDRAWN, Written, append_events
from app.services.notifications import obligations
from app.text import with_article
from app.vocabulary import SIGNED_FORMS

# Who may act on a consent their organisation recorded (auditors and admins only read).
RECORDER_ROLES = ("case_system", "ig_lead", "patient_portal")


class AlreadyWithdrawn(Conflict):
    slug = "already-withdrawn"


class AlreadyConfirmed(Conflict):
    slug = "already-confirmed"


class NotConfirmable(Conflict):
    slug = "not-confirmable"


class AlreadyObjected(Conflict):
    slug = "already-objected"


@dataclass(frozen=True)
class ConsentInput:
    subject: subjects.SubjectIdentifier
    purpose: str
    recipients: Sequence[str]
    data_categories: Sequence[str]
    form: str
    evidence_sha256: str | None = None
    valid_from: datetime | None = None
    expires_at: datetime | None = None
    # When the person gave it, if before now: imports only (``import_consents``).
    given_at: datetime | None = None


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC: the one spelling used in the log, the projections and responses."""
    return None if value is None else time_text(value)


def consent_view(consent: Consent, events: Sequence[ConsentEvent]) -> dict[str, Any]:
    return {
        "id": consent.id,
        "status": consent.status,
        "subject_ref": consent.subject_ref,
        "purpose": consent.purpose,
        "recipients": list(consent.recipients),
        "data_categories": list(consent.data_categories),
        "form": consent.form,
        "evidence_sha256": consent.evidence_sha256,
        "valid_from": iso(consent.valid_from),
        "expires_at": iso(consent.expires_at),
        "recorded_by": consent.recorded_by,
        "recorded_at": iso(consent.recorded_at),
        # When the person gave it: an import's original date, else when it was recorded.
        "given_at": iso(consent.given_at or consent.recorded_at),
        "confirmed_by": consent.confirmed_by,
        "confirmed_at": iso(consent.confirmed_at),
        "withdrawn_at": iso(consent.withdrawn_at),
        "history": [
            {
                "event": e.event,
                "at": iso(e.at),
                "organisation": e.organisation_id,
                "ledger_index": e.ledger_index,
                **({"reason": e.reason} if e.reason else {}),
            }
            for e in sorted(events, key=lambda e: e.ledger_index)
        ],
    }


def objection_view(objection: Objection, *, reveal_recorder: bool = True) -> dict[str, Any]:
    """An objection; ``reveal_recorder=False`` leaves out which organisations recorded and
    withdrew it, which would tell an unrelated organisation where the person is treated."""
    history: list[dict[str, Any]] = [
        {
            "event": "recorded",
            "at": iso(objection.recorded_at),
            "organisation": objection.recorded_by,
            "ledger_index": objection.ledger_index,
        }
    ]
    if objection.withdrawn_index is not None:
        history.append(
            {
                "event": "withdrawn",
                "at": iso(objection.withdrawn_at),
                "organisation": objection.withdrawn_by,
                "ledger_index": objection.withdrawn_index,
            }
        )
    view: dict[str, Any] = {
        "id": objection.id,
        "scope": objection.scope,
        "status": objection.status,
        "subject_ref": objection.subject_ref,
        "recorded_by": objection.recorded_by,
        "recorded_at": iso(objection.recorded_at),
        "withdrawn_at": iso(objection.withdrawn_at),
        "history": history,
    }
    if not reveal_recorder:
        # The reference would let the reader follow the person through other lists.
        view["subject_ref"] = None
        view["recorded_by"] = None
        for event in history:
            event["organisation"] = None
    return view


def _events(session: Session, consent_id: str) -> list[ConsentEvent]:
    return list(
        session.execute(select(ConsentEvent).where(ConsentEvent.consent_id == consent_id)).scalars()
    )


def _append_one(
    ledger: Ledger, session: Session, now: datetime, event: Event
) -> tuple[Receipt, Written]:
    written = Written(session)
    (receipt,) = append_events(ledger.log_store, session, now, [event], written)
    return receipt, written


# -- recording ------------------------------------------------------------------------------------


def _problems(
    session: Session, principal: Principal, inp: ConsentInput, now: datetime, *, historical: bool
) -> list[FieldError]:
    """What is wrong with a consent to record, each fault named by its v1 field. A
    ``historical`` one (an import) may have ended already: expired consents are history worth
    keeping, and the engine refuses them on its own (``consent_expired``)."""
    errors = listed_twice("recipients", inp.recipients)
    errors += listed_twice("data_categories", inp.data_categories)
    known = organisations.registered_kinds(session, inp.recipients)
    for n, org in enumerate(inp.recipients):
        if org not in known:
            errors.append(
                FieldError(f"recipients.{n}", "is not a registered organisation id", "json")
            )
    if inp.form in SIGNED_FORMS and not inp.evidence_sha256:
        errors.append(
            FieldError(
                "evidence_sha256",
                f"required for {with_article(inp.form)} consent: the SHA-256 of the signed form",
                "json",
            )
        )
    if inp.valid_from and inp.expires_at and inp.valid_from >= inp.expires_at:
        errors.append(FieldError("expires_at", "must be later than valid_from", "json"))
    if inp.expires_at and inp.expires_at <= now and not historical:
        errors.append(FieldError("expires_at", "is in the past", "json"))
    if inp.given_at is not None and inp.given_at > now:
        errors.append(FieldError("given_at", "is in the future", "json"))
    if (problem := subjects.local_system_problem(session, inp.subject, principal)) is not None:
        errors.append(problem)
    return errors


def _validate(session: Session, principal: Principal, inp: ConsentInput, now: datetime) -> None:
    if errors := _problems(session, principal, inp, now, historical=False):
        raise InvalidRequest.from_fields("the consent is not valid", errors)


def _granted(principal: Principal, subject_ref: str, inp: ConsentInput) -> ConsentGranted:
    return ConsentGranted(
        consent_id=new_id("cns"),
        subject_ref=subject_ref,
        purpose=inp.purpose,
        recipients=tuple(inp.recipients),
        data_categories=tuple(inp.data_categories),
        form=inp.form,
        evidence_sha256=inp.evidence_sha256,
        valid_from=inp.valid_from,
        expires_at=inp.expires_at,
        recorded_by=principal.organisation_id,
        client_id=principal.client_id,
        given_at=inp.given_at,
    )


def record_consent(
    ledger: Ledger, principal: Principal, inp: ConsentInput, idem: IdempotencyKey | None
) -> WriteResult:
    """Record a consent captured by the caller's organisation (``POST /v1/consents``)."""

    def use_case(session: Session) -> tuple[int, dict[str, Any]]:
        now = ledger.clock()
        _validate(session, principal, inp, now)
        subject_ref = subjects.resolve(ledger, session, inp.subject, create=True)
        assert subject_ref is not None
        receipt, written = _append_one(ledger, session, now, _granted(principal, subject_ref, inp))
        (consent,) = written.inserted[Consent]
        (event,) = written.inserted[ConsentEvent]
        view = consent_view(Consent(**consent), [ConsentEvent(**event)])
        # What the listing asks for that the policy never permits: said, never refused, so
        # the record shows what the person agreed to (issue 15 item 5).
        reach = capture.reach_of(
            session, inp.purpose, principal.organisation_id, inp.recipients, inp.data_categories
        )
        warnings = [b.as_json() for b in reach.blocked] if reach is not None else []
        return 201, {**view, "warnings": warnings, "ledger": receipt}

    return run_write(ledger, idem, use_case)


def _objection_since(
    session: Session, ref: str | None, given_at: datetime, scopes: Collection[str] | None
) -> Objection | None:
    """An objection of the person, in force, recorded after ``given_at``, of one of ``scopes``
    (any scope when ``None``): the first such."""
    if ref is None:
        return None
    query = select(Objection).where(
        Objection.subject_ref == ref,
        Objection.status == ACTIVE,
        Objection.recorded_at > given_at,
    )
    if scopes is not None:
        query = query.where(Objection.scope.in_(scopes))
    return session.execute(query.order_by(Objection.ledger_index).limit(1)).scalar_one_or_none()


def _overriding_scopes(session: Session, purpose: str) -> frozenset[str] | None:
    """The objection scopes that, in the policy in force, override a consent for ``purpose``
    given before them (the engine's own reading); ``None`` (every scope, to be safe) before
    any policy is published."""
    try:
        policy = policies.current_policy(session)
    except LogUnavailable:
        return None
    return engine.overriding_scopes(policy, purpose)


def import_consents(
    ledger: Ledger,
    principal: Principal,
    items: Sequence[ConsentInput | None],
    idem: IdempotencyKey | None,
) -> WriteResult:
    """Record many consents, each perhaps given long ago (``given_at``) and perhaps ended
    since, in one write: every one or none (``POST /fhir/r4`` transaction Bundles and
    ``consent-ledger import``). Faults are named ``<n>.<field>`` with ``n`` the 0-based
    position, every fault of every item at once. A ``None`` item is one the caller already
    refused (its input could not be read): the others are still checked, so that one answer
    names every fault, and nothing is recorded.

    G3 (the engine orders consents and objections by log position): an imported consent is
    logged now, after any objection already recorded, so a consent given *before* an objection
    still in force would outrank it. It is refused: the person objected since, and only
    they can agree again (the lead's rule, issue 17). Only an objection the policy lets
    override a consent for that purpose counts (``engine.overriding_scopes``): the engine
    never ranks a consent against any other (a national data opt-out), so its order is moot.

    A consent that ended before (or as) it was given (now, when ``given_at`` is absent) was
    never in force: refused, naming ``expires_at``."""

    def use_case(session: Session) -> tuple[int, dict[str, Any]]:
        now = ledger.clock()
        errors: list[FieldError] = []
        for n, inp in enumerate(items):
            if inp is None:
                continue
            for e in _problems(session, principal, inp, now, historical=True):
                errors.append(FieldError(f"{n}.{e.field}", e.message, e.location))
            given = inp.given_at or now
            if inp.expires_at is not None and inp.expires_at <= given:
                errors.append(
                    FieldError(
                        f"{n}.expires_at",
                        f"is not after when the consent was given ({iso(given)}"
                        f"{'' if inp.given_at else ': now, as no date was sent'}): "
                        "it was never in force",
                        "json",
                    )
                )
            if inp.given_at is None:
                continue
            ref = subjects.resolve(ledger, session, inp.subject, create=False)
            scopes = _overriding_scopes(session, inp.purpose)
            objection = _objection_since(session, ref, inp.given_at, scopes)
            if objection is not None:
                errors.append(
                    FieldError(
                        f"{n}.given_at",
                        f"the consent was given before the person objected "
                        f"({iso(objection.recorded_at)}, {objection.scope}), and the objection "
                        f"is in force and overrides an earlier consent for {inp.purpose}: record "
                        "it afresh if the person agrees again",
                        "json",
                    )
                )
        if errors or None in items:
            raise InvalidRequest.from_fields(
                "the import is not valid; nothing was recorded", errors
            )
        events: list[Event] = []
        for inp in items:
            assert inp is not None  # refused above
            subject_ref = subjects.resolve(ledger, session, inp.subject, create=True)
            assert subject_ref is not None
            events.append(_granted(principal, subject_ref, inp))
        written = Written(session)
        append_events(ledger.log_store, session, now, events, written)
        # Each consent's log entry is in its history; the FHIR answer links to its receipt.
        views = [
            consent_view(Consent(**c), [ConsentEvent(**e)])
            for c, e in zip(written.inserted[Consent], written.inserted[ConsentEvent], strict=True)
        ]
        return 200, {"consents": views}

    return run_write(ledger, idem, use_case)


# -- withdrawal and confirmation ----------------------------------------------------------------


CONSENT_ID = re.compile(r"cns_[0-9a-f]{32}")
OBJECTION_ID = re.compile(r"obj_[0-9a-f]{32}")


def _consent_for_update(
    session: Session, principal: Principal, consent_id: str, now: datetime
) -> Consent:
    consent = session.get(Consent, consent_id) if CONSENT_ID.fullmatch(consent_id) else None
    # A person acting through a link: their page read the link before this write waited for
    # the lock, and an erasure (taking the consent with it) or a revocation may have committed
    # since. Checked before "no such consent", so an erased person's page answers as any dead
    # link does.
    check_link(session, principal, now, consent.subject_ref if consent else None)
    if consent is None:
        raise NotFound(f"there is no consent {consent_id!r}")
    return consent


def may_act_for_recorder(principal: Principal, recorded_by: str) -> bool:
    """The recording organisation's clients, and any patient portal (the person's own voice)."""
    if principal.role == "patient_portal":
        return True
    return principal.organisation_id == recorded_by and principal.role in RECORDER_ROLES


# What a client that does not see all of a person sees: consents its organisation recorded or is
# named in. The database drops the others: loading and decoding them only to drop them in Python
# made a person the service knows measurably slower to answer than a stranger (issue 12;
# bench/bench_timing.py). ``recipients`` is a JSON array of organisation ids (lower-case letters,
# digits and hyphens: no quote, escape or LIKE wildcard), so the quoted id occurs in its text
# exactly when the id is an element, on SQLite and PostgreSQL alike.
_SEEN_BY_ORG = or_(
    Consent.recorded_by == bindparam("org"),
    cast(Consent.recipients, String).like(bindparam("named")),
)
# The reads of a person's history, built once (building them per call cost more than running
# them); each is run whether or not the person is known.
_CONSENTS = (
    select(Consent).where(Consent.subject_ref == bindparam("ref")).order_by(Consent.ledger_index)
)
_CONSENTS_SEEN = _CONSENTS.where(_SEEN_BY_ORG)
_EVENTS = (
    select(ConsentEvent)
    .join(Consent, Consent.id == ConsentEvent.consent_id)
    .where(Consent.subject_ref == bindparam("ref"))
)
_EVENTS_SEEN = _EVENTS.where(_SEEN_BY_ORG)
_OBJECTIONS = (
    select(Objection)
    .where(Objection.subject_ref == bindparam("ref"))
    .order_by(Objection.ledger_index)
)
_ONE_SEEN = select(Consent.id).where(Consent.subject_ref == bindparam("ref"), _SEEN_BY_ORG).limit(1)


def _seen_by(principal: Principal) -> dict[str, str]:
    org = principal.organisation_id
    return {"org": org, "named": f'%"{org}"%'}


def organisation_sees_a_consent(session: Session, principal: Principal, ref: str) -> bool:
    """Whether the principal's organisation recorded, or is named in, a consent of ``ref``."""
    return session.execute(_ONE_SEEN, {"ref": ref, **_seen_by(principal)}).first() is not None


def may_withdraw(principal: Principal, recorded_by: str) -> bool:
    """The recording organisation's clients, and portals, as for any act on a consent. A link
    acts as the client that issued it, no more: the organisation holds the token it issues, so
    a link that could withdraw a consent which merely names it would let the organisation do
    through the link what the API refuses it. The person withdraws the rest through the
    recorder or a patient portal, which the page says."""
    return may_act_for_recorder(principal, recorded_by)


def recipients_to_notify(session: Session, consent: Consent) -> list[dict[str, str]]:
    """Organisations that received data under ``consent`` (one query), each with the
    obligation the policy in force attaches to a withdrawal for its purpose (G5)."""
    orgs = list(
        session.execute(
            select(Disclosure.to_org)
            .join(DisclosureConsent, DisclosureConsent.disclosure_id == Disclosure.id)
            .where(DisclosureConsent.consent_id == consent.id)
            .distinct()
            .order_by(Disclosure.to_org)
        ).scalars()
    )
    if not orgs:
        return []
    obligation = policies.current_policy(session).withdrawal.obligation_for(consent.purpose)
    return [{"organisation": org, "obligation": obligation} for org in orgs]


def withdraw_consent(
    ledger: Ledger,
    principal: Principal,
    consent_id: str,
    reason: str | None,
    idem: IdempotencyKey | None,
) -> WriteResult:
    def use_case(session: Session) -> tuple[int, dict[str, Any]]:
        now = ledger.clock()
        consent = _consent_for_update(session, principal, consent_id, now)
        if not may_withdraw(principal, consent.recorded_by):
            raise Forbidden(
                "only the recording organisation's clients, a patient portal, or the person "
                "through a link that shows the consent may withdraw this consent"
            )
        if consent.status == WITHDRAWN:
            raise AlreadyWithdrawn(
                f"consent {consent_id} was withdrawn at {iso(consent.withdrawn_at)}"
            )
        notify = recipients_to_notify(session, consent)
        receipt, _ = _append_one(
            ledger,
            session,
            now,
            ConsentWithdrawn(
                consent_id=consent.id,
                subject_ref=consent.subject_ref,
                reason=reason,
                by=principal.organisation_id,
                client_id=principal.client_id,
                notify=tuple(Notify(**n) for n in notify),
            ),
        )
        # Told in the same transaction: every organisation that received data under it, and
        # its recorder if someone else withdrew it.
        kind = policies.current_policy(session).withdrawal.obligation_for(consent.purpose)
        obligations.create(
            session,
            now,
            cause=ConsentWithdrawn.TYPE,
            cause_index=receipt.index,
            owed=obligations.owed_on_withdrawal(
                session, consent.id, consent.recorded_by, principal, kind
            ),
            subject_ref=consent.subject_ref,
            consent_id=consent.id,
            purpose=consent.purpose,
        )
        session.flush()
        view = consent_view(consent, _events(session, consent.id))
        return 200, {**view, "notify": notify, "ledger": receipt}

    return run_write(ledger, idem, use_case)


def confirm_consent(
    ledger: Ledger, principal: Principal, consent_id: str, idem: IdempotencyKey | None
) -> WriteResult:
    """A health organisation confirms a consent taken by DWP or a DWP-funded provider (G6)."""

    def use_case(session: Session) -> tuple[int, dict[str, Any]]:
        if principal.organisation_kind != "health":
            raise Forbidden(
                "only a health organisation's client may confirm a consent (G6); "
                f"{principal.organisation_id} is "
                f"{with_article(principal.organisation_kind)} organisation"
            )
        now = ledger.clock()
        consent = _consent_for_update(session, principal, consent_id, now)
        if principal.organisation_id not in consent.recipients:
            # Confirming is the health side vouching that the consent was freely given for a
            # share with it: a health organisation the consent does not name has no part in it.
            raise Forbidden(
                f"consent {consent_id} does not name {principal.organisation_id} as a "
                "recipient; only a health organisation the consent names may confirm it (G6)"
            )
        recorder = session.get(Organisation, consent.recorded_by)
        assert recorder is not None
        if recorder.kind not in policies.current_policy(session).confirmation.consents_recorded_by:
            raise NotConfirmable(
                f"consent {consent_id} was recorded by {with_article(recorder.kind)} "
                "organisation; only consents recorded by dwp or employment_dwp organisations "
                "need confirmation"
            )
        if consent.status == WITHDRAWN:
            raise AlreadyWithdrawn(f"consent {consent_id} was withdrawn; it cannot be confirmed")
        if consent.confirmed_by is not None:
            raise AlreadyConfirmed(
                f"consent {consent_id} was confirmed by {consent.confirmed_by} at "
                f"{iso(consent.confirmed_at)}"
            )
        receipt, _ = _append_one(
            ledger,
            session,
            now,
            ConsentConfirmed(
                consent_id=consent.id,
                subject_ref=consent.subject_ref,
                by=principal.organisation_id,
                client_id=principal.client_id,
            ),
        )
        session.flush()
        view = consent_view(consent, _events(session, consent.id))
        return 200, {**view, "ledger": receipt}

    return run_write(ledger, idem, use_case)


# -- objections --------------------------------------------------------------------------------


def record_objection(
    ledger: Ledger,
    principal: Principal,
    subject: subjects.SubjectIdentifier,
    scope: str,
    idem: IdempotencyKey | None,
) -> WriteResult:
    def resolve(session: Session) -> str:
        subjects.check_local_system(session, subject, principal)
        ref = subjects.resolve(ledger, session, subject, create=True)
        assert ref is not None
        return ref

    return _record_objection(ledger, principal, resolve, scope, idem)


def record_objection_for_ref(
    ledger: Ledger,
    principal: Principal,
    subject_ref: str,
    scope: str,
    idem: IdempotencyKey | None,
) -> WriteResult:
    """An objection made by the person on their own page (they are known by subject_ref)."""
    return _record_objection(ledger, principal, lambda _: subject_ref, scope, idem)


def _record_objection(
    ledger: Ledger,
    principal: Principal,
    resolve: Callable[[Session], str],
    scope: str,
    idem: IdempotencyKey | None,
) -> WriteResult:
    def use_case(session: Session) -> tuple[int, dict[str, Any]]:
        now = ledger.clock()
        subject_ref = resolve(session)
        # The person's page read its link (and so ``subject_ref``) before this write waited for
        # the lock: an erasure may have removed both since.
        check_link(session, principal, now, subject_ref)
        existing = session.execute(
            select(Objection).where(
                Objection.subject_ref == subject_ref,
                Objection.scope == scope,
                Objection.status == ACTIVE,
            )
        ).scalar()
        if existing is not None:
            raise AlreadyObjected(
                f"an active {scope} objection is already recorded ({existing.id})",
                extra={"objection_id": existing.id},
            )
        receipt, written = _append_one(
            ledger,
            session,
            now,
            ObjectionRecorded(
                objection_id=new_id("obj"),
                subject_ref=subject_ref,
                scope=scope,
                recorded_by=principal.organisation_id,
                client_id=principal.client_id,
            ),
        )
        (row,) = written.inserted[Objection]
        # Organisations that received the person's data on a basis the objection now blocks.
        obligations.create(
            session,
            now,
            cause=ObjectionRecorded.TYPE,
            cause_index=receipt.index,
            owed=obligations.owed_on_objection(
                session, policies.current_policy(session), subject_ref, scope
            ),
            subject_ref=subject_ref,
            objection_id=row["id"],
        )
        objection = Objection(**row)
        return 201, {**objection_view(objection), "ledger": receipt}

    return run_write(ledger, idem, use_case)


def withdraw_objection(
    ledger: Ledger, principal: Principal, objection_id: str, idem: IdempotencyKey | None
) -> WriteResult:
    def use_case(session: Session) -> tuple[int, dict[str, Any]]:
        now = ledger.clock()
        objection = (
            session.get(Objection, objection_id) if OBJECTION_ID.fullmatch(objection_id) else None
        )
        # As for a consent: a person acting through a link may withdraw only their own
        # objection, and only while the link is open (checked under the lock, before "not found").
        check_link(session, principal, now, objection.subject_ref if objection else None)
        if objection is None:
            raise NotFound(f"there is no objection {objection_id!r}")
        if not may_act_for_recorder(principal, objection.recorded_by):
            raise Forbidden(
                "only the recording organisation's clients or a patient portal may withdraw "
                "this objection"
            )
        if objection.status == WITHDRAWN:
            raise AlreadyWithdrawn(f"objection {objection_id} was withdrawn before")
        receipt, _ = _append_one(
            ledger,
            session,
            now,
            ObjectionWithdrawn(
                objection_id=objection.id,
                subject_ref=objection.subject_ref,
                by=principal.organisation_id,
                client_id=principal.client_id,
            ),
        )
        return 200, {**objection_view(objection), "ledger": receipt}

    return run_write(ledger, idem, use_case)


# -- reading ------------------------------------------------------------------------------------


def sees_all_of_a_person(principal: Principal) -> bool:
    return principal.role in subjects.WHOLE_RECORD_ROLES


def subject_history(
    ledger: Ledger, principal: Principal, subject: subjects.SubjectIdentifier
) -> dict[str, Any]:
    """A person's consents (with their history) and objections, as this client may see them:
    its organisation's consents and those naming it; everything for portals and auditors."""
    with ledger.db.read() as session:
        subjects.check_local_system(session, subject, principal, subjects.QUERY_SYSTEM)
        # A stranger is looked up like a known person, under a reference nobody has: stopping
        # early made an unknown NHS number answer measurably faster (issue 12).
        ref = subjects.resolve(ledger, session, subject, create=False)
        return history_for_ref(session, principal, ref or subjects.NOBODY)


def consent_for_reader(session: Session, principal: Principal, consent_id: str) -> dict[str, Any]:
    """One consent with its history, by id, under the same visibility as a person's history
    (:func:`history_for_ref`): a consent this client could not list is not found, as is one
    that does not exist (or whose person was erased)."""
    consent = session.get(Consent, consent_id) if CONSENT_ID.fullmatch(consent_id) else None
    visible = consent is not None and (
        sees_all_of_a_person(principal)
        or session.execute(
            _CONSENTS_SEEN.where(Consent.id == consent.id),
            {"ref": consent.subject_ref, **_seen_by(principal)},
        ).first()
        is not None
    )
    if consent is None or not visible:
        # The id is not echoed: the answer is the same whether it exists or not.
        raise NotFound("there is no consent with this id that this client may see")
    return consent_view(consent, _events(session, consent.id))


def history_for_ref(session: Session, principal: Principal, ref: str) -> dict[str, Any]:
    all_of_them = sees_all_of_a_person(principal)
    params = {"ref": ref} if all_of_them else {"ref": ref, **_seen_by(principal)}
    consents = list(session.execute(_CONSENTS if all_of_them else _CONSENTS_SEEN, params).scalars())
    org = principal.organisation_id
    events: dict[str, list[ConsentEvent]] = {c.id: [] for c in consents}
    for e in session.execute(_EVENTS if all_of_them else _EVENTS_SEEN, params).scalars():
        events[e.consent_id].append(e)
    objections = session.execute(_OBJECTIONS, {"ref": ref}).scalars()
    # Every client deciding about a share must know of objections (G3), but only portals,
    # auditors and the recording organisation learn who recorded one. The person's subject_ref
    # goes only to those who see all of their record, so the shape of the answer does not tell
    # other clients whether the service knows the person.
    body: dict[str, Any] = {
        "consents": [consent_view(c, events[c.id]) for c in consents],
        "objections": [
            objection_view(o, reveal_recorder=all_of_them or o.recorded_by == org)
            for o in objections
        ],
    }
    if all_of_them and ref != subjects.NOBODY:
        body["subject_ref"] = ref
    return body
