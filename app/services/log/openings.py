"""Reading the log through its openings (log format 2).

A leaf about a person holds only a commitment (:mod:`app.ledger.commitment`); what it commits to,
the *opening*, is a row of ``log_openings``. Everything that reads entries to act on them
(``rebuild``, ``verify``'s replay, ``policy replay``, ``GET /v1/log/entries/{i}``) reads them
here, so a clear leaf (format 1, or an entry with nothing personal) and an opened one reach it
as the same decoded entry.

An entry whose opening was deleted by an erasure is *erased*: a ``subject.erased`` entry lists
its index. Readers skip it (its projection rows went with it). A committed leaf without an
opening that no ``subject.erased`` entry covers is not erased but lost, and reading it fails
(:class:`Unopened`), as does an opening that does not open its leaf.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.ledger.commitment import Opening, is_committed, read_committed_leaf
from app.ledger.entry import decode_entry
from app.ledger.errors import EntryError
from app.ledger.events import EVENT_TYPES, SubjectErased, parse_event
from app.models import LogEntry, LogOpening
from app.text import with_article

Decode = Callable[[bytes], dict[str, Any]]
# Entry types about a person: appended as committed leaves (log format 2), their openings kept
# in log_openings, from which an erasure deletes them.
COMMITTED_TYPES = frozenset(t for t, cls in EVENT_TYPES.items() if cls.PERSONAL)
# A format-1 leaf (the canonical entry, members sorted) starts so; a committed one with
# "commitment".
_CLEAR_LEAF = b'{"data":'
_COMMITTED_LEAF = b'{"commitment":'

State = Literal["clear", "opened", "erased", "unreadable"]


class Unopened(EntryError):
    """A committed leaf whose opening is missing (and not erased) or does not open it, or an
    opening beside a leaf that commits to nothing."""


class UnreadableEntry(Exception):
    """The entry at ``index`` cannot be read: ``error`` says why."""

    def __init__(self, index: int, error: EntryError) -> None:
        super().__init__(f"entry {index}: {error}")
        self.index = index
        self.error = error


@dataclass(frozen=True, slots=True)
class Read:
    """One entry as stored: its leaf and, unless it was erased, the entry the leaf is or
    commits to (``opening`` is ``None`` for a clear leaf, and for an erased one)."""

    index: int
    leaf: bytes
    leaf_hash: bytes
    state: State
    entry: dict[str, Any] | None
    opening: Opening | None
    erased_by: int | None = None  # the index of the subject.erased entry that covers it

    @property
    def committed(self) -> bool:
        """Whether the leaf is a commitment (log format 2), safe to show to any reader, rather
        than the entry itself (anything else, damaged leaves included)."""
        return self.leaf.startswith(_COMMITTED_LEAF)


_ERASURES = (
    select(LogEntry.idx, LogEntry.leaf)
    .where(LogEntry.entry_type == SubjectErased.TYPE)
    .order_by(LogEntry.idx)
)


def erased_indexes(session: Session) -> dict[int, int]:
    """Every erased entry's index, mapped to the index of the ``subject.erased`` entry that
    lists it (that entry is in the clear: it holds nothing personal). :class:`UnreadableEntry`
    if one of those entries cannot be read."""
    erased: dict[int, int] = {}
    for idx, leaf in session.execute(_ERASURES):
        try:
            event = parse_event(decode_entry(leaf))
        except EntryError as exc:
            raise UnreadableEntry(idx, exc) from None
        if not isinstance(event, SubjectErased):  # the type column disagrees with the leaf
            raise UnreadableEntry(idx, EntryError("it is filed as subject.erased but is not"))
        for index in event.indexes:
            erased.setdefault(index, idx)
    return erased


def open_stored(
    index: int,
    leaf: bytes,
    stored: tuple[str, bytes, bytes] | None,
    erased: dict[int, int],
    decode: Decode = decode_entry,
) -> tuple[State, dict[str, Any] | None, Opening | None]:
    """What the leaf stored at ``index`` says, given its opening row (``subject_ref``, salt and
    entry; ``None`` if there is none) and the erased indexes. :class:`Unopened` for an opening
    that is missing (and not erased), does not open the leaf, or is filed under another person
    than the entry names (an erasure would miss it); :class:`EntryError` for a leaf that is not
    canonical."""
    value = decode(leaf)
    if not is_committed(value):
        if stored is not None:
            raise Unopened("it is in the clear but an opening is stored for it")
        if index in erased:
            # A format-1 leaf about a person, written before log format 2: the leaf still
            # holds the entry, but the service erased the person and no longer reads it.
            if value.get("type") not in COMMITTED_TYPES:
                raise Unopened("a subject.erased entry lists it, but it is not about a person")
            return "erased", None, None
        return "clear", value, None
    committed = read_committed_leaf(value)
    if stored is None:
        if index in erased:
            return "erased", None, None
        raise Unopened(
            f"it commits to {with_article(committed.entry_type)} entry whose opening is missing, "
            "and no subject.erased entry covers it"
        )
    subject_ref, salt, entry = stored
    opening = Opening(bytes(salt), bytes(entry))
    try:
        opened = committed.open(opening, decode)
    except EntryError as exc:
        raise Unopened(str(exc)) from None
    data = opened.get("data")
    if not isinstance(data, dict) or data.get("subject_ref") != subject_ref:
        raise Unopened("its opening is filed under another person than the entry names")
    return "opened", opened, opening


def read(session: Session, index: int, row: LogEntry) -> Read:
    """The stored entry ``row`` (at ``index``) with its opening, if it has one."""
    opening = session.get(LogOpening, index)
    erased = erased_indexes(session) if opening is None else {}
    stored = None if opening is None else (opening.subject_ref, opening.salt, opening.entry)
    state, entry, opened = open_stored(index, row.leaf, stored, erased)
    return Read(index, row.leaf, row.leaf_hash, state, entry, opened, erased.get(index))


_OPENED = (
    select(LogEntry.idx, LogEntry.leaf, LogOpening.subject_ref, LogOpening.salt, LogOpening.entry)
    .outerjoin(LogOpening, LogOpening.idx == LogEntry.idx)
    .order_by(LogEntry.idx)
    .execution_options(yield_per=2000)
)


def entries(
    session: Session, decode: Decode = decode_entry
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Every entry in index order, opened where it is committed; erased entries are skipped.
    The first entry that cannot be read (not canonical, or a missing or wrong opening) stops
    the stream with :class:`UnreadableEntry`, naming it."""
    erased = erased_indexes(session)
    for idx, leaf, subject_ref, salt, entry in session.execute(_OPENED):
        stored = None if salt is None else (subject_ref, salt, entry)
        try:
            _, value, _ = open_stored(idx, leaf, stored, erased, decode)
        except EntryError as exc:
            raise UnreadableEntry(idx, exc) from None
        if value is not None:
            yield idx, value


_CLEAR_PERSONAL = (
    select(LogEntry.idx, LogEntry.leaf)
    .where(LogEntry.entry_type.in_(sorted(COMMITTED_TYPES)))
    .order_by(LogEntry.idx)
    .execution_options(yield_per=2000)
)


def clear_personal_entries(session: Session) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """Every entry about a person written in the clear, before log format 2, as (index,
    ``subject_ref``, entry): a log begun before format 2 keeps these leaves as they were, so an
    erasure or a retention run must find them by reading them. Entries already erased are
    left out. Every such entry precedes the first committed one, so the read stops there: a
    log begun under format 2 costs one row."""
    erased = erased_indexes(session)
    rows = session.execute(_CLEAR_PERSONAL)
    try:
        for idx, leaf in rows:
            if not bytes(leaf).startswith(_CLEAR_LEAF):
                return  # the first committed leaf: format 2 from here on
            if idx in erased:
                continue
            try:
                entry = decode_entry(bytes(leaf))
            except EntryError as exc:
                raise UnreadableEntry(idx, exc) from None
            subject_ref = entry.get("data", {}).get("subject_ref")
            if isinstance(subject_ref, str):
                yield idx, subject_ref, entry
    finally:
        rows.close()
