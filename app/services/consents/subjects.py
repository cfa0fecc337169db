"""People: identifiers in, random ``subject_ref`` out.

A person is named by an NHS number or by a local identifier ``(system, value)``. The service maps
the normalised identifier to a random ``subject_ref`` through a table keyed by
HMAC-SHA-256(identifier key, identifier): the identifier is never stored in clear, never logged,
never echoed in an error. Only ``subject_ref`` enters the log.

Identifier keys rotate (``app.services.log.keys``). A lookup tries every key held, newest first,
in one query; a write that finds the person under an older key moves their row to the newest.
Each row also holds the identifier *sealed* (AES-GCM under a key derived from the same identifier
key, bound to the row's key id and ``subject_ref``), so that a re-keying pass can move rows
nobody writes about (``app.services.consents.identifier_keys``). That exposes nothing the HMAC
did not: whoever holds the identifier key can already find any NHS number behind a lookup by
trying the 10^9 valid ones.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from app.errors import FieldError, InvalidRequest
from app.ids import new_id
from app.models import Subject, table
from app.services import organisations
from app.services.access.clients import Principal
from app.services.container import Ledger
from app.services.log.keys import IdentifierKey, IdentifierKeys
from app.text import with_article

# NHS number check digit: modulus 11 over the first nine digits, weights 10 down to 2
# (NHS Data Dictionary, "NHS Number").
_NHS_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


class InvalidNhsNumber(ValueError):
    """Why a string is not an NHS number; the message never repeats the number."""


def normalise_nhs_number(raw: str) -> str:
    """Ten digits with a valid modulus-11 check digit; spaces are allowed on input."""
    digits = raw.replace(" ", "")
    if not digits.isascii() or not digits.isdigit():
        raise InvalidNhsNumber("must contain only digits (spaces are allowed)")
    if len(digits) != 10:
        raise InvalidNhsNumber(f"must be 10 digits, not {len(digits)}")
    total = sum(int(d) * w for d, w in zip(digits[:9], _NHS_WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    if check == 10 or check != int(digits[9]):
        raise InvalidNhsNumber("the check digit is wrong (modulus 11): please check the number")
    return digits


@dataclass(frozen=True)
class SubjectIdentifier:
    """A validated identifier. ``repr`` hides the value so it cannot reach a log by accident."""

    kind: str  # "nhs_number" or "local_id"
    value: str
    system: str | None = None

    def __repr__(self) -> str:
        return f"SubjectIdentifier(kind={self.kind!r}, system={self.system!r}, value=<hidden>)"

    @classmethod
    def nhs_number(cls, raw: str) -> SubjectIdentifier:
        return cls("nhs_number", normalise_nhs_number(raw))

    @classmethod
    def local_id(cls, system: str, value: str) -> SubjectIdentifier:
        return cls("local_id", value, system)

    def canonical(self) -> bytes:
        # Unambiguous: a JSON array cannot be confused across kinds or split differently.
        return json.dumps([self.kind, self.system, self.value], separators=(",", ":")).encode()

    @classmethod
    def from_canonical(cls, data: bytes) -> SubjectIdentifier:
        kind, system, value = json.loads(data)
        return cls(kind, value, system)


@dataclass(frozen=True)
class SubjectRef:
    """A person named by the ``subject_ref`` this service gave them (v1 answers carry it; the
    FHIR and CDS Hooks faces name people by it rather than echo an NHS number). Never created
    from: a reference nobody holds (never given, or its person erased) is refused."""

    value: str


_KNOWN_REF = select(Subject.subject_ref).where(Subject.subject_ref == bindparam("ref"))


def is_known(session: Session, ref: SubjectRef) -> bool:
    """Whether someone holds ``ref`` now (an erased person's row is gone, as a stranger's)."""
    return session.execute(_KNOWN_REF, {"ref": ref.value}).first() is not None


def lookup_key(identifier_key: bytes, identifier: SubjectIdentifier) -> bytes:
    return hmac.new(identifier_key, identifier.canonical(), hashlib.sha256).digest()


def lookup_keys(keys: IdentifierKeys, identifier: SubjectIdentifier) -> list[bytes]:
    """The identifier's lookup under every key held, newest first."""
    canonical = identifier.canonical()
    return [hmac.new(k.secret, canonical, hashlib.sha256).digest() for k in keys.all]


_SEAL_INFO = b"consent-ledger identifier seal v1"
_NONCE_BYTES = 12


@lru_cache(maxsize=16)
def _sealing_cipher(secret: bytes) -> AESGCM:
    # Its own key, derived with its own label, so the HMAC key is never used as an AES key.
    derived = HKDF(hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO).derive(secret)
    return AESGCM(derived)


def _seal_aad(key_id: str, subject_ref: str) -> bytes:
    # Binds a sealed identifier to its row: copied onto another row, or kept under another key
    # id, it does not open.
    return b"consent-ledger subject\x00" + key_id.encode() + b"\x00" + subject_ref.encode()


def seal(key: IdentifierKey, identifier: SubjectIdentifier, subject_ref: str) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    cipher = _sealing_cipher(key.secret)
    return nonce + cipher.encrypt(nonce, identifier.canonical(), _seal_aad(key.key_id, subject_ref))


def unseal(key: IdentifierKey, sealed: bytes, subject_ref: str) -> SubjectIdentifier:
    """The identifier a row holds; ``cryptography.exceptions.InvalidTag`` if it was not sealed
    for this row under this key."""
    nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    data = _sealing_cipher(key.secret).decrypt(nonce, body, _seal_aad(key.key_id, subject_ref))
    return SubjectIdentifier.from_canonical(data)


# Statements of every write's path, built once (building them per call cost more than running
# them).
_SUBJECT_REFS = select(Subject.lookup, Subject.subject_ref, Subject.key_id).where(
    Subject.lookup.in_(bindparam("lookups", expanding=True))
)
# With one key (no rotation yet, or after retiring the old ones), an equality: an expanding IN
# is compiled afresh for each call, which cost more than the query.
_SUBJECT_REF = select(Subject.lookup, Subject.subject_ref, Subject.key_id).where(
    Subject.lookup == bindparam("lookup")
)
_INSERT_SUBJECT = insert(table(Subject))


def _mappings(session: Session, lookups: list[bytes]) -> list[tuple[bytes, str, str | None]]:
    """The rows mapping any of ``lookups``: (lookup, subject_ref, key id)."""
    if len(lookups) == 1:
        rows = session.execute(_SUBJECT_REF, {"lookup": lookups[0]})
    else:
        rows = session.execute(_SUBJECT_REFS, {"lookups": lookups})
    return [(bytes(lookup), ref, key_id) for lookup, ref, key_id in rows]


_MOVE_SUBJECT = (
    update(table(Subject))
    .where(table(Subject).c.lookup == bindparam("old_lookup"))
    .values(
        lookup=bindparam("new_lookup"),
        key_id=bindparam("new_key_id"),
        sealed=bindparam("new_sealed"),
    )
)


def move_to(
    session: Session,
    key: IdentifierKey,
    old_lookup: bytes,
    identifier: SubjectIdentifier,
    subject_ref: str,
    new_lookup: bytes | None = None,
) -> None:
    """Put a row under ``key``: its lookup, key id and sealed identifier, in the caller's
    transaction."""
    session.connection().execute(
        _MOVE_SUBJECT,
        {
            "old_lookup": old_lookup,
            "new_lookup": new_lookup or lookup_key(key.secret, identifier),
            "new_key_id": key.key_id,
            "new_sealed": seal(key, identifier, subject_ref),
        },
    )


# A subject_ref no person has (real ones are "sub_" and 32 hex digits): a request about a person
# the service has never seen runs its queries with it, so it does the same work as one about a
# known person and its timing does not tell the caller whether the service knows them.
NOBODY = "sub_nobody"

# Roles that see the whole of a person's record (consents.sees_all_of_a_person).
WHOLE_RECORD_ROLES = ("patient_portal", "auditor")

# Where a request names the person's local identifier system: a JSON body, or a query string.
JSON_SYSTEM = ("subject.local_id.system", "json")
QUERY_SYSTEM = ("local_system", "query")


def local_system_problem(
    session: Session,
    identifier: SubjectIdentifier,
    principal: Principal,
    where: tuple[str, str] = JSON_SYSTEM,
) -> FieldError | None:
    """A local identifier's system must be a registered organisation and, for a client that
    sees only its organisation's part of a person's record (a case system, an IG lead), its
    own: another organisation's hospital numbers are not its to look up (walking them would
    tell it whom that organisation treats). Portals and auditors, who see the whole record,
    may name any system."""
    if identifier.kind != "local_id":
        return None
    field, location = where
    if identifier.system is None or not organisations.registered_kinds(
        session, [identifier.system]
    ):
        return FieldError(field, "is not a registered organisation id", location)
    if principal.role not in WHOLE_RECORD_ROLES and identifier.system != principal.organisation_id:
        return FieldError(
            field,
            f"{with_article(principal.role).capitalize()} client may name a person by its own "
            f"organisation's local identifier only (system {principal.organisation_id!r}); "
            "use the NHS number otherwise",
            location,
        )
    return None


def check_local_system(
    session: Session,
    identifier: SubjectIdentifier,
    principal: Principal,
    where: tuple[str, str] = JSON_SYSTEM,
) -> None:
    problem = local_system_problem(session, identifier, principal, where)
    if problem is not None:
        raise InvalidRequest.from_fields("the subject is not valid", [problem])


def resolve_all(ledger: Ledger, session: Session, identifier: SubjectIdentifier) -> list[str]:
    """Every ``subject_ref`` the identifier maps to, under any key held: one, except for a person
    mapped afresh under an older key by a host that lacked the newest (which the start-up check
    refuses, but an erasure must not leave half done)."""
    lookups = lookup_keys(ledger.identifier_keys, identifier)
    return sorted({ref for _, ref, _ in _mappings(session, lookups)})


def resolve(
    ledger: Ledger,
    session: Session,
    identifier: SubjectIdentifier,
    *,
    create: bool,
    move: bool | None = None,
) -> str | None:
    """The person's ``subject_ref``; with ``create``, a new one for a person not seen before.

    Callers hold the log-head lock when creating, so two requests for a new person cannot both
    create a mapping. With ``move`` (by default, when creating: a write holds the lock, so the
    move serialises with the re-keying pass), a person found under an older key is moved to the
    newest, and a row made before key ids gets its key id and sealed identifier, so that the
    next rotation's re-keying pass can move it.
    """
    keys = ledger.identifier_keys
    lookups = lookup_keys(keys, identifier)
    found = {lookup: (ref, key_id) for lookup, ref, key_id in _mappings(session, lookups)}
    for i, lookup in enumerate(lookups):
        if lookup not in found:
            continue
        ref, key_id = found[lookup]
        if (i or key_id is None) and (create if move is None else move):
            move_to(session, keys.newest, lookup, identifier, ref, lookups[0])
        return ref
    if not create:
        return None
    ref = new_id("sub")
    session.connection().execute(
        _INSERT_SUBJECT,
        {
            "lookup": lookups[0],
            "subject_ref": ref,
            "created_at": ledger.clock(),
            "key_id": keys.newest.key_id,
            "sealed": seal(keys.newest, identifier, ref),
        },
    )
    return ref
