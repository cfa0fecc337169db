"""Identifier key rotation: add a key, move every mapping to it, retire the old one.

``rotate`` adds the next generation (``app.services.log.keys``); from then on new people are
mapped under it, lookups try it first and then the older keys, and a write about a person found
under an older key moves their row (``subjects.resolve``). ``rekey`` moves the rest: it opens
each row's sealed identifier under the row's key, and computes its lookup and seals it again
under the newest, a chunk per write transaction, so it serialises with writers that create
mappings and can stop and start again anywhere (it only ever picks rows not yet under the
newest key). Rows made before key ids hold no sealed identifier and move only when next written
about. ``retire`` destroys a key once no mapping uses it. None of this touches the log: only
the ``subjects`` table and the key files change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from app.errors import DomainError
from app.models import Subject
from app.services.consents import subjects
from app.services.container import Ledger
from app.services.log import keys
from app.services.log.keys import IdentifierKey, IdentifierKeys

Progress = Callable[[int, int], None]
REKEY_CHUNK = 500


class IdentifierKeyError(DomainError):
    status = 409
    slug = "conflict"


@dataclass(frozen=True)
class KeyInUse:
    key: IdentifierKey | None  # None: a key id the instance does not hold
    key_id: str
    mappings: int


@dataclass(frozen=True)
class Rekeyed:
    newest: IdentifierKey
    moved: int
    total: int
    unsealed: int  # made before key ids: they move when next written about
    elsewhere: int  # under keys the instance does not hold


def _under(keys_: IdentifierKeys, key_id: str | None) -> str | None:
    """The key a row's ``key_id`` names; NULL is a row made before key ids, under
    generation 1."""
    if key_id is not None:
        return key_id
    original = keys_.original
    return original.key_id if original else None


def _usage(session: Session) -> dict[str | None, int]:
    rows = session.execute(select(Subject.key_id, func.count()).group_by(Subject.key_id))
    return {key_id: count for key_id, count in rows}


def key_usage(ledger: Ledger, session: Session) -> list[KeyInUse]:
    """Every key the instance holds, newest first, and every key id its mappings name that it
    does not hold, with the number of mappings under each."""
    held = ledger.identifier_keys
    counts: dict[str, int] = {}
    missing: dict[str, int] = {}
    for key_id, count in _usage(session).items():
        under = _under(held, key_id)
        if under is None:  # made before key ids, and identifier.key is gone
            missing["identifier.key"] = missing.get("identifier.key", 0) + count
        elif held.get(under) is None:
            missing[under] = missing.get(under, 0) + count
        else:
            counts[under] = counts.get(under, 0) + count
    out = [KeyInUse(k, k.key_id, counts.get(k.key_id, 0)) for k in held.all]
    return out + [KeyInUse(None, key_id, n) for key_id, n in sorted(missing.items())]


def rotate(ledger: Ledger) -> IdentifierKey:
    return keys.add_identifier_key(ledger.settings)


def _movable(old_ids: list[str]) -> Select[bytes, str, str | None, bytes | None]:
    """Rows the pass can move: under an older key held, with a sealed identifier."""
    return select(Subject.lookup, Subject.subject_ref, Subject.key_id, Subject.sealed).where(
        Subject.key_id.in_(old_ids), Subject.sealed.is_not(None)
    )


def rekey(ledger: Ledger, progress: Progress | None = None, chunk: int = REKEY_CHUNK) -> Rekeyed:
    held = ledger.identifier_keys
    newest = held.newest
    old_ids = [k.key_id for k in held.all[1:]]
    with ledger.db.read() as session:
        total = session.execute(
            select(func.count()).select_from(_movable(old_ids).subquery())
        ).scalar_one()
    moved = 0
    if total and progress:
        progress(0, total)

    def move_chunk(session: Session) -> int:
        rows = session.execute(_movable(old_ids).order_by(Subject.lookup).limit(chunk)).all()
        if not rows:
            return 0
        moves = []
        for lookup, ref, key_id, sealed in rows:
            key = held.get(key_id or "")
            assert key is not None  # as _movable selects
            assert sealed is not None
            try:
                identifier = subjects.unseal(key, bytes(sealed), ref)
            except InvalidTag:
                raise IdentifierKeyError(
                    f"the sealed identifier of {ref} does not open under key {key_id}: the row "
                    "was changed outside the service; nothing in this chunk was moved"
                ) from None
            moves.append(
                (bytes(lookup), ref, identifier, subjects.lookup_key(newest.secret, identifier))
            )
        taken = (
            session.execute(
                select(Subject.subject_ref).where(Subject.lookup.in_([m[3] for m in moves]))
            )
            .scalars()
            .all()
        )
        if taken:
            raise IdentifierKeyError(
                f"{len(taken)} people are mapped twice, under an older key and under the newest "
                f"(for example {taken[0]}); nothing in this chunk was moved"
            )
        for old_lookup, ref, identifier, new_lookup in moves:
            subjects.move_to(session, newest, old_lookup, identifier, ref, new_lookup)
        return len(moves)

    while True:
        # Each chunk its own write transaction, alone in its batch, under the log-head lock.
        done = ledger.write(move_chunk, alone=True)
        if not done:
            break
        moved += done
        if progress:
            progress(moved, max(total, moved))
    with ledger.db.read() as session:
        left = _usage(session)
        unsealed = session.execute(
            select(func.count())
            .select_from(Subject)
            .where(or_(Subject.key_id.is_(None), Subject.key_id != newest.key_id))
            .where(Subject.sealed.is_(None))
        ).scalar_one()
    elsewhere = sum(n for k, n in left.items() if k is not None and held.get(k) is None)
    return Rekeyed(newest, moved, total, unsealed, elsewhere)


def retire(ledger: Ledger, key_id: str) -> IdentifierKey:
    """Destroy an identifier key no mapping uses any more. Checked and done under the
    log-head lock, so no writer maps a person under it meanwhile."""

    def check_and_destroy(session: Session) -> IdentifierKey:
        held = ledger.identifier_keys
        key = held.get(key_id)
        if key is None:
            raise IdentifierKeyError(
                f"no identifier key {key_id} is held ({', '.join(k.key_id for k in held.all)} "
                "are): see `consent-ledger keys list`"
            )
        if key is held.newest:
            raise IdentifierKeyError(
                f"{key_id} is the newest identifier key: new people are mapped under it. "
                "Rotate first (`consent-ledger keys rotate-identifier`)"
            )
        under = Subject.key_id == key_id
        if key.generation == 1:
            under = or_(under, Subject.key_id.is_(None))
        using = session.execute(select(func.count()).select_from(Subject).where(under)).scalar_one()
        if using:
            raise IdentifierKeyError(
                f"{using} mappings still use it: run `consent-ledger keys rotate-identifier "
                "--rekey`; mappings made before key ids move only when next written about"
            )
        keys.destroy_identifier_key(ledger.settings, key)
        return key

    return ledger.write(check_and_destroy, alone=True)
