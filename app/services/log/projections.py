"""How each log event changes the projection tables, in one place.

The log is the source of truth; ``organisations``, ``api_clients``, ``consents``,
``consent_events``, ``objections``, ``policy_versions``, ``decisions``, ``disclosures`` and
``disclosure_consents`` are projections of it, kept for fast queries. :data:`PROJECTIONS` maps
each event class to the function that applies one event, with its ledger index and time, to
them. ``rebuild`` (and ``verify``) apply every entry to :class:`InMemory` and compare; writers
apply the event they append to :class:`Written`, in its transaction, so the row a writer stores
is by construction the row a rebuild expects.

Access links and accepted rollbacks are logged but not projected: a rollback changes no table,
and ``rebuild`` has never compared ``access_links`` (the log records a link's expiry to the
second, the row to the microsecond, and a revocation moves the row's expiry).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Insert, insert, inspect
from sqlalchemy.orm import Session

from app.ledger.entry import encode_entry
from app.ledger.events import (
    ClientCreated,
    ClientRevoked,
    ClientTokenRotated,
    ConsentConfirmed,
    ConsentGranted,
    ConsentWithdrawn,
    DecisionMade,
    DisclosureRecorded,
    Event,
    ObjectionRecorded,
    ObjectionWithdrawn,
    OrganisationRegistered,
    PolicyPublished,
    envelope,
)
from app.models import (
    ApiClient,
    Base,
    Consent,
    ConsentEvent,
    DecisionRecord,
    Disclosure,
    DisclosureConsent,
    Objection,
    Organisation,
    PolicyVersion,
    table,
)
from app.services.log.log_store import LogStore, Receipt

Row = dict[str, Any]

# A consent's and an objection's status (the projection's word for what the log records).
ACTIVE = "active"
WITHDRAWN = "withdrawn"


class Tables(Protocol):
    """Where an event's rows go: memory (``rebuild``) or the writer's transaction."""

    def insert(self, model: type[Base], row: Row) -> None:
        """A new row (every column the log determines)."""

    def update(self, model: type[Base], key: Any, changes: Row) -> None:
        """Change the row ``key`` (its primary key), which an earlier entry created."""

    def replace(self, model: type[Base], row: Row) -> None:
        """The row, whether or not one with its primary key exists."""


# -- the projection of each event type --------------------------------------------------------


def _organisation(e: OrganisationRegistered, idx: int, at: datetime, t: Tables) -> None:
    t.insert(
        Organisation,
        {
            "id": e.id,
            "name": e.name,
            "kind": e.kind,
            "funder": e.funder,
            "ods_code": e.ods_code,
            "registered_at": at,
            "ledger_index": idx,
        },
    )


def _client(e: ClientCreated, idx: int, at: datetime, t: Tables) -> None:
    t.insert(
        ApiClient,
        {
            "id": e.client_id,
            "name": e.name,
            "organisation_id": e.organisation,
            "role": e.role,
            "created_at": at,
            "ledger_index": idx,
            "revoked_at": None,
            "revoked_index": None,
            "rotated_at": None,
            "rotated_index": None,
        },
    )


def _client_revoked(e: ClientRevoked, idx: int, at: datetime, t: Tables) -> None:
    t.update(ApiClient, e.client_id, {"revoked_at": at, "revoked_index": idx})


def _token_rotated(e: ClientTokenRotated, idx: int, at: datetime, t: Tables) -> None:
    t.update(ApiClient, e.client_id, {"rotated_at": at, "rotated_index": idx})


def _consent_event(
    t: Tables,
    idx: int,
    at: datetime,
    consent_id: str,
    event: str,
    org: str,
    client: str,
    reason: str | None = None,
) -> None:
    t.insert(
        ConsentEvent,
        {
            "ledger_index": idx,
            "consent_id": consent_id,
            "event": event,
            "at": at,
            "organisation_id": org,
            "client_id": client,
            "reason": reason,
        },
    )


def _consent_granted(e: ConsentGranted, idx: int, at: datetime, t: Tables) -> None:
    t.insert(
        Consent,
        {
            "id": e.consent_id,
            "subject_ref": e.subject_ref,
            "purpose": e.purpose,
            "recipients": list(e.recipients),
            "data_categories": list(e.data_categories),
            "form": e.form,
            "evidence_sha256": e.evidence_sha256,
            "valid_from": e.valid_from,
            "expires_at": e.expires_at,
            "recorded_by": e.recorded_by,
            "recorded_by_client": e.client_id,
            "recorded_at": at,
            "given_at": e.given_at,
            "status": ACTIVE,
            "confirmed_by": None,
            "confirmed_at": None,
            "withdrawn_at": None,
            "ledger_index": idx,
        },
    )
    _consent_event(t, idx, at, e.consent_id, "granted", e.recorded_by, e.client_id)


def _consent_confirmed(e: ConsentConfirmed, idx: int, at: datetime, t: Tables) -> None:
    t.update(Consent, e.consent_id, {"confirmed_by": e.by, "confirmed_at": at})
    _consent_event(t, idx, at, e.consent_id, "confirmed", e.by, e.client_id)


def _consent_withdrawn(e: ConsentWithdrawn, idx: int, at: datetime, t: Tables) -> None:
    t.update(Consent, e.consent_id, {"status": WITHDRAWN, "withdrawn_at": at})
    _consent_event(t, idx, at, e.consent_id, "withdrawn", e.by, e.client_id, reason=e.reason)


def _objection(e: ObjectionRecorded, idx: int, at: datetime, t: Tables) -> None:
    t.insert(
        Objection,
        {
            "id": e.objection_id,
            "subject_ref": e.subject_ref,
            "scope": e.scope,
            "status": ACTIVE,
            "recorded_by": e.recorded_by,
            "recorded_by_client": e.client_id,
            "recorded_at": at,
            "ledger_index": idx,
            "withdrawn_at": None,
            "withdrawn_by": None,
            "withdrawn_index": None,
        },
    )


def _objection_withdrawn(e: ObjectionWithdrawn, idx: int, at: datetime, t: Tables) -> None:
    t.update(
        Objection,
        e.objection_id,
        {"status": WITHDRAWN, "withdrawn_at": at, "withdrawn_by": e.by, "withdrawn_index": idx},
    )


def _policy(e: PolicyPublished, idx: int, at: datetime, t: Tables) -> None:
    # Re-publishing a version moves it to its newest entry (one row per version).
    t.replace(
        PolicyVersion,
        {
            "version": e.version,
            "name": e.name,
            "document": encode_entry(e.policy).decode("utf-8"),
            "published_at": at,
            "ledger_index": idx,
        },
    )


def _decision(e: DecisionMade, idx: int, at: datetime, t: Tables) -> None:
    basis = e.legal_basis
    t.insert(
        DecisionRecord,
        {
            "id": e.decision_id,
            "subject_ref": e.subject_ref,
            "from_org": e.from_org,
            "to_org": e.to_org,
            "purpose": e.purpose,
            "data_categories": list(e.data_categories),
            "legal_basis_type": basis.type if basis else None,
            "legal_basis_reference": basis.reference if basis else None,
            "decision": e.answer.decision,
            "basis": e.answer.basis,
            "result": e.answer.data(),
            "policy_version": e.answer.policy_version,
            "client_id": e.client_id,
            "made_at": at,
            "ledger_index": idx,
        },
    )


def _disclosure(e: DisclosureRecorded, idx: int, at: datetime, t: Tables) -> None:
    t.insert(
        Disclosure,
        {
            "id": e.disclosure_id,
            "decision_id": e.decision_id,
            "subject_ref": e.subject_ref,
            "from_org": e.from_org,
            "to_org": e.to_org,
            "purpose": e.purpose,
            "data_categories": list(e.data_categories),
            "basis": e.basis,
            "legal_basis_type": e.legal_basis,
            "client_id": e.client_id,
            "disclosed_at": at,
            "ledger_index": idx,
        },
    )
    for consent_id in e.consents:
        t.insert(DisclosureConsent, {"disclosure_id": e.disclosure_id, "consent_id": consent_id})


E = TypeVar("E", bound=Event)
Projection = Callable[[Any, int, datetime, Tables], None]


def _entry(cls: type[E], apply: Callable[[E, int, datetime, Tables], None]) -> tuple[type, Any]:
    return cls, apply  # pairs each class with a function typed for it


PROJECTIONS: Mapping[type[Event], Projection] = dict(
    [
        _entry(OrganisationRegistered, _organisation),
        _entry(ClientCreated, _client),
        _entry(ClientRevoked, _client_revoked),
        _entry(ClientTokenRotated, _token_rotated),
        _entry(ConsentGranted, _consent_granted),
        _entry(ConsentConfirmed, _consent_confirmed),
        _entry(ConsentWithdrawn, _consent_withdrawn),
        _entry(ObjectionRecorded, _objection),
        _entry(ObjectionWithdrawn, _objection_withdrawn),
        _entry(PolicyPublished, _policy),
        _entry(DecisionMade, _decision),
        _entry(DisclosureRecorded, _disclosure),
    ]
)


def project(tables: Tables, index: int, time: datetime, event: Event) -> None:
    """Apply ``event``, logged at ``index`` and ``time``, to ``tables`` (events in no
    projection change nothing)."""
    apply = PROJECTIONS.get(type(event))
    if apply is not None:
        apply(event, index, time, tables)


# -- where the rows go ------------------------------------------------------------------------


_KEYS: dict[type[Base], tuple[str, ...]] = {}


def key_columns(model: type[Base]) -> tuple[str, ...]:
    names = _KEYS.get(model)
    if names is None:
        names = _KEYS[model] = tuple(c.name for c in inspect(model).primary_key)
    return names


def primary_key(model: type[Base], row: Row) -> Any:
    """The row's primary key: one value, or a tuple for a composite key."""
    names = key_columns(model)
    return row[names[0]] if len(names) == 1 else tuple(row[n] for n in names)


class InMemory:
    """The rows the projections should hold, per model and primary key (``rebuild``)."""

    def __init__(self) -> None:
        self.rows: dict[type[Base], dict[Any, Row]] = {}

    def of(self, model: type[Base]) -> dict[Any, Row]:
        return self.rows.setdefault(model, {})

    def insert(self, model: type[Base], row: Row) -> None:
        self.of(model)[primary_key(model, row)] = row

    def update(self, model: type[Base], key: Any, changes: Row) -> None:
        # KeyError when no earlier entry created the row: the log refers to what it lacks.
        self.of(model)[key].update(changes)

    replace = insert


_INSERTS: dict[type[Base], Insert] = {}


class Written:
    """The writer's transaction: inserts as Core statements built once (the ORM's unit of
    work cost more than the inserts on the busy paths), one statement per table for all the
    events of one :func:`append_events` (a list of decisions is one insert), in the order the
    tables were first written, so a row goes in after the rows it refers to; updates on the
    ORM row the writer loaded to check the change, which it goes on reading. ``extra`` adds
    columns the log does not hold (a client's token hash)."""

    def __init__(self, session: Session, extra: Mapping[type[Base], Row] | None = None) -> None:
        self.session = session
        self.extra = extra or {}
        # What was inserted, for the writer's answer (it shows the rows it stored).
        self.inserted: dict[type[Base], list[Row]] = {}
        self._pending: dict[type[Base], list[Row]] = {}

    def insert(self, model: type[Base], row: Row) -> None:
        extra = self.extra.get(model)
        if extra:
            row = {**row, **extra}
        self._pending.setdefault(model, []).append(row)
        self.inserted.setdefault(model, []).append(row)

    def flush(self) -> None:
        """Run the inserts collected so far."""
        connection = self.session.connection()
        for model, rows in self._pending.items():
            statement = _INSERTS.get(model)
            if statement is None:
                statement = _INSERTS[model] = insert(table(model))
            connection.execute(statement, rows)
        self._pending.clear()

    def update(self, model: type[Base], key: Any, changes: Row) -> None:
        self.flush()
        obj = self.session.get(model, key)
        if obj is None:
            raise LookupError(f"{model.__tablename__} {key} is not stored")
        for name, value in changes.items():
            setattr(obj, name, value)

    def replace(self, model: type[Base], row: Row) -> None:
        self.flush()
        existing = self.session.get(model, primary_key(model, row))
        if existing is not None:
            self.session.delete(existing)
            self.session.flush()
        self.insert(model, row)


def append_events(
    log_store: LogStore,
    session: Session,
    now: datetime,
    events: Sequence[Event],
    written: Written | None = None,
) -> list[Receipt]:
    """Log ``events`` at ``now`` and apply each to the projections with the function
    ``rebuild`` uses, in the caller's transaction: the entry's time and index and the rows'
    are one value, so a rebuild reproduces the rows."""
    receipts = log_store.append(session, [envelope(e, now) for e in events], now)
    written = written or Written(session)
    for event, receipt in zip(events, receipts, strict=True):
        project(written, receipt.index, now, event)
    written.flush()
    return receipts
