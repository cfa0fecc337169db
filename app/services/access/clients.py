"""API clients: each bound to one organisation and one role, holding a bearer token that is
shown once and stored only as a hash.

Tokens are ``cl_<client id>.<43 characters of base64url>``: 256 random bits after the id. The
id lets us find the row without comparing secrets in SQL; the SHA-256 of the whole token is then
compared in constant time. A fast hash is enough here because the secret is 256 random bits, not
a password: there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.errors import DomainError, Unauthenticated
from app.ids import new_id
from app.ledger.events import ClientCreated, ClientRevoked, ClientTokenRotated
from app.models import ApiClient, Organisation
from app.services.container import Ledger
from app.services.log.projections import Written, append_events
from app.text import line_problem
from app.vocabulary import ROLES

TOKEN_PATTERN = re.compile(r"^(cl_[0-9a-f]{16})\.([A-Za-z0-9_-]{43})$")
_DUMMY_HASH = hashlib.sha256(b"no such client").digest()
# Every request runs this, so it is built once and asks once (the client with its
# organisation's kind); read each time, so a revocation binds every worker at once.
_CLIENT_BY_ID = (
    select(
        ApiClient.token_hash,
        ApiClient.revoked_at,
        ApiClient.organisation_id,
        Organisation.kind,
        ApiClient.role,
    )
    .join(Organisation, Organisation.id == ApiClient.organisation_id)
    .where(ApiClient.id == bindparam("id"))
)


class ClientError(DomainError):
    status = 422
    slug = "invalid-request"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the client, its organisation (and that organisation's kind) and role."""

    client_id: str
    organisation_id: str
    organisation_kind: str
    role: str
    # The person themselves, acting through an access link this client's organisation issued
    # (``client_id`` is then the link's id, which its ``access_link.created`` entry ties to the
    # issuing client). Such a principal sees and acts on what the issuer may, no more.
    via_link: bool = False
    # The stored hash of the token this request authenticated with: a write that hands out a
    # credential of its own (an access link) checks it again under the log-head lock, so a
    # token rotated or revoked meanwhile cannot mint one that outlives it.
    token_hash: bytes | None = None


@dataclass(frozen=True)
class CreatedClient:
    client_id: str
    token: str
    organisation_id: str
    role: str
    name: str
    ledger_index: int


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


def create_client(
    ledger: Ledger, organisation_id: str, role: str, name: str | None
) -> CreatedClient:
    if role not in ROLES:
        raise ClientError(f"role {role!r} is not one of {', '.join(ROLES)}")
    name = (name or f"{organisation_id} {role}").strip()
    if not name or len(name) > 200:
        raise ClientError("name must be 1-200 characters")
    if (problem := line_problem(name)) is not None:
        raise ClientError(f"name {problem}")
    client_id = new_id("cl", 8)
    token = f"{client_id}.{secrets.token_urlsafe(32)}"
    now = ledger.clock()

    def create(session: Session) -> int:
        if session.get(Organisation, organisation_id) is None:
            raise ClientError(
                f"organisation {organisation_id!r} is not registered: "
                "import it first with `consent-ledger orgs import FILE`"
            )
        # The token never enters the log; the entry records who can act, and as what.
        (receipt,) = append_events(
            ledger.log_store,
            session,
            now,
            [
                ClientCreated(
                    client_id=client_id, organisation=organisation_id, role=role, name=name
                )
            ],
            Written(session, extra={ApiClient: {"token_hash": hash_token(token)}}),
        )
        return receipt.index

    index = ledger.write(create)
    return CreatedClient(client_id, token, organisation_id, role, name, index)


def authenticate(ledger: Ledger, authorization: str | None) -> Principal:
    """Resolve an ``Authorization: Bearer`` header to a principal, or refuse with one message."""
    refused = Unauthenticated("a valid bearer token is required")
    if not authorization:
        raise refused
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise refused
    match = TOKEN_PATTERN.match(token)
    with ledger.db.read_connection() as connection:
        row = connection.execute(_CLIENT_BY_ID, {"id": match.group(1)}).first() if match else None
    expected = row.token_hash if row is not None else _DUMMY_HASH
    # Compare even when there is no such client, so timing says nothing about which ids exist.
    ok = hmac.compare_digest(hash_token(token) if match else b"", expected)
    if row is None or not ok or row.revoked_at is not None:
        raise refused
    assert match is not None
    return Principal(
        match.group(1), row.organisation_id, row.kind, row.role, token_hash=row.token_hash
    )


def acting_as(ledger: Ledger, client_id: str) -> Principal:
    """An operator's command acting as one of the service's clients (``consent-ledger import
    --as``): a live client, so the log names who recorded each entry as an API call would."""
    with ledger.db.read_connection() as connection:
        row = connection.execute(_CLIENT_BY_ID, {"id": client_id}).first()
    if row is None:
        raise ClientError(f"there is no client {client_id!r}")
    if row.revoked_at is not None:
        raise ClientError(f"client {client_id} was revoked")
    return Principal(client_id, row.organisation_id, row.kind, row.role)


def revoke_client(ledger: Ledger, client_id: str) -> int:
    """Revoke a client: its token stops working at once, everywhere (its browser sessions end
    with it). Logged; returns the log index. Revoking twice is refused."""
    now = ledger.clock()

    def revoke(session: Session) -> int:
        _live_client(session, client_id)
        (receipt,) = append_events(
            ledger.log_store, session, now, [ClientRevoked(client_id=client_id)]
        )
        return receipt.index

    return ledger.write(revoke)


def _live_client(session: Session, client_id: str) -> ApiClient:
    row = session.get(ApiClient, client_id)
    if row is None:
        raise ClientError(f"there is no client {client_id!r}")
    if row.revoked_at is not None:
        raise ClientError(f"client {client_id} was revoked at log index {row.revoked_index}")
    return row


@dataclass(frozen=True)
class RotatedToken:
    client_id: str
    token: str
    ledger_index: int


def rotate_token(ledger: Ledger, client_id: str) -> RotatedToken:
    """Give a client a new token. The old one stops working at once in every worker (each
    request reads the stored hash), and so do browser sessions opened with it. Logged, without
    the token; returns the new token, shown once."""
    token = f"{client_id}.{secrets.token_urlsafe(32)}"
    now = ledger.clock()

    def rotate(session: Session) -> int:
        row = _live_client(session, client_id)
        (receipt,) = append_events(
            ledger.log_store, session, now, [ClientTokenRotated(client_id=client_id)]
        )
        row.token_hash = hash_token(token)  # the one column the log does not hold
        return receipt.index

    return RotatedToken(client_id, token, ledger.write(rotate))


def list_clients(ledger: Ledger) -> list[ApiClient]:
    with ledger.db.read() as session:
        return list(session.execute(select(ApiClient).order_by(ApiClient.created_at)).scalars())
