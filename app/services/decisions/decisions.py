"""Decisions (``POST /v1/decisions``) and disclosures (``POST``/``GET /v1/disclosures``).

A decision evaluates the policy in force against the person's consents and objections as they
stand inside the write transaction (after the log-head lock, so no withdrawal can commit between
reading the facts and recording the answer). Every decision, permit or deny, is a log entry.
A disclosure re-evaluates now: a share is recorded only if it is still permitted. It may
carry any of its decision's ``permitted_categories``, a deny's too (G7: a deny that refused some
categories still permitted the others).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from app.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidRequest,
    NotFound,
    describe,
    listed_twice,
)
from app.ids import new_id
from app.ledger.events import Answer, DecisionMade, DisclosureRecorded, LegalBasisRef
from app.models import (
    DecisionRecord,
    Disclosure,
    DisclosureConsent,
    Organisation,
)
from app.policy import (
    Decision,
    Facts,
    LegalBasis,
    Party,
    Policy,
    Request,
    evaluate,
)
from app.services import organisations
from app.services.access.clients import Principal
from app.services.access.idempotency import IdempotencyKey, WriteResult, run_write
from app.services.consents import subjects
from app.services.consents.consents import iso
from app.services.container import Ledger
from app.services.decisions import facts as subject_facts
from app.services.decisions import policies
from app.services.log.projections import Written, append_events
from app.services.log.sequencer import Batch

# Roles that may assert a legal basis instead of consent (ig-rules: "only accepted from a client
# with the ig_lead role").
LEGAL_BASIS_ROLES = ("ig_lead",)


class DecisionDenied(Conflict):
    slug = "decision-denied"


class ConsentWithdrawn(Conflict):
    slug = "consent-withdrawn"


class ObjectionRecorded(Conflict):
    slug = "objection-recorded"


@dataclass(frozen=True)
class DecisionInput:
    subject: subjects.SubjectIdentifier | subjects.SubjectRef
    from_org: str
    to_org: str
    purpose: str
    data_categories: Sequence[str]
    legal_basis: LegalBasis | None = None


@dataclass(frozen=True)
class FieldNames:
    """Where each field of a :class:`DecisionInput` was in the request, to name it when it is
    refused: in ``POST /v1/decisions``'s body by default; the CDS Hooks face names its
    context's members (``context.actor.0.value``)."""

    subject: str = "subject"
    subject_system: str = subjects.JSON_SYSTEM[0]
    from_: str = "from"
    to: str = "to"
    purpose: str = "purpose"
    data_categories: str = "data_categories"
    legal_basis: str = "legal_basis"


V1_FIELDS = FieldNames()


def _validate(
    session: Session,
    principal: Principal,
    inputs: Sequence[DecisionInput],
    policy: Policy,
    prefixes: Sequence[str],
    names: FieldNames = V1_FIELDS,
) -> list[tuple[Party, Party]]:
    """Every request checked before anything is written, each field at fault named with its
    request's prefix (``""`` alone, ``"3."`` in a list) and ``names``; one refusal for them
    all."""
    forbidden: list[FieldError] = []
    for at, inp in zip(prefixes, inputs, strict=True):
        if principal.organisation_id != inp.from_org:
            forbidden.append(
                FieldError(
                    f"{at}{names.from_}",
                    "a client may ask only about shares from its own organisation "
                    f"({principal.organisation_id})",
                    "json",
                )
            )
        if inp.legal_basis is not None and principal.role not in LEGAL_BASIS_ROLES:
            forbidden.append(
                FieldError(
                    f"{at}{names.legal_basis}",
                    "only an ig_lead client may assert a legal basis instead of consent",
                    "json",
                )
            )
    if forbidden:
        raise Forbidden(
            f"this client may not ask for this decision: {describe(forbidden)}",
            errors=forbidden,
        )
    # One query for every organisation the requests name.
    kinds = organisations.registered_kinds(
        session, sorted({org for inp in inputs for org in (inp.from_org, inp.to_org)})
    )
    errors: list[FieldError] = []
    for at, inp in zip(prefixes, inputs, strict=True):
        for field, org in ((names.from_, inp.from_org), (names.to, inp.to_org)):
            if org not in kinds:
                errors.append(
                    FieldError(f"{at}{field}", "is not a registered organisation id", "json")
                )
        if inp.purpose not in policy.purposes:
            errors.append(
                FieldError(
                    f"{at}{names.purpose}",
                    f"{inp.purpose!r} is not a purpose of the policy in force",
                    "json",
                )
            )
        for n, cat in enumerate(inp.data_categories):
            if cat not in policy.categories:
                errors.append(
                    FieldError(
                        f"{at}{names.data_categories}.{n}",
                        f"{cat!r} is not a data category of the policy in force",
                        "json",
                    )
                )
        errors += listed_twice(f"{at}{names.data_categories}", inp.data_categories)
        if inp.legal_basis is not None and inp.legal_basis.type not in policy.legal_bases:
            errors.append(
                FieldError(
                    f"{at}{names.legal_basis}.type",
                    f"{inp.legal_basis.type!r} is not a legal basis of the policy in force",
                    "json",
                )
            )
        if isinstance(inp.subject, subjects.SubjectRef):
            if not subjects.is_known(session, inp.subject):
                errors.append(
                    FieldError(
                        f"{at}{names.subject}",
                        "is not a person this service knows: a subject reference it gave, "
                        "of someone not erased",
                        "json",
                    )
                )
        else:
            where = (f"{at}{names.subject_system}", subjects.JSON_SYSTEM[1])
            problem = subjects.local_system_problem(session, inp.subject, principal, where)
            if problem is not None:
                errors.append(problem)
    if errors:
        raise InvalidRequest.from_fields("the decision request is not valid", errors)
    return [
        (Party(inp.from_org, kinds[inp.from_org]), Party(inp.to_org, kinds[inp.to_org]))
        for inp in inputs
    ]


def decision_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A decision as the API shows it, from its row."""
    return {
        "id": row["id"],
        **row["result"],
        "from": row["from_org"],
        "to": row["to_org"],
        "purpose": row["purpose"],
        "data_categories": list(row["data_categories"]),
        "subject_ref": row["subject_ref"],
        "made_at": iso(row["made_at"]),
    }


def _record_decisions(
    ledger: Ledger,
    session: Session,
    principal: Principal,
    inputs: Sequence[DecisionInput],
    prefixes: Sequence[str],
    names: FieldNames = V1_FIELDS,
) -> list[dict[str, Any]]:
    """Decide each request and record it, all in the caller's transaction: every request is
    validated first, then all are appended at once, so they take consecutive log indexes
    under one signed checkpoint, and a refusal anywhere records nothing."""
    policy = policies.current_policy(session)
    parties = _validate(session, principal, inputs, policy, prefixes, names)
    now = ledger.clock()
    # A person named twice (a referral to several recipients) is resolved, and created if new,
    # once. Their facts are loaded once too: a decision changes no consent or objection, so
    # each request in the list sees exactly what the first one does.
    refs: dict[subjects.SubjectIdentifier | subjects.SubjectRef, str] = {}
    facts: dict[str, Facts] = {}
    made: list[DecisionMade] = []
    for inp, (sender, recipient) in zip(inputs, parties, strict=True):
        subject_ref = refs.get(inp.subject)
        if subject_ref is None:
            subject_ref = subject_facts.subject_ref(ledger, session, inp.subject)
            refs[inp.subject] = subject_ref
        if subject_ref not in facts:
            facts[subject_ref] = subject_facts.load_facts(session, subject_ref)
        request = Request(
            sender,
            recipient,
            inp.purpose,
            tuple(inp.data_categories),
            inp.legal_basis,
        )
        decision = evaluate(policy, request, facts[subject_ref], now)
        legal = (
            LegalBasisRef(type=inp.legal_basis.type, reference=inp.legal_basis.reference)
            if inp.legal_basis
            else None
        )
        made.append(
            DecisionMade(
                decision_id=new_id("dec"),
                subject_ref=subject_ref,
                from_org=sender.id,
                to_org=recipient.id,
                purpose=inp.purpose,
                data_categories=tuple(inp.data_categories),
                legal_basis=legal,
                client_id=principal.client_id,
                answer=Answer.parse(decision.as_json()),
            )
        )
    # Logged and projected as rebuild projects them: the rows of every decision in one insert.
    written = Written(session)
    receipts = append_events(ledger.log_store, session, now, made, written)
    rows = written.inserted[DecisionRecord]
    return [
        {
            **decision_view(row),
            "ledger": {"index": receipt.index, "leaf_hash": receipt.leaf_hash.hex()},
        }
        for row, receipt in zip(rows, receipts, strict=True)
    ]


def _check_replayed_permit(ledger: Ledger, session: Session, body: Mapping[str, Any]) -> None:
    # A retried request gets its first answer, but never a permit that is no longer true
    # (a withdrawal, objection or expiry since, or a stricter policy): the caller might act
    # on it. It is re-evaluated now as a disclosure under it would be. A partial answer (a
    # `deny` that permits some categories, G7) rests on consents just as a permit does: a CDS
    # Hooks card shows it as CONSENT_PERMIT with the rest redacted.
    if not body.get("permitted_categories"):
        return
    record = session.get(DecisionRecord, body["id"])
    assert record is not None  # recorded in the same transaction as the replayed body
    _, facts = _still_permitted(
        session, record, record.result["permitted_categories"], ledger.clock()
    )
    # Still permitted, perhaps under another consent: the first answer names the consents
    # it relied on, so it is not replayed if one of them has been withdrawn (G5).
    relied_on = record.result["consents"]
    withdrawn = [c.id for c in facts.consents if c.id in relied_on and c.status != "active"]
    if withdrawn:
        raise ConsentWithdrawn(
            f"this request's earlier permit relied on consent {', '.join(withdrawn)}, "
            "which has since been withdrawn; ask again without the Idempotency-Key",
            extra={"consents": withdrawn, "decision_id": record.id},
        )


def decide(
    ledger: Ledger,
    principal: Principal,
    inp: DecisionInput,
    idem: IdempotencyKey | None,
    names: FieldNames = V1_FIELDS,
) -> WriteResult:
    """One decision; the answer's body is the decision. ``names`` says where the request held
    each field (``POST /v1/decisions``'s body by default), to name those refused."""

    def use_case(session: Session) -> tuple[int, dict[str, Any]]:
        (body,) = _record_decisions(ledger, session, principal, [inp], [""], names)
        return 200, body

    def check_replay(session: Session, body: dict[str, Any]) -> None:
        _check_replayed_permit(ledger, session, body)

    def prepare(batch: Batch) -> None:
        subject_facts.want(ledger, batch, [inp.subject])

    return run_write(ledger, idem, use_case, check_replay, prepare)


# The key of a list's answer in a WriteResult's body (and in its Idempotency-Key record).
LISTED = "decisions"


def decide_all(
    ledger: Ledger,
    principal: Principal,
    inputs: Sequence[DecisionInput],
    idem: IdempotencyKey | None,
) -> WriteResult:
    """Many decisions asked in one request (a referral to several recipients, a consult over
    several categories): each its own logged decision, all in one write use case, so all or
    none are recorded. The body holds them in order under :data:`LISTED`; a field at fault
    is named with its request's index (``3.purpose``)."""

    def use_case(session: Session) -> tuple[int, dict[str, Any]]:
        prefixes = [f"{n}." for n in range(len(inputs))]
        return 200, {LISTED: _record_decisions(ledger, session, principal, inputs, prefixes)}

    def check_replay(session: Session, body: dict[str, Any]) -> None:
        # Every permit in the list is re-checked, as the single form checks its one.
        for decision in body[LISTED]:
            _check_replayed_permit(ledger, session, decision)

    def prepare(batch: Batch) -> None:
        subject_facts.want(ledger, batch, [inp.subject for inp in inputs])

    return run_write(ledger, idem, use_case, check_replay, prepare)


# -- disclosures ----------------------------------------------------------------------------------


def _refusal(decision: Decision, relied_on: Sequence[str], facts: Facts) -> Conflict:
    withdrawn = [c.id for c in facts.consents if c.id in relied_on and c.status != "active"]
    extra = {
        "reasons": [
            {"code": r.code, "rule": r.rule, "message": r.message} for r in decision.reasons
        ],
        "denied_categories": [
            {"category": d.category, "reason": d.reason} for d in decision.denied_categories
        ],
    }
    if withdrawn:
        return ConsentWithdrawn(
            f"consent {', '.join(withdrawn)} was withdrawn after the decision; the share must "
            "not be made",
            extra={**extra, "consents": withdrawn},
        )
    if any(
        d.reason.startswith("objection") or d.reason == "national_data_opt_out"
        for d in decision.denied_categories
    ):
        return ObjectionRecorded(
            "the person has objected since the decision; the share must not be made", extra=extra
        )
    return DecisionDenied(
        "the share is not permitted now: "
        + ", ".join(f"{d.category} ({d.reason})" for d in decision.denied_categories),
        extra=extra,
    )


def _not_permitted_by(record: DecisionRecord, categories: Sequence[str]) -> DecisionDenied:
    """The refusal of a disclosure of ``categories`` that the deny ``record`` did not permit,
    each named with the reason the decision gave (``not_asked`` if it was not asked about)."""
    result = record.result
    given = {d["category"]: d["reason"] for d in result.get("denied_categories", ())}
    refused = [{"category": c, "reason": given.get(c, "not_asked")} for c in categories]
    permitted = result.get("permitted_categories", ())
    may = (
        f"only {', '.join(permitted)} may be disclosed under it"
        if permitted
        else "nothing may be disclosed under it"
    )
    return DecisionDenied(
        f"decision {record.id} was a deny that did not permit "
        + ", ".join(f"{d['category']} ({d['reason']})" for d in refused)
        + f"; {may}",
        extra={"reasons": list(result.get("reasons", ())), "denied_categories": refused},
    )


def _still_permitted(
    session: Session, record: DecisionRecord, categories: Sequence[str], now: datetime
) -> tuple[Decision, Facts]:
    """Evaluate a recorded permit again for ``categories``, now, under the policy now in force:
    a withdrawal, objection or expiry since the decision, or a stricter policy, refuses with the
    409 that says which (G5). Both a disclosure and a replayed permit are checked here."""
    sender = session.get(Organisation, record.from_org)
    recipient = session.get(Organisation, record.to_org)
    assert sender is not None
    assert recipient is not None
    legal = (
        LegalBasis(record.legal_basis_type, record.legal_basis_reference or "")
        if record.legal_basis_type
        else None
    )
    facts = subject_facts.load_facts(session, record.subject_ref)
    decision = evaluate(
        policies.current_policy(session),
        Request(
            Party(sender.id, sender.kind),
            Party(recipient.id, recipient.kind),
            record.purpose,
            tuple(categories),
            legal,
        ),
        facts,
        now,
    )
    if decision.decision != "permit":
        raise _refusal(decision, record.result.get("consents", ()), facts)
    return decision, facts


def disclosure_view(d: Disclosure, consents: Sequence[str]) -> dict[str, Any]:
    return {
        "id": d.id,
        "decision_id": d.decision_id,
        "subject_ref": d.subject_ref,
        "from": d.from_org,
        "to": d.to_org,
        "purpose": d.purpose,
        "data_categories": list(d.data_categories),
        "basis": d.basis,
        "legal_basis": d.legal_basis_type,
        "consents": list(consents),
        "disclosed_at": iso(d.disclosed_at),
        "ledger_index": d.ledger_index,
    }


def record_disclosure(
    ledger: Ledger,
    principal: Principal,
    decision_id: str,
    categories: Sequence[str],
    idem: IdempotencyKey | None,
) -> WriteResult:
    def use_case(session: Session) -> tuple[int, dict[str, Any]]:
        record = session.get(DecisionRecord, decision_id)
        if record is None:
            raise NotFound(f"there is no decision {decision_id!r}")
        if record.from_org != principal.organisation_id:
            raise Forbidden("a disclosure is recorded by the organisation that made the share")
        permitted = set(record.result.get("permitted_categories", ()))
        if record.decision != "permit":
            # A deny still permitted what it lists in permitted_categories (G7): those, and
            # only those, may be disclosed under it, re-checked now as a permit's are.
            outside = [c for c in categories if c not in permitted]
            if outside:
                raise _not_permitted_by(record, outside)
        errors = [
            FieldError(f"data_categories.{n}", f"{cat!r} was not permitted by the decision", "json")
            for n, cat in enumerate(categories)
            if cat not in permitted
        ]
        if len(set(categories)) != len(categories):
            errors.append(FieldError("data_categories", "a category is listed twice", "json"))
        if errors:
            raise InvalidRequest(
                "data_categories must be a subset of the decision's permitted categories",
                errors=errors,
            )
        now = ledger.clock()
        decision, _ = _still_permitted(session, record, categories, now)
        event = DisclosureRecorded(
            disclosure_id=new_id("dis"),
            decision_id=decision_id,
            subject_ref=record.subject_ref,
            from_org=record.from_org,
            to_org=record.to_org,
            purpose=record.purpose,
            data_categories=tuple(categories),
            basis=decision.basis,
            legal_basis=record.legal_basis_type,
            consents=tuple(decision.consents),
            policy_version=decision.policy_version,
            client_id=principal.client_id,
        )
        written = Written(session)
        (receipt,) = append_events(ledger.log_store, session, now, [event], written)
        (row,) = written.inserted[Disclosure]
        disclosure = Disclosure(**row)
        body = disclosure_view(disclosure, decision.consents)
        body["ledger"] = {"index": receipt.index, "leaf_hash": receipt.leaf_hash.hex()}
        return 201, body

    return run_write(ledger, idem, use_case)


@dataclass(frozen=True)
class DisclosureQuery:
    subject: subjects.SubjectIdentifier | None = None
    subject_ref: str | None = None
    from_org: str | None = None
    to_org: str | None = None
    purpose: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    organisation: str | None = None  # from or to
    # Only disclosures logged before this index: pins a paginated view (and its CSV) to the
    # moment it was first shown, so new disclosures do not shift its pages.
    before_index: int | None = None
    page: int = 1
    page_size: int = 50


def _visible(principal: Principal, q: Select[Any]) -> Select[Any]:
    # Auditors see all; a patient (through their own access link) sees all shares of their data.
    if principal.role in ("auditor", "patient_portal"):
        return q
    org = principal.organisation_id
    return q.where(or_(Disclosure.from_org == org, Disclosure.to_org == org))


def list_disclosures(
    ledger: Ledger, principal: Principal, query: DisclosureQuery
) -> dict[str, Any]:
    """Disclosure history, newest first: an IG lead sees shares from or to its organisation,
    an auditor all. This is the answer to a subject access request's "who received my data"."""
    with ledger.db.read() as session:
        q = _visible(principal, select(Disclosure))
        if query.subject is not None:
            # A stranger is looked up like a known person (see subjects.NOBODY).
            ref = subjects.resolve(ledger, session, query.subject, create=False)
            q = q.where(Disclosure.subject_ref == (ref or subjects.NOBODY))
        if query.subject_ref is not None:
            q = q.where(Disclosure.subject_ref == query.subject_ref)
        if query.organisation:
            q = q.where(
                or_(
                    Disclosure.from_org == query.organisation,
                    Disclosure.to_org == query.organisation,
                )
            )
        if query.before_index is not None:
            q = q.where(Disclosure.ledger_index < query.before_index)
        if query.from_org:
            q = q.where(Disclosure.from_org == query.from_org)
        if query.to_org:
            q = q.where(Disclosure.to_org == query.to_org)
        if query.purpose:
            q = q.where(Disclosure.purpose == query.purpose)
        if query.since:
            q = q.where(Disclosure.disclosed_at >= query.since)
        if query.until:
            q = q.where(Disclosure.disclosed_at < query.until)
        total = session.execute(select(func.count()).select_from(q.subquery())).scalar_one()
        rows = list(
            session.execute(
                q.order_by(Disclosure.ledger_index.desc())
                .offset((query.page - 1) * query.page_size)
                .limit(query.page_size)
            ).scalars()
        )
        links: dict[str, list[str]] = {r.id: [] for r in rows}
        if rows:
            for dc in session.execute(
                select(DisclosureConsent).where(DisclosureConsent.disclosure_id.in_(list(links)))
            ).scalars():
                links[dc.disclosure_id].append(dc.consent_id)
        return {
            "items": [disclosure_view(r, sorted(links[r.id])) for r in rows],
            "page": query.page,
            "page_size": query.page_size,
            "total": total,
        }
