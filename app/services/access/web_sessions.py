"""Browser sessions for IG leads and auditors, and access links for patients.

Both are bearer secrets in a browser, so both are stored only as SHA-256 hashes, expire, and
are checked against the client or person they belong to on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from app.errors import Conflict, Forbidden, NotFound, Unauthenticated
from app.ids import new_id
from app.ledger.events import AccessLinkCreated, AccessLinkRevoked
from app.models import AccessLink, ApiClient, Objection, Organisation, WebSession
from app.services.access.clients import Principal, authenticate
from app.services.access.links import link_open
from app.services.consents import consents, subjects
from app.services.container import Ledger
from app.services.log.projections import append_events

WEB_ROLES = ("ig_lead", "auditor")
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=8)
DEFAULT_LINK_DAYS = 7
MAX_LINK_DAYS = 30


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


@dataclass(frozen=True)
class SignedIn:
    session_token: str
    principal: Principal


@dataclass(frozen=True)
class WebIdentity:
    principal: Principal
    csrf_token: str
    expires_at: datetime


def sign_in(ledger: Ledger, token: str) -> SignedIn:
    """Exchange an ig_lead or auditor client's API token for a browser session."""
    principal = authenticate(ledger, f"Bearer {token.strip()}")
    if principal.role not in WEB_ROLES:
        raise Forbidden("only ig_lead and auditor clients may sign in here")
    session_token = secrets.token_urlsafe(32)
    now = ledger.clock()
    with ledger.db.write() as session:
        # Expired sessions of anyone are removed as a side effect of signing in.
        session.execute(delete(WebSession).where(WebSession.expires_at < now))
        session.add(
            WebSession(
                token_hash=_hash(session_token),
                client_id=principal.client_id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                last_seen_at=now,
                expires_at=now + ABSOLUTE_TIMEOUT,
            )
        )
    return SignedIn(session_token, principal)


def resolve_session(ledger: Ledger, session_token: str | None) -> WebIdentity | None:
    if not session_token:
        return None
    now = ledger.clock()
    with ledger.db.write() as session:
        row = session.get(WebSession, _hash(session_token))
        if row is None:
            return None
        if now >= row.expires_at or now - row.last_seen_at >= IDLE_TIMEOUT:
            session.delete(row)
            return None
        client = session.get(ApiClient, row.client_id)
        org = session.get(Organisation, client.organisation_id) if client else None
        if (
            client is None
            or org is None
            or client.role not in WEB_ROLES
            or client.revoked_at
            or (client.rotated_at is not None and row.created_at <= client.rotated_at)
        ):
            session.delete(row)
            return None
        row.last_seen_at = now
        return WebIdentity(
            Principal(client.id, org.id, org.kind, client.role), row.csrf_token, row.expires_at
        )


def sign_out(ledger: Ledger, session_token: str | None) -> None:
    if not session_token:
        return
    with ledger.db.write() as session:
        session.execute(delete(WebSession).where(WebSession.token_hash == _hash(session_token)))


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


# -- access links -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedLink:
    id: str
    token: str
    expires_at: datetime
    ledger_index: int


# What a link shows. A patient portal authenticated the person (NHS login, say), so its links
# show the whole record; a case system's links show what its organisation sees through the API.
WHOLE_RECORD = "whole_record"
ORGANISATION_VIEW = "organisation"


@dataclass(frozen=True)
class PatientAccess:
    link: AccessLink
    # The person, scoped like the issuing client (its organisation, and a portal's whole-record
    # view or a case system's organisation view); its client_id is the link's id.
    principal: Principal
    view: str  # WHOLE_RECORD or ORGANISATION_VIEW
    issuer_name: str  # the issuing organisation, named on the page


def create_access_link(
    ledger: Ledger, principal: Principal, subject: subjects.SubjectIdentifier, days: int
) -> CreatedLink:
    token = secrets.token_urlsafe(32)
    link_id = new_id("acl")
    now = ledger.clock()
    expires = now + timedelta(days=days)

    def create(session: Session) -> int:
        # Authentication ran before the lock: a rotation or revocation may have committed
        # since, and a link issued now would outlive the token that asked for it.
        issuer = session.get(ApiClient, principal.client_id)
        if (
            issuer is None
            or issuer.revoked_at is not None
            or (principal.token_hash is not None and issuer.token_hash != principal.token_hash)
        ):
            raise Unauthenticated("a valid bearer token is required")
        subjects.check_local_system(session, subject, principal)
        if principal.role == "patient_portal":
            ref = subjects.resolve(ledger, session, subject, create=True)
        else:
            # A case system's link shows only what its organisation sees, and it may issue one
            # only to a person it has a consent or objection with (or is named in a consent
            # of), so it cannot plant links and log entries for anyone whose NHS number it
            # knows. A stranger is checked like a known person, under a reference nobody has,
            # so the refusal's timing does not say whether the service knows them (issue 12).
            ref = subjects.resolve(ledger, session, subject, create=False, move=True)
            related = _has_relationship(session, principal, ref or subjects.NOBODY)
            if ref is None or not related:
                raise Forbidden(
                    "a case system may issue a link only to a person its organisation has "
                    "recorded a consent or objection for, or is named in a consent of"
                )
        assert ref is not None
        # Issuing a link is logged: who gave whom a way in, and until when (never the token).
        event = AccessLinkCreated(
            link_id=link_id,
            subject_ref=ref,
            organisation=principal.organisation_id,
            client_id=principal.client_id,
            expires_at=expires,
        )
        (receipt,) = append_events(ledger.log_store, session, now, [event])
        session.add(
            AccessLink(
                id=link_id,
                token_hash=_hash(token),
                subject_ref=ref,
                organisation_id=principal.organisation_id,
                created_by_client=principal.client_id,
                created_at=now,
                expires_at=expires,
                ledger_index=receipt.index,
            )
        )
        return receipt.index

    return CreatedLink(link_id, token, expires, ledger.write(create))


_OWN_OBJECTION = (
    select(Objection.id)
    .where(Objection.subject_ref == bindparam("ref"), Objection.recorded_by == bindparam("org"))
    .limit(1)
)


def _has_relationship(session: Any, principal: Principal, subject_ref: str) -> bool:
    """A consent the organisation sees (recorded or is named in), or an objection it recorded.
    Both questions are always asked, and answered by the database, so the work does not depend
    on what is stored about the person."""
    consent = consents.organisation_sees_a_consent(session, principal, subject_ref)
    objection = session.execute(
        _OWN_OBJECTION, {"ref": subject_ref, "org": principal.organisation_id}
    ).first()
    return consent or objection is not None


LINK_ID = "acl_"


def revoke_access_link(ledger: Ledger, principal: Principal, link_id: str) -> int:
    """End a link before it expires (lost phone, wrong person). Allowed to the issuing
    organisation's clients and to patient portals; logged; returns the log index."""
    now = ledger.clock()

    def revoke(session: Session) -> int:
        link = session.get(AccessLink, link_id) if link_id.startswith(LINK_ID) else None
        if link is None:
            raise NotFound(f"there is no access link {link_id!r}")
        if principal.role != "patient_portal" and principal.organisation_id != link.organisation_id:
            raise Forbidden("only the issuing organisation or a patient portal may revoke a link")
        if link.expires_at <= now:
            raise Conflict(f"access link {link_id} has already ended")
        event = AccessLinkRevoked(
            link_id=link_id,
            subject_ref=link.subject_ref,
            organisation=principal.organisation_id,
            client_id=principal.client_id,
        )
        (receipt,) = append_events(ledger.log_store, session, now, [event])
        link.expires_at = now
        return receipt.index

    return ledger.write(revoke)


def resolve_access_link(ledger: Ledger, token: str) -> PatientAccess | None:
    """The link and the principal it acts as, or None for an unknown, tampered, expired or
    revoked token, or one whose issuing client has since been revoked or rotated (the caller
    shows one page for all, revealing nothing). The issuing client is read on every request,
    so revoking or rotating it ends its links at once in every worker."""
    if not token or len(token) > 100:
        return None
    now = ledger.clock()
    with ledger.db.read() as session:
        row = session.execute(
            select(AccessLink, ApiClient, Organisation)
            .join(ApiClient, ApiClient.id == AccessLink.created_by_client)
            .join(Organisation, Organisation.id == AccessLink.organisation_id)
            .where(AccessLink.token_hash == _hash(token))
        ).one_or_none()
        if row is None:
            return None
        link, client, org = row
        # The same rule every write through the link applies again under the lock.
        if not link_open(link, client, now):
            return None
        # The person acts as the issuing client would: a portal's link on the whole record, a
        # case system's on what its organisation sees.
        view = WHOLE_RECORD if client.role == "patient_portal" else ORGANISATION_VIEW
        principal = Principal(link.id, org.id, org.kind, client.role, via_link=True)
        return PatientAccess(link, principal, view, org.name)


def _patient_csrf_tokens(ledger: Ledger, link_id: str) -> list[str]:
    message = b"patient-csrf\x00" + link_id.encode()
    return [
        hmac.new(k.secret, message, hashlib.sha256).hexdigest() for k in ledger.identifier_keys.all
    ]


def patient_csrf_token(ledger: Ledger, link_id: str) -> str:
    """Stateless per-link CSRF token: an HMAC a page can embed and a form post must return,
    under the newest identifier key."""
    return _patient_csrf_tokens(ledger, link_id)[0]


def patient_csrf_ok(ledger: Ledger, link_id: str, given: str | None) -> bool:
    """Under any identifier key held: a form served before a key rotation still posts, until
    its key is retired."""
    return any(csrf_ok(token, given) for token in _patient_csrf_tokens(ledger, link_id))
