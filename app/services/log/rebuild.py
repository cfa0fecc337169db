"""Re-derive the projection tables from the log and compare (``consent-ledger rebuild``).

The log is the source of truth; ``organisations``, ``api_clients``, ``consents``,
``consent_events``, ``objections``, ``policy_versions``, ``decisions``, ``disclosures`` and
``disclosure_consents`` are projections kept for fast queries, updated in the same transaction
as each entry. This module replays every entry, in index order, into the rows
the projections should hold, and reports each difference. ``--check`` only reports; without it
the consent-side projections are rewritten from the log in one transaction. Subjects (the
identifier mapping) and token hashes are not in the log by design, and are not touched.
Entries are read through their openings (app.services.log.openings): an erased entry is
skipped, as its rows were deleted with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.ledger.entry import decode_entry
from app.ledger.errors import EntryError
from app.ledger.events import Logged, MalformedEntry, UnknownEntryType, parse_entry, time_text
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
)

if TYPE_CHECKING:
    from app.services.container import Ledger

from app.services.log import openings
from app.services.log.projections import InMemory, Row, key_columns, primary_key, project

Progress = Callable[[int, int], None]
Expected = InMemory


class Unreplayable(Exception):
    """An entry refers to a row the log before it does not hold, or lacks a field."""

    def __init__(self, index: int, exc: Exception) -> None:
        self.index = index
        if isinstance(exc, MalformedEntry):
            self.reason = f"is not a well-formed entry: {exc}"
        elif isinstance(exc, EntryError):
            self.reason = f"cannot be read: {exc}"
        else:
            self.reason = f"cannot be replayed: {type(exc).__name__} {exc}"
        super().__init__(f"entry {index} {self.reason}")


def replay(
    session: Session,
    total: int,
    progress: Progress | None = None,
    also: Callable[[int, Logged | MalformedEntry], None] | None = None,
    decode: Callable[[bytes], dict[str, Any]] = decode_entry,
) -> Expected:
    """The rows the projections should hold. ``also`` is shown each entry of a known type in
    the same pass, as its event or the error that says what is wrong with it (``verify``
    re-evaluates the logged decisions with it); ``decode`` may skip the canonical-form check
    where the caller has just made it in the same snapshot."""
    exp = Expected()
    for n, (idx, entry) in enumerate(_readable(session, decode), start=1):
        try:
            logged: Logged | MalformedEntry | None = parse_entry(entry)
        except UnknownEntryType:
            logged = None  # in no projection, and states no fact a decision reads
        except MalformedEntry as exc:
            logged = exc
        if also is not None and logged is not None:
            also(idx, logged)
        if isinstance(logged, MalformedEntry):
            raise Unreplayable(idx, logged)
        if logged is not None:
            try:
                project(exp, idx, logged.time, logged.event)
            except LookupError as exc:  # a row no earlier entry created
                raise Unreplayable(idx, exc) from None
        if progress and (n % 5000 == 0 or n == total):
            progress(n, total)
    return exp


def _readable(
    session: Session, decode: Callable[[bytes], dict[str, Any]]
) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        yield from openings.entries(session, decode)
    except openings.UnreadableEntry as exc:
        raise Unreplayable(exc.index, exc.error) from None


def _plain(value: Any) -> Any:
    return time_text(value) if isinstance(value, datetime) else value


def _stored(session: Session, model: type[Base], columns: list[str]) -> dict[Any, Row]:
    out: dict[Any, Row] = {}
    for obj in session.execute(select(model)).scalars():
        key = primary_key(model, {c: getattr(obj, c) for c in key_columns(model)})
        out[key] = {c: getattr(obj, c) for c in columns}
    return out


# The projections the log determines, by the name differences are reported under.
TABLES: list[tuple[str, type[Base]]] = [
    ("organisations", Organisation),
    ("clients", ApiClient),
    ("consents", Consent),
    ("consent_events", ConsentEvent),
    ("objections", Objection),
    ("policy_versions", PolicyVersion),
    ("decisions", DecisionRecord),
    ("disclosures", Disclosure),
    ("disclosure_consents", DisclosureConsent),
]


def differences(session: Session, exp: Expected) -> list[str]:
    found: list[str] = []
    for name, model in TABLES:
        expected = exp.of(model)
        keys = set(key_columns(model))
        columns = sorted({c for row in expected.values() for c in row} - keys)
        stored = _stored(session, model, columns)
        for k in sorted(set(expected) | set(stored), key=str):
            if k not in stored:
                found.append(f"{name} {k}: in the log but missing from the table")
            elif k not in expected:
                found.append(f"{name} {k}: in the table but not in the log")
            else:
                for c in columns:
                    want, have = expected[k].get(c), stored[k].get(c)
                    # Times compare as the log spells them (a stored time is the same instant).
                    if want != have and _plain(want) != _plain(have):
                        found.append(
                            f"{name} {k}: {c} is {_plain(have)!r} in the table but "
                            f"{_plain(want)!r} in the log"
                        )
    return found


@dataclass(frozen=True)
class RebuildReport:
    entries: int
    differences: list[str]


def check(session: Session, total: int, progress: Progress | None = None) -> RebuildReport:
    exp = replay(session, total, progress)
    return RebuildReport(total, differences(session, exp))


def rewrite_consent_projections(session: Session, exp: Expected) -> None:
    """Replace consents, consent events and objections with what the log says (one
    transaction; the caller holds the log-head lock so no write interleaves)."""
    # disclosure_consents refers to consents: take it out and put it back from the log too.
    session.execute(delete(DisclosureConsent))
    session.execute(delete(ConsentEvent))
    session.execute(delete(Consent))
    session.execute(delete(Objection))
    session.flush()
    for model in (Consent, ConsentEvent, Objection, DisclosureConsent):
        # Added as entities, flushed in dependency order by the unit of work.
        session.add_all(model(**row) for row in exp.of(model).values())
    session.flush()


@dataclass(frozen=True)
class RepairReport:
    entries: int
    repaired: list[str]
    still_differs: list[str]


def repair(ledger: Ledger, progress: Progress | None = None) -> RepairReport:
    """Rewrite the consent projections from the log, in a batch of its own (so no write
    interleaves between reading the log and rewriting the rows), and say what changed."""

    def rewrite(session: Session) -> RepairReport:
        total = ledger.log_store.size(session)
        expected = replay(session, total, progress)
        before = differences(session, expected)
        rewrite_consent_projections(session, expected)
        return RepairReport(total, before, differences(session, expected))

    return ledger.write(rewrite, alone=True)
