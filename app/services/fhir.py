"""What the FHIR face reads, through the v1 services (same visibility, same lookups), plus the
two facts a FHIR resource carries that v1 views do not: each version's log leaf hash, and the
policy in force when a consent was recorded."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import LogEntry, Objection
from app.services.access.clients import Principal
from app.services.consents import consents, subjects
from app.services.container import Ledger
from app.services.decisions import decisions, policies
from app.services.notifications import obligations


@dataclass(frozen=True)
class ConsentRecords:
    """v1 consent views with what their FHIR versions need."""

    views: list[dict[str, Any]]
    leaf_hashes: dict[int, str]
    # consent id -> version of the policy in force when it was recorded (None: none was)
    policy_versions: dict[str, str | None]
    # v1 objection views (shown to every reader, G3); their log leaf hashes are in leaf_hashes
    objections: list[dict[str, Any]] = field(default_factory=list)


def leaf_hashes(session: Session, indexes: Iterable[int]) -> dict[int, str]:
    wanted = sorted(set(indexes))
    if not wanted:
        return {}
    rows = session.execute(
        select(LogEntry.idx, LogEntry.leaf_hash).where(LogEntry.idx.in_(wanted))
    ).all()
    return {idx: bytes(h).hex() for idx, h in rows}


_POLICY_ENTRIES = (
    select(LogEntry.idx).where(LogEntry.entry_type == "policy.published").order_by(LogEntry.idx)
)


def _policy_versions(
    ledger: Ledger, session: Session, views: list[dict[str, Any]]
) -> dict[str, str | None]:
    """The policy in force at each consent's first entry: the last ``policy.published`` entry
    before it (a republished older version is a new entry, so the log, not the
    ``policy_versions`` table, says which was in force)."""
    if not views:
        return {}
    published = list(session.execute(_POLICY_ENTRIES).scalars())
    versions: dict[int, str] = {}
    out: dict[str, str | None] = {}
    for view in views:
        first = min(e["ledger_index"] for e in view["history"])
        before = [i for i in published if i < first]
        if not before:
            out[view["id"]] = None
            continue
        idx = before[-1]
        if idx not in versions:
            entry = ledger.log_store.entry(session, idx).entry
            versions[idx] = str(entry["data"]["version"]) if entry else ""
        out[view["id"]] = versions[idx] or None
    return out


def _records(
    ledger: Ledger,
    session: Session,
    views: list[dict[str, Any]],
    objections: list[dict[str, Any]] | None = None,
) -> ConsentRecords:
    objections = objections or []
    indexes = [e["ledger_index"] for v in [*views, *objections] for e in v["history"]]
    return ConsentRecords(
        views, leaf_hashes(session, indexes), _policy_versions(ledger, session, views), objections
    )


def consents_of(
    ledger: Ledger, principal: Principal, subject: subjects.SubjectIdentifier
) -> ConsentRecords:
    """A person's consents and objections as ``GET /v1/consents`` shows them to this client."""
    with ledger.db.read() as session:
        subjects.check_local_system(session, subject, principal, subjects.QUERY_SYSTEM)
        # A stranger is looked up like a known person (see subjects.NOBODY).
        ref = subjects.resolve(ledger, session, subject, create=False)
        body = consents.history_for_ref(session, principal, ref or subjects.NOBODY)
        return _records(ledger, session, body["consents"], body["objections"])


def consent(ledger: Ledger, principal: Principal, consent_id: str) -> ConsentRecords:
    """One consent, if this client could see it in its person's history."""
    with ledger.db.read() as session:
        view = consents.consent_for_reader(session, principal, consent_id)
        return _records(ledger, session, [view])


def objection(ledger: Ledger, principal: Principal, objection_id: str) -> ConsentRecords:
    """One objection, as the person's history (``GET /v1/consents``) shows it to this client:
    every reader sees it (G3), who recorded it only as v1 reveals it."""
    with ledger.db.read() as session:
        found = (
            session.get(Objection, objection_id)
            if consents.OBJECTION_ID.fullmatch(objection_id)
            else None
        )
        if found is None:
            # Erasure deletes the row: an erased person's objection is unknown, as none would be.
            raise NotFound("there is no consent with this id that this client may see")
        # Shown as the person's history shows it, so v1's rule decides who sees the recorder.
        body = consents.history_for_ref(session, principal, found.subject_ref)
        (view,) = [o for o in body["objections"] if o["id"] == found.id]
        return _records(ledger, session, [], [view])


def disclosures_of(
    ledger: Ledger,
    principal: Principal,
    subject: subjects.SubjectIdentifier,
    page: int,
    page_size: int,
) -> tuple[dict[str, Any], dict[int, str]]:
    """A person's disclosures as ``GET /v1/disclosures`` shows them to this client, with the
    leaf hash of each one's log entry."""
    query = decisions.DisclosureQuery(subject=subject, page=page, page_size=page_size)
    result = decisions.list_disclosures(ledger, principal, query)
    with ledger.db.read() as session:
        hashes = leaf_hashes(session, (d["ledger_index"] for d in result["items"]))
    return result, hashes


def vocabulary_in_force(ledger: Ledger) -> tuple[dict[str, str], list[str]]:
    """The policy's tiers (category -> tier) and every obligation code it or a withdrawal can
    impose, for the CodeSystems."""
    with ledger.db.read() as session:
        policy = policies.current_policy(session)
    codes = {o for rule in policy.rules for o in rule.obligations}
    codes |= {policy.withdrawal.obligation, *policy.withdrawal.by_purpose.values()}
    codes |= {obligations.NOTIFY_RECIPIENT, obligations.CEASE_AND_ERASE}
    return dict(policy.categories), sorted(codes)
