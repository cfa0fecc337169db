"""Erasing a person (UK GDPR Art 17; issue 14): ``POST /v1/subjects/erasures`` and
``consent-ledger erase``.

The log keeps a committed leaf for every entry about a person (log format 2), and their
openings apart from it. Erasing the person deletes, in one transaction, every opening filed
under their ``subject_ref``, their identifier mappings and every projection row about them, blanks
the recorded Idempotency-Key responses that described them, and appends a ``subject.erased``
entry that names none of it: who asked, why, the requester's own case reference, and the leaf
indexes that now commit to nothing anyone can open. No leaf changes, so every checkpoint,
proof and receipt issued before still verifies; a later lookup of the person finds nothing, and
a new consent for them starts a new ``subject_ref``.

Before the policy's retention period has passed, erasure is refused (the records are kept to
show compliance), unless they were recorded in error.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthenticated,
)
from app.ledger.events import (
    ConsentGranted,
    ConsentWithdrawn,
    ObjectionRecorded,
    ObjectionWithdrawn,
    SubjectErased,
    parse_event,
)
from app.models import (
    AccessLink,
    ApiClient,
    Consent,
    ConsentEvent,
    DecisionRecord,
    Disclosure,
    DisclosureConsent,
    IdempotencyRecord,
    IdempotencySubject,
    LogOpening,
    Objection,
    Subject,
)
from app.policy import Policy
from app.redaction import redact
from app.services.access.clients import Principal
from app.services.access.idempotency import ERASED_RESPONSE
from app.services.consents import subjects
from app.services.container import Ledger
from app.services.decisions import policies
from app.services.log import openings
from app.services.log.log_store import Receipt
from app.services.log.projections import append_events
from app.services.notifications import obligations

# Why a person is erased. ``recorded_in_error`` is the only reason that overrides the retention
# period; ``retention_expired`` is what ``consent-ledger retention run`` records.
REASONS = ("data_subject_request", "recorded_in_error", "retention_expired")
OVERRIDES_RETENTION = "recorded_in_error"
ERASER_ROLES = ("ig_lead", "auditor")

# The requester's own case number: short, plain, and never a person's identifier. Ten digits
# that pass the NHS-number check, with or without separators between them, could be an NHS
# number, which must not enter the log.
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:-]{0,63}")
_SEPARATORS = re.compile(r"[._/:-]")


class RetentionApplies(Conflict):
    slug = "retention-applies"


@dataclass(frozen=True)
class Erased:
    reason: str
    reference: str
    count: int
    indexes: tuple[int, ...]
    receipt: Receipt


def reference_problem(reference: str, field: str = "reference") -> FieldError | None:
    if not _REFERENCE.fullmatch(reference):
        return FieldError(
            field,
            "must be 1 to 64 letters, digits and . _ / : - (your own case number, starting "
            "with a letter or digit)",
            "json",
        )
    spaced = _SEPARATORS.sub(" ", reference)
    if redact(spaced) != spaced:
        return FieldError(
            field,
            "must not hold ten digits that pass the NHS number check, with or without "
            "separators (it could be an NHS number): use your own case number",
            "json",
        )
    return None


def check_request(reason: str, reference: str) -> None:
    problems = [p for p in [reference_problem(reference)] if p is not None]
    if reason not in REASONS:
        problems.append(FieldError("reason", f"must be one of {', '.join(REASONS)}", "json"))
    if problems:
        raise InvalidRequest.from_fields("the erasure request is not valid", problems)


# Tables holding a person's rows by subject_ref, deleted in this order (disclosures refer to
# decisions; consent events and disclosure links to consents, handled first).
_BY_SUBJECT = (Disclosure, DecisionRecord, Consent, Objection, AccessLink, Subject)


def _entries_about(
    session: Session,
    refs: list[str],
    legacy: dict[str, list[tuple[int, dict[str, Any]]]] | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """Every entry about the people ``refs`` name, in log order, with its index: opened from
    ``log_openings``, and, in a log begun before format 2, read from its clear leaf (from
    ``legacy``, :func:`_clear_by_person`, when the caller has read them already)."""
    rows = session.execute(
        select(LogOpening.idx, LogOpening.entry)
        .where(LogOpening.subject_ref.in_(refs))
        .order_by(LogOpening.idx)
    ).all()
    logged = [(idx, json.loads(entry)) for idx, entry in rows]
    clear = _clear_by_person(session) if legacy is None else legacy
    for ref in refs:
        logged += clear.get(ref, [])
    return sorted(logged, key=lambda pair: pair[0])


def _log_erasure(
    ledger: Ledger,
    session: Session,
    now: datetime,
    reason: str,
    reference: str,
    principal: Principal | None,
    indexes: tuple[int, ...],
    owed: list[obligations.Owed],
) -> Receipt:
    """Append the ``subject.erased`` entry listing ``indexes`` and, with it as their cause, the
    obligations of the organisations that received the erased data (naming no one)."""
    event = SubjectErased(
        reason=reason,
        reference=reference,
        organisation=None if principal is None else principal.organisation_id,
        client_id=None if principal is None else principal.client_id,
        count=len(indexes),
        indexes=indexes,
    )
    (receipt,) = append_events(ledger.log_store, session, now, [event])
    obligations.create(
        session,
        now,
        cause=SubjectErased.TYPE,
        cause_index=receipt.index,
        owed=owed,
        subject_ref=None,
    )
    return receipt


def _check_made_only_by(organisation_id: str, entries: list[dict[str, Any]]) -> None:
    """An IG lead erases a person only if its organisation made every record about them: it is
    the controller of its own records, not of other organisations' (which an erasure would
    destroy, objections and opt-outs included), and "recorded something" alone would be met by
    asking a decision about anyone. A person it made nothing about gets the same answer as a
    stranger."""
    makers = {parse_event(entry).made_by() for entry in entries}
    if organisation_id not in makers:
        raise NotFound(f"no records of this person were made by {organisation_id}")
    if makers != {organisation_id}:
        raise Forbidden(
            f"other organisations also made records about this person, which only an auditor "
            f"may erase; {organisation_id}'s IG lead erases a person whose records "
            f"{organisation_id} alone made"
        )


def last_events(entries: Iterable[dict[str, Any]]) -> dict[str | None, datetime]:
    """The time of the person's last logged event per purpose (``None``: events with no
    purpose, such as objections and links), from their entries. A withdrawal or confirmation
    counts for its consent's purpose."""
    purpose_of: dict[str, str] = {}
    last: dict[str | None, datetime] = {}
    for entry in entries:
        data = entry["data"]
        purpose = data.get("purpose")
        if entry["type"] == "consent.granted":
            purpose_of[data["consent_id"]] = purpose
        elif purpose is None and "consent_id" in data:
            purpose = purpose_of.get(data["consent_id"])
        at = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
        if purpose not in last or last[purpose] < at:
            last[purpose] = at
    return last


def erase(
    ledger: Ledger,
    principal: Principal | None,
    identifier: subjects.SubjectIdentifier,
    reason: str,
    reference: str,
) -> Erased:
    """Erase the person ``identifier`` names. ``principal`` is the API client asking (an IG
    lead, for a person its organisation recorded something about; an auditor, for anyone), or
    ``None`` for the operator's command. In a batch of its own: nothing else in the
    transaction may be about the person."""
    check_request(reason, reference)
    now = ledger.clock()

    def erase_in_batch(session: Session) -> Erased:
        if principal is not None:
            _still_valid(session, principal)
            subjects.check_local_system(session, identifier, principal)
        refs = subjects.resolve_all(ledger, session, identifier)
        # Asked under a reference nobody has for a stranger, so the work, and its timing, does
        # not say whether the service knows the person.
        logged = _entries_about(session, refs or [subjects.NOBODY])
        entries = [entry for _, entry in logged]
        if principal is not None and principal.role != "auditor":
            _check_made_only_by(principal.organisation_id, entries)
        elif not refs:
            raise NotFound("no records of this person")
        if reason != OVERRIDES_RETENTION:
            _check_retention(policies.current_policy(session), entries, now)
        indexes = tuple(idx for idx, _ in logged)
        # Read before the rows go: every organisation that received their data must erase it.
        owed = obligations.owed_on_erasure(session, refs)
        obligations.forget_person(session, refs)
        for ref in refs:
            _delete_rows(session, ref)
        receipt = _log_erasure(ledger, session, now, reason, reference, principal, indexes, owed)
        return Erased(reason, reference, len(indexes), indexes, receipt)

    return ledger.write(erase_in_batch, alone=True)


# -- retention: erasing everyone past the policy's period ----------------------------------------

# People erased per transaction (and so per subject.erased entry) by a retention run: small
# enough that the log-head lock is held briefly, large enough that a nightly run is one entry.
RETENTION_BATCH = 500
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RetentionRun:
    policy_version: str
    rule: str
    checked: int  # people with records in the log
    due: int  # people past the retention period when the log was scanned
    erased_people: int
    erased_entries: int
    receipts: tuple[Receipt, ...]  # the subject.erased entries written (none on a dry run)


_OPENINGS_BY_PERSON = (
    select(LogOpening.idx, LogOpening.subject_ref, LogOpening.entry)
    .order_by(LogOpening.subject_ref, LogOpening.idx)
    .execution_options(yield_per=2000)
)


def _clear_by_person(session: Session) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """The clear leaves about people of a log begun before format 2, by person (a bounded,
    older part of the log, held in memory for one pass)."""
    legacy: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for idx, subject_ref, entry in openings.clear_personal_entries(session):
        legacy.setdefault(subject_ref, []).append((idx, entry))
    return legacy


def _people(
    session: Session,
) -> tuple[int, Iterator[tuple[str, list[dict[str, Any]]]]]:
    """How many people have an entry in the log that is not erased, and each of them with their
    entries in log order: their openings, one person at a time, merged with the clear leaves of
    a log begun before format 2."""
    legacy = _clear_by_person(session)
    opened_refs = select(LogOpening.subject_ref).distinct()
    total = session.execute(select(func.count()).select_from(opened_refs.subquery())).scalar_one()
    total += len(set(legacy) - set(session.execute(opened_refs).scalars()))

    def merged(ref: str, opened: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        both = sorted(legacy.pop(ref, []) + opened, key=lambda pair: pair[0])
        return [entry for _, entry in both]

    def each() -> Iterator[tuple[str, list[dict[str, Any]]]]:
        ref: str | None = None
        theirs: list[tuple[int, dict[str, Any]]] = []
        for idx, subject_ref, opened in session.execute(_OPENINGS_BY_PERSON):
            if subject_ref != ref:
                if ref is not None:
                    yield ref, merged(ref, theirs)
                ref, theirs = subject_ref, []
            theirs.append((idx, json.loads(opened)))
        if ref is not None:
            yield ref, merged(ref, theirs)
        for only_clear in list(legacy):
            yield only_clear, merged(only_clear, [])

    return total, each()


def run_retention(
    ledger: Ledger,
    *,
    dry_run: bool = False,
    batch: int = RETENTION_BATCH,
    progress: Progress | None = None,
) -> RetentionRun:
    """Erase every person whose records are past the retention period of the policy in force
    (``reason`` ``retention_expired``, ``reference`` naming the run). One ``subject.erased``
    entry per run, or per ``batch`` people when more are due; a run that erases nobody logs one
    too, with a count of 0, so the log shows when retention was last enforced. ``dry_run``
    only counts. Each person is checked again, under the lock, before being erased."""
    now = ledger.clock()
    reference = f"retention-{now.strftime('%Y%m%dT%H%M%SZ')}"
    with ledger.db.read() as session:
        policy = policies.current_policy(session)
        retention = policy.retention
        if retention is None:
            raise RetentionApplies(
                f"the policy in force ({policy.version[:12]}) states no retention period: "
                "publish a policy with a retention section before running retention",
                extra={"rule": None, "kept_until": None},
            )
        total, people = _people(session)
        due: list[str] = []
        for checked, (ref, entries) in enumerate(people, start=1):
            if not in_force_records(entries, now) and (
                retention.kept_until(last_events(entries)) <= now
            ):
                due.append(ref)
            if progress is not None and (checked % 1000 == 0 or checked == total):
                progress(checked, total)
    if dry_run:
        return RetentionRun(policy.version, retention.rule, total, len(due), 0, 0, ())

    def erase_chunk(chunk: list[str]) -> Callable[[Session], tuple[int, int, Receipt]]:
        def in_batch(session: Session) -> tuple[int, int, Receipt]:
            indexes: list[int] = []
            owed: list[obligations.Owed] = []
            people = 0
            legacy = _clear_by_person(session)
            for ref in chunk:
                logged = _entries_about(session, [ref], legacy)
                if not logged:
                    continue  # erased since it was found
                # Checked again: an event since the scan may have extended the period.
                try:
                    _check_retention(policies.current_policy(session), [e for _, e in logged], now)
                except RetentionApplies:
                    continue
                indexes.extend(idx for idx, _ in logged)
                owed.extend(obligations.owed_on_erasure(session, [ref]))
                obligations.forget_person(session, [ref])
                _delete_rows(session, ref)
                people += 1
            receipt = _log_erasure(
                ledger,
                session,
                now,
                "retention_expired",
                reference,
                None,
                tuple(sorted(indexes)),
                owed,
            )
            return people, len(indexes), receipt

        return in_batch

    people_erased, entries_erased, receipts = 0, 0, []
    chunks = [due[i : i + batch] for i in range(0, len(due), batch)] or [[]]
    for chunk in chunks:
        erased_people, erased_entries, receipt = ledger.write(erase_chunk(chunk), alone=True)
        people_erased += erased_people
        entries_erased += erased_entries
        receipts.append(receipt)
    return RetentionRun(
        policy.version,
        retention.rule,
        total,
        len(due),
        people_erased,
        entries_erased,
        tuple(receipts),
    )


def _check_retention(policy: Policy, entries: list[dict[str, Any]], now: datetime) -> None:
    """Refuse unless the policy's retention period for the person's records has passed."""
    retention = policy.retention
    if retention is None:  # a policy published before retention was part of the document
        raise RetentionApplies(
            f"the policy in force ({policy.version[:12]}) states no retention period, so no "
            "record is known to be past it: publish a policy with a retention section",
            extra={"rule": None, "kept_until": None},
        )
    if not entries:  # nothing logged about the person: nothing is kept to show compliance
        return
    in_force = in_force_records(entries, now)
    if in_force:
        raise RetentionApplies(
            f"the person has records still in force ({', '.join(in_force)}): a consent or an "
            f"objection is kept while it binds decisions (rule {retention.rule}); erasure now "
            "is refused unless they were recorded in error",
            extra={"rule": retention.rule, "kept_until": None},
        )
    kept_until = retention.kept_until(last_events(entries))
    if kept_until > now:
        raise RetentionApplies(
            f"the person's records are kept until {_time(kept_until)} under rule "
            f"{retention.rule} ({retention.explanation}; {retention.source}); erasure before "
            "then is refused unless they were recorded in error",
            extra={"rule": retention.rule, "kept_until": _time(kept_until)},
        )


def in_force_records(entries: Iterable[dict[str, Any]], now: datetime) -> list[str]:
    """The ids of the person's consents and objections that still bind decisions (not withdrawn,
    not expired): erasing them would let shares through that the person refused, or stop ones
    they allowed without their say."""
    live: dict[str, None] = {}
    for entry in entries:
        event = parse_event(entry)
        if isinstance(event, ConsentGranted):
            if event.expires_at is None or event.expires_at > now:
                live[event.consent_id] = None
        elif isinstance(event, ConsentWithdrawn):
            live.pop(event.consent_id, None)
        elif isinstance(event, ObjectionRecorded):
            live[event.objection_id] = None
        elif isinstance(event, ObjectionWithdrawn):
            live.pop(event.objection_id, None)
    return list(live)


def _time(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def _still_valid(session: Session, principal: Principal) -> None:
    # Authentication ran before the lock: a revocation or rotation may have committed since.
    client = session.get(ApiClient, principal.client_id)
    if (
        client is None
        or client.revoked_at is not None
        or (principal.token_hash is not None and client.token_hash != principal.token_hash)
    ):
        raise Unauthenticated("a valid bearer token is required")


def _delete_rows(session: Session, ref: str) -> None:
    consent_ids = select(Consent.id).where(Consent.subject_ref == ref).scalar_subquery()
    disclosure_ids = select(Disclosure.id).where(Disclosure.subject_ref == ref).scalar_subquery()
    session.execute(
        delete(DisclosureConsent).where(
            DisclosureConsent.disclosure_id.in_(disclosure_ids)
            | DisclosureConsent.consent_id.in_(consent_ids)
        )
    )
    session.execute(delete(ConsentEvent).where(ConsentEvent.consent_id.in_(consent_ids)))
    for model in _BY_SUBJECT:
        session.execute(delete(model).where(model.subject_ref == ref))
    session.execute(delete(LogOpening).where(LogOpening.subject_ref == ref))
    # A recorded response stays (a retry must not run its request again) but says nothing.
    keys = session.execute(
        select(IdempotencySubject.client_id, IdempotencySubject.key).where(
            IdempotencySubject.subject_ref == ref
        )
    ).all()
    for client_id, key in keys:
        session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.client_id == client_id, IdempotencyRecord.key == key)
            # The fingerprint is an HMAC of the request, NHS number included: replaced too.
            .values(status_code=ERASED_RESPONSE, body="{}", fingerprint=secrets.token_bytes(32))
        )
    session.execute(delete(IdempotencySubject).where(IdempotencySubject.subject_ref == ref))


def erasure_view(erased: Erased) -> dict[str, Any]:
    return {
        "reason": erased.reason,
        "reference": erased.reference,
        "count": erased.count,
        "indexes": list(erased.indexes),
        "ledger": erased.receipt.as_json(),
    }
