"""SQLAlchemy tables, and nothing else: behaviour lives in ``app.services``.

The log tables (``log_entries``, ``log_nodes``, ``log_checkpoints``) are append-only; the
migrations add triggers that refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL).
``log_openings`` refuses UPDATE only: deleting an opening is how a person is erased.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way in and out, on SQLite (which has no zones) as well."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table(model: type[Base]) -> Table:
    """The Core table of a mapped class, for hot-path statements that skip the ORM: an insert
    of an entity, even without objects, goes through the ORM's bulk-insert machinery, which
    costs more than the statement."""
    return Base.metadata.tables[model.__tablename__]


class LogHead(Base):
    """One row (id = 1): the size and root the next append builds on; locked by every append."""

    __tablename__ = "log_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class LogEntry(Base):
    __tablename__ = "log_entries"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # The exact canonical bytes that were hashed; served back verbatim.
    leaf: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    entry_type: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class LogOpening(Base):
    """What a committed leaf (log format 2, :mod:`app.ledger.commitment`) commits to: the salt
    and the entry's canonical bytes, stored apart from the tree so that they can be withheld
    from readers not entitled to them and deleted when the person is erased, leaving every
    leaf, checkpoint and proof as it was. ``subject_ref`` finds a person's openings at once."""

    __tablename__ = "log_openings"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    subject_ref: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    salt: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    entry: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class LogNode(Base):
    """A perfect subtree hash: (level, idx) covers leaves [idx * 2**level, (idx + 1) * 2**level)."""

    __tablename__ = "log_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)


class LogCheckpoint(Base):
    __tablename__ = "log_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    funder: Mapped[str] = mapped_column(String(32), nullable=False)
    ods_code: Mapped[str | None] = mapped_column(String(16), nullable=True)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ledger_index: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ApiClient(Base):
    __tablename__ = "api_clients"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    organisation_id: Mapped[str] = mapped_column(
        ForeignKey("organisations.id"), nullable=False, index=True
    )
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    # SHA-256 of the whole bearer token; the token itself is never stored.
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ledger_index: Mapped[int] = mapped_column(BigInteger, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The latest token rotation: the old token, and browser sessions opened before, stop here.
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    rotated_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Subject(Base):
    """Identifier -> subject_ref. Keyed by HMAC-SHA-256 of the normalised identifier under one
    of the instance's identifier keys (``key_id``), so the identifier itself (an NHS number) is
    never stored in clear. ``sealed`` holds it encrypted under the same key, for re-keying
    (``app.services.consents.subjects``). A row made before key ids has neither: it is under
    generation 1 (``identifier.key``) and gets both, under the newest key, when its person is
    next written about.
    Deleting a row (erasure) leaves the log verifiable and no longer linkable to the person."""

    __tablename__ = "subjects"

    lookup: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    subject_ref: Mapped[str] = mapped_column(String(40), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class Consent(Base):
    """Current state of a consent: a projection of its log entries, updated in the same
    transaction as each of them (``consent-ledger rebuild --check`` re-derives it)."""

    __tablename__ = "consents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject_ref: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    recipients: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    data_categories: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    form: Mapped[str] = mapped_column(String(16), nullable=False)
    evidence_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    recorded_by: Mapped[str] = mapped_column(ForeignKey("organisations.id"), nullable=False)
    recorded_by_client: Mapped[str] = mapped_column(String(40), nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # When the person gave it, if before it was recorded (an import); None: when recorded.
    given_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    confirmed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ledger_index: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ConsentEvent(Base):
    """One line of a consent's history (granted, confirmed, withdrawn), with its log index."""

    __tablename__ = "consent_events"

    ledger_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    consent_id: Mapped[str] = mapped_column(ForeignKey("consents.id"), nullable=False, index=True)
    event: Mapped[str] = mapped_column(String(16), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    organisation_id: Mapped[str] = mapped_column(String(64), nullable=False)
    client_id: Mapped[str] = mapped_column(String(40), nullable=False)
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)


class Objection(Base):
    __tablename__ = "objections"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject_ref: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    scope: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    recorded_by: Mapped[str] = mapped_column(ForeignKey("organisations.id"), nullable=False)
    recorded_by_client: Mapped[str] = mapped_column(String(40), nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ledger_index: Mapped[int] = mapped_column(BigInteger, nullable=False)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    withdrawn_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    withdrawn_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class IdempotencyRecord(Base):
    """The first response to a POST carrying an ``Idempotency-Key``, per client, written in the
    same transaction as the change it describes. The request is remembered by an HMAC, so a
    body holding an NHS number leaves no guessable hash of it."""

    __tablename__ = "idempotency_records"

    client_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    status_code: Mapped[int] = mapped_column(Integer, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class IdempotencySubject(Base):
    """Whom a recorded response is about (the people its request logged entries about), so an
    erasure can find the responses that describe them."""

    __tablename__ = "idempotency_subjects"

    subject_ref: Mapped[str] = mapped_column(String(40), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)


class PolicyVersion(Base):
    """A published policy: its canonical document, keyed by its SHA-256 (the version).
    The newest publication is in force."""

    __tablename__ = "policy_versions"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    document: Mapped[str] = mapped_column(Text, nullable=False)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ledger_index: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)


class DecisionRecord(Base):
    __tablename__ = "decisions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject_ref: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    from_org: Mapped[str] = mapped_column(ForeignKey("organisations.id"), nullable=False)
    to_org: Mapped[str] = mapped_column(ForeignKey("organisations.id"), nullable=False)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    data_categories: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    legal_basis_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    legal_basis_reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decision: Mapped[str] = mapped_column(String(8), nullable=False)
    basis: Mapped[str | None] = mapped_column(String(16), nullable=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    policy_version: Mapped[str] = mapped_column(String(64), nullable=False)
    client_id: Mapped[str] = mapped_column(String(40), nullable=False)
    made_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    ledger_index: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)


class Disclosure(Base):
    __tablename__ = "disclosures"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    decision_id: Mapped[str] = mapped_column(ForeignKey("decisions.id"), nullable=False)
    subject_ref: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    from_org: Mapped[str] = mapped_column(
        ForeignKey("organisations.id"), nullable=False, index=True
    )
    to_org: Mapped[str] = mapped_column(ForeignKey("organisations.id"), nullable=False, index=True)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    data_categories: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    basis: Mapped[str | None] = mapped_column(String(16), nullable=True)
    legal_basis_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    client_id: Mapped[str] = mapped_column(String(40), nullable=False)
    disclosed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    ledger_index: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)


class DisclosureConsent(Base):
    """Which consents a disclosure relied on: the withdrawal notice list is one query on this."""

    __tablename__ = "disclosure_consents"

    disclosure_id: Mapped[str] = mapped_column(ForeignKey("disclosures.id"), primary_key=True)
    consent_id: Mapped[str] = mapped_column(ForeignKey("consents.id"), primary_key=True, index=True)


class Obligation(Base):
    """What an organisation must do because of a withdrawal, an objection or an erasure (UK
    GDPR Art 19; ig-rules "Telling the organisations that must act"), made in the same
    transaction as the entry that caused it (``cause_index``), read by the organisation's case
    systems as a notification and closed by an acknowledgement, which is logged.

    Names consents and disclosures by id, never the person: ``subject_ref`` is kept only so
    that erasing the person finds the obligations about them (it is never shown)."""

    __tablename__ = "obligations"

    # Newest last: the feed's cursor.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), nullable=False, unique=True)
    organisation_id: Mapped[str] = mapped_column(
        ForeignKey("organisations.id"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    cause: Mapped[str] = mapped_column(String(32), nullable=False)
    cause_index: Mapped[int] = mapped_column(BigInteger, nullable=False)
    consent_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    objection_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    purpose: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # [{"id", "disclosed_at", "purpose", "data_categories"}]: what the organisation received.
    disclosures: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    subject_ref: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    evidence_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    acknowledged_by_client: Mapped[str | None] = mapped_column(String(40), nullable=True)
    acknowledged_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Webhook(Base):
    """Where an organisation's notifications are pushed (issue 15 item 2). The signing secret
    is sealed under a key derived from the instance's signing key
    (``app.services.notifications.webhooks``): a database read alone does not yield it."""

    __tablename__ = "webhooks"

    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class WebhookDelivery(Base):
    """The outbox: one row per notification for an organisation with a webhook, written in the
    transaction that made the obligation. Its id, the obligation's, is the ``webhook-id`` of
    every attempt, so a receiver de-duplicates by it. Due while neither ``delivered_at`` nor
    ``given_up_at`` is set, ``next_attempt_at`` has passed and no lease is held."""

    __tablename__ = "webhook_deliveries"

    obligation_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(
        ForeignKey("organisations.id"), nullable=False, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    # Set while a deliverer is sending it: not due again until then, so two deliverers never
    # send it at once; cleared by the answer, and by the next deliverer if this one died.
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The HTTP status of the last answer, or null when there was none (``last_error`` says why).
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    given_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WitnessCosignature(Base):
    """A witness's cosignature on one of our checkpoints (c2sp.org/tlog-cosignature), as the
    witness answered it and after it verified under the witness's configured key: one per
    witness per tree size. Keyed by size first, so the newest size enough witnesses cosigned
    is found by walking this key backwards (``app.services.log.witnesses``)."""

    __tablename__ = "witness_cosignatures"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # The witness's key name and hex key id (``name+keyid``): a new key is a new witness.
    witness: Mapped[str] = mapped_column(String(300), primary_key=True)
    # The signature line, ``— <name> <base64>``, without its newline.
    line: Mapped[str] = mapped_column(Text, nullable=False)
    # The time the witness put in its cosignature, and when we stored it.
    cosigned_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class WitnessStatus(Base):
    """Where each configured witness stands: the size it last cosigned for us, and how the
    last attempt went. ``last_error`` names the kind of failure only (a status and what it
    means, or why no answer came): never a URL, a body or anything about a person."""

    __tablename__ = "witness_status"

    witness: Mapped[str] = mapped_column(String(300), primary_key=True)
    cosigned_size: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # Failures in a row, and when to try again (backoff); both cleared by a cosignature.
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WitnessPublished(Base):
    """One row (id = 1): the size below which the served checkpoint never goes again, raised
    by the witness submitter each round to the checkpoint it serves then. With the witnesses
    or the quorum changed, or before any checkpoint reached the quorum, the newest the quorum
    cosigned can be older than one already served: serving it would look like a rollback."""

    __tablename__ = "witness_published"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tree_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class WebhookSealKey(Base):
    """One row (id = 1) once the database has its webhook seal key: the key's id
    (``keys.webhook_seal_key_id``). Chosen once per database, by the first host that needs it;
    every other host must hold the same ``webhook-seal.key`` and refuses to seal or open
    secrets until it does, so no host makes a second key."""

    __tablename__ = "webhook_seal_key"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key_id: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class WebSession(Base):
    """An IG lead's or auditor's signed-in browser. The cookie holds a random token; only its
    SHA-256 is stored, so a database read does not yield live sessions."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"), nullable=False)
    csrf_token: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class AccessLink(Base):
    """A single-person, expiring link to the patient page. Only the token's hash is stored."""

    __tablename__ = "access_links"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, unique=True)
    subject_ref: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), nullable=False)
    created_by_client: Mapped[str] = mapped_column(String(40), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ledger_index: Mapped[int] = mapped_column(BigInteger, nullable=False)


class VerificationRun(Base):
    """The outcome of each ``consent-ledger verify``, shown on the IG dashboard."""

    __tablename__ = "verification_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ok: Mapped[bool] = mapped_column(nullable=False)
    log_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    checkpoints: Mapped[int] = mapped_column(BigInteger, nullable=False)
    problem: Mapped[str | None] = mapped_column(Text, nullable=True)


class SigningKey(Base):
    """The log's signing keys once it has more than one (``keys rotate-signing``), each with the
    checkpoints it may sign: tree sizes ``first_size`` to ``last_size`` (NULL: still signing).
    A retired key's row stays, so history signed by it keeps verifying; its private key is
    gone. No rows: the one key of ``signing-key.pem`` signs everything. The times of a period
    are those of its checkpoints (``log_checkpoints.created_at``), not kept twice."""

    __tablename__ = "signing_keys"

    generation: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    vkey: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    first_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
