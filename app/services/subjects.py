"""People: identifiers in, random ``subject_ref`` out.

A person is named by an NHS number or by a local identifier ``(system, value)``. The service maps
the normalised identifier to a random ``subject_ref`` through a table keyed by
HMAC-SHA-256(identifier key, identifier): the identifier is never stored, never logged, never
echoed in an error. Only ``subject_ref`` enters the log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from app.errors import FieldError, InvalidRequest
from app.models import Subject, table
from app.services import organisations
from app.services.container import Ledger

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


def lookup_key(identifier_key: bytes, identifier: SubjectIdentifier) -> bytes:
    return hmac.new(identifier_key, identifier.canonical(), hashlib.sha256).digest()


# Statements of every write's path, built once (building them per call cost more than running
# them).
_SUBJECT_REF = select(Subject.subject_ref).where(Subject.lookup == bindparam("lookup"))
_INSERT_SUBJECT = insert(table(Subject))


def local_system_problem(session: Session, identifier: SubjectIdentifier) -> FieldError | None:
    """A local identifier's system must be a registered organisation."""
    if identifier.kind != "local_id":
        return None
    if identifier.system is None or not organisations.registered_kinds(
        session, [identifier.system]
    ):
        return FieldError("subject.local_id.system", "is not a registered organisation id", "json")
    return None


def check_local_system(session: Session, identifier: SubjectIdentifier) -> None:
    problem = local_system_problem(session, identifier)
    if problem is not None:
        raise InvalidRequest.from_fields("the subject is not valid", [problem])


def resolve(
    ledger: Ledger, session: Session, identifier: SubjectIdentifier, *, create: bool
) -> str | None:
    """The person's ``subject_ref``; with ``create``, a new one for a person not seen before.

    Callers hold the log-head lock when creating, so two requests for a new person cannot both
    create a mapping.
    """
    key = lookup_key(ledger.identifier_key, identifier)
    ref: str | None = session.execute(_SUBJECT_REF, {"lookup": key}).scalar()
    if ref is not None or not create:
        return ref
    ref = "sub_" + secrets.token_hex(16)
    session.connection().execute(
        _INSERT_SUBJECT, {"lookup": key, "subject_ref": ref, "created_at": ledger.clock()}
    )
    return ref
