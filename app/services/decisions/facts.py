"""The facts a decision is made on: a person's consents and objections, as they stand in the
write transaction (after the log-head lock, so no withdrawal can commit between reading them and
recording the answer).

In a batch of several writes, the decisions say beforehand whom they are about
(:func:`want`), and the batch loads every one of those people, and their facts, in three
queries rather than three per decision. A person whose consents or objections an earlier write
of the same batch changed (an entry about them that is not a decision or disclosure:
``log_store.FACTS_UNCHANGED``) is read again from the transaction, so a withdrawal earlier in a
batch binds a decision later in it. Nothing here outlives the transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.models import Consent, Objection, Organisation, Subject
from app.policy import ConsentFact, Facts, ObjectionFact
from app.services.consents import subjects
from app.services.container import Ledger
from app.services.log.log_store import changed_subjects
from app.services.log.sequencer import Batch

_CONSENT_COLUMNS = (
    Consent.id,
    Consent.purpose,
    Consent.recipients,
    Consent.data_categories,
    Consent.form,
    Consent.status,
    Consent.recorded_at,
    Organisation.kind,
    Consent.confirmed_by,
    Consent.valid_from,
    Consent.expires_at,
    Consent.recorded_by,
    Consent.ledger_index,
)
_OBJECTION_COLUMNS = (
    Objection.id,
    Objection.scope,
    Objection.status,
    Objection.recorded_at,
    Objection.ledger_index,
)
# Built once: building a select per call cost more than running it.
_CONSENTS_OF = (
    select(*_CONSENT_COLUMNS)
    .join(Organisation, Organisation.id == Consent.recorded_by)
    .where(Consent.subject_ref == bindparam("ref"))
)
_OBJECTIONS_OF = select(*_OBJECTION_COLUMNS).where(Objection.subject_ref == bindparam("ref"))
_CONSENTS_OF_MANY = (
    select(Consent.subject_ref, *_CONSENT_COLUMNS)
    .join(Organisation, Organisation.id == Consent.recorded_by)
    .where(Consent.subject_ref.in_(bindparam("refs", expanding=True)))
)
_OBJECTIONS_OF_MANY = select(Objection.subject_ref, *_OBJECTION_COLUMNS).where(
    Objection.subject_ref.in_(bindparam("refs", expanding=True))
)
_REFS_OF_MANY = select(Subject.lookup, Subject.subject_ref).where(
    Subject.lookup.in_(bindparam("lookups", expanding=True))
)

_BATCH_FACTS = "decision_facts"


def _consent_fact(c: Any) -> ConsentFact:  # a row of _CONSENTS_OF(_MANY)
    return ConsentFact(
        id=c.id,
        purpose=c.purpose,
        recipients=frozenset(c.recipients),
        categories=frozenset(c.data_categories),
        form=c.form,
        status=c.status,
        recorded_at=c.recorded_at,
        recorded_by_kind=c.kind,
        confirmed=c.confirmed_by is not None,
        valid_from=c.valid_from,
        expires_at=c.expires_at,
        recorded_by=c.recorded_by,
        sequence=c.ledger_index,
    )


def _objection_fact(o: Any) -> ObjectionFact:  # a row of _OBJECTIONS_OF(_MANY)
    return ObjectionFact(o.id, o.scope, o.status, o.recorded_at, o.ledger_index)


def load_facts(session: Session, subject_ref: str) -> Facts:
    """The person's consents and objections as they stand in this transaction (as rows, not
    ORM objects: nothing here is changed, and loading entities cost more than the query)."""
    batch = session.info.get(_BATCH_FACTS)
    if isinstance(batch, _BatchFacts):
        cached = batch.facts.get(subject_ref)
        if cached is not None and subject_ref not in changed_subjects(session):
            return cached
    consents = tuple(map(_consent_fact, session.execute(_CONSENTS_OF, {"ref": subject_ref})))
    objections = tuple(map(_objection_fact, session.execute(_OBJECTIONS_OF, {"ref": subject_ref})))
    return Facts(consents, objections)


def subject_ref(
    ledger: Ledger,
    session: Session,
    identifier: subjects.SubjectIdentifier | subjects.SubjectRef,
) -> str:
    """The person's ``subject_ref``, created if they are new (under the log-head lock); a
    :class:`~subjects.SubjectRef` is one already (checked to be known beforehand)."""
    if isinstance(identifier, subjects.SubjectRef):
        return identifier.value
    batch = session.info.get(_BATCH_FACTS)
    if isinstance(batch, _BatchFacts):
        # Found under the newest key only: a person the prefetch found under an older one is
        # resolved again, which moves their row to the newest key in this transaction.
        newest = subjects.lookup_key(ledger.identifier_keys.newest.secret, identifier)
        known = batch.refs.get(newest)
        if known is not None:
            return known
    ref = subjects.resolve(ledger, session, identifier, create=True)
    assert ref is not None
    return ref


class _BatchFacts:
    def __init__(self) -> None:
        self.lookups: set[bytes] = set()
        # People named by their subject_ref: no lookup to make, only their facts to load.
        self.named: set[str] = set()
        self.refs: dict[bytes, str] = {}
        self.facts: dict[str, Facts] = {}

    def load(self, session: Session) -> None:
        if self.lookups:
            rows = session.execute(_REFS_OF_MANY, {"lookups": sorted(self.lookups)})
            self.refs = {bytes(lookup): ref for lookup, ref in rows}
        refs = sorted(set(self.refs.values()) | self.named)
        if not refs:
            return
        consents: dict[str, list[ConsentFact]] = defaultdict(list)
        for c in session.execute(_CONSENTS_OF_MANY, {"refs": refs}):
            consents[c.subject_ref].append(_consent_fact(c))
        objections: dict[str, list[ObjectionFact]] = defaultdict(list)
        for o in session.execute(_OBJECTIONS_OF_MANY, {"refs": refs}):
            objections[o.subject_ref].append(_objection_fact(o))
        # Rows come back in no promised order; the policy engine orders by ledger index.
        self.facts = {
            ref: Facts(
                tuple(sorted(consents[ref], key=lambda c: c.sequence or 0)),
                tuple(sorted(objections[ref], key=lambda o: o.sequence or 0)),
            )
            for ref in refs
        }


def want(
    ledger: Ledger,
    batch: Batch,
    identifiers: Iterable[subjects.SubjectIdentifier | subjects.SubjectRef],
) -> None:
    """Say, before a batch runs, which people a decision in it is about."""
    session = batch.session
    facts = session.info.get(_BATCH_FACTS)
    if not isinstance(facts, _BatchFacts):
        facts = session.info[_BATCH_FACTS] = _BatchFacts()
        batch.when_prepared.append(facts.load)
    # Under every key held: a person's facts are prefetched whichever key their row is under.
    keys = ledger.identifier_keys
    for identifier in identifiers:
        if isinstance(identifier, subjects.SubjectRef):
            facts.named.add(identifier.value)
        else:
            facts.lookups.update(subjects.lookup_keys(keys, identifier))
