"""Typed log events: one frozen dataclass per entry type, the one spelling of each payload.

An entry is an envelope ``{"v": 1, "type": ..., "time": ..., "data": ...}`` around a payload.
Each entry type's payload is declared once here, as the fields of its event class; the writers
build events, and ``rebuild``, ``verify`` and ``policy replay`` read entries back through
:func:`parse_entry`. :meth:`Record.data` is the payload exactly as the writers have always
written it (existing leaves must keep their bytes, ``tests/ledger/test_events.py`` holds it to
a stored log), and :meth:`Record.parse` is its inverse: it checks every field's JSON type, that
none is missing and none is extra, and raises :class:`EntryError` naming the field.

A field's JSON key is its name unless the field says otherwise (``from`` is a Python keyword);
a field holding a :class:`Record` marked ``flatten`` contributes its keys to the payload itself
(a decision's answer). Times are aware datetimes, written in UTC with ``Z``.

Pure: standard library only, no clock (the time is the caller's), like the rest of the ledger.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from app.ledger.errors import EntryError

__all__ = [
    "EVENT_TYPES",
    "FORMAT_VERSION",
    "AccessLinkCreated",
    "AccessLinkRevoked",
    "Answer",
    "ClientCreated",
    "ClientRevoked",
    "ClientTokenRotated",
    "ConsentConfirmed",
    "ConsentGranted",
    "ConsentWithdrawn",
    "DecisionMade",
    "Denied",
    "DisclosureRecorded",
    "Event",
    "KeyAdded",
    "KeyRetired",
    "LegalBasisRef",
    "Logged",
    "MalformedEntry",
    "Notify",
    "ObjectionRecorded",
    "ObjectionWithdrawn",
    "ObligationAcknowledged",
    "OrganisationRegistered",
    "PolicyPublished",
    "Reason",
    "Record",
    "RollbackAccepted",
    "SubjectErased",
    "UnknownEntryType",
    "envelope",
    "parse_entry",
    "parse_event",
    "time_text",
]

FORMAT_VERSION = 1
"""The envelope's ``v``: every entry written so far is format 1."""


class MalformedEntry(EntryError):
    """An entry of a known type that is not as its event class declares."""

    def __init__(self, entry_type: str, problem: str) -> None:
        super().__init__(f"{entry_type} {problem}")
        self.entry_type = entry_type


class UnknownEntryType(EntryError):
    """An entry whose type no event class declares (``rebuild`` and ``verify`` pass over it:
    it is in no projection and states no fact a decision reads)."""


# Field metadata: written under another JSON key than the Python name; a record whose keys are
# written into the payload itself; a time written to the second (an access link's expiry
# always has been).
_FROM: Mapping[str, Any] = {"key": "from"}
_TO: Mapping[str, Any] = {"key": "to"}
_FLATTEN: Mapping[str, Any] = {"flatten": True}
_SECONDS: Mapping[str, Any] = {"timespec": "seconds"}


def time_text(value: datetime, timespec: str = "microseconds") -> str:
    """A time as the log spells it: RFC 3339 in UTC, with ``Z``."""
    return value.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


# -- the codec: derived once per class from its fields' types --------------------------------
#
# Every entry of a log is parsed on each ``verify`` and ``rebuild``, so the path named in an
# error is only built when there is one: a decoder raises :class:`_Problem`, and each level it
# passes through adds its own key on the way out.


class _Problem(Exception):
    def __init__(self, problem: str, *where: str) -> None:
        self.problem = problem
        self.where = list(where)  # innermost first

    def text(self) -> str:
        return f"{''.join(reversed(self.where))} {self.problem}"


Decode = Callable[[Any], Any]
Encode = Callable[[Any], Any]


def _decode_str(value: object) -> str:
    if type(value) is not str:
        raise _Problem("must be a string")
    return value


def _decode_int(value: object) -> int:
    if type(value) is not int:
        raise _Problem("must be an integer")
    return value


def _decode_object(value: object) -> dict[str, Any]:
    if type(value) is not dict:
        raise _Problem("must be an object")
    return value


def _decode_time(value: object) -> datetime:
    if type(value) is not str:
        raise _Problem("must be an RFC 3339 time in UTC")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Problem(f"must be an RFC 3339 time in UTC, not {value[:40]!r}") from None
    if parsed.utcoffset() is None:
        raise _Problem("must be an RFC 3339 time in UTC (it has no offset)")
    return parsed


def _identity(value: Any) -> Any:
    return value


def _undecodable(value: object) -> Any:
    raise AssertionError("a flattened record is parsed from the payload itself")


def _codec_for(hint: Any, meta: Mapping[str, Any]) -> tuple[Decode, Encode]:
    """How a field of type ``hint`` is read from and written to JSON."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        decode, encode = _codec_for(inner, meta)

        def decode_optional(value: object) -> Any:
            return None if value is None else decode(value)

        def encode_optional(value: Any) -> Any:
            return None if value is None else encode(value)

        return decode_optional, encode_optional
    if hint is str:
        return _decode_str, _identity
    if hint is int:
        return _decode_int, _identity
    if hint is datetime:
        timespec = meta.get("timespec", "microseconds")
        return _decode_time, lambda value: time_text(value, timespec)
    if typing.get_origin(hint) is dict:
        return _decode_object, _identity
    if typing.get_origin(hint) is tuple:
        item, _ = typing.get_args(hint)
        decode_item, encode_item = _codec_for(item, {})

        def decode_list(value: object) -> tuple[Any, ...]:
            if type(value) is not list:
                raise _Problem("must be an array")
            # The usual list, of strings, checked without a call per item.
            if decode_item is _decode_str and all(type(v) is str for v in value):
                return tuple(value)
            out = []
            for n, v in enumerate(value):
                try:
                    out.append(decode_item(v))
                except _Problem as problem:
                    problem.where.append(f"[{n}]")
                    raise
            return tuple(out)

        return decode_list, lambda value: [encode_item(v) for v in value]
    if isinstance(hint, type) and issubclass(hint, Record):
        record = hint

        def decode_record(value: object) -> Any:
            if type(value) is not dict:
                raise _Problem("must be an object")
            return record._decode(value, exact=True)

        return decode_record, lambda value: value.data()
    raise TypeError(f"no JSON form for {hint!r}")  # a mistake in this module, found at import


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    key: str
    decode: Decode
    encode: Encode
    flatten: type[Record] | None
    # May be absent from an entry (read as None), and is left out when None: a field added
    # after entries without it were signed (``ConsentGranted.given_at``).
    optional: bool = False


@dataclass(frozen=True, slots=True)
class _Codec:
    """A class's fields, split so the common ones cost no call: strings are checked inline,
    and values JSON holds as they are (strings, integers, objects, null) are written as
    they are."""

    keys: frozenset[str]  # every JSON key of the payload, flattened records' included
    strings: tuple[tuple[str, str], ...]  # (name, key) of the fields that are str
    decoded: tuple[_Field, ...]  # the other fields
    as_is: tuple[tuple[str, str], ...]  # (name, key) of the fields written as they are
    encoded: tuple[_Field, ...]  # the other fields


_CODECS: dict[type[Record], _Codec] = {}


def _codec(cls: type[Record]) -> _Codec:
    known = _CODECS.get(cls)
    if known is not None:
        return known
    hints = typing.get_type_hints(cls)
    keys: set[str] = set()
    strings, decoded, as_is, encoded = [], [], [], []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if f.metadata.get("flatten"):
            assert isinstance(hint, type)
            assert issubclass(hint, Record)
            field_ = _Field(f.name, f.name, _undecodable, _identity, hint)
            decoded.append(field_)
            encoded.append(field_)
            keys |= _codec(hint).keys
            continue
        decode, encode = _codec_for(hint, f.metadata)
        key = f.metadata.get("key", f.name)
        keys.add(key)
        field_ = _Field(f.name, key, decode, encode, None, bool(f.metadata.get(OPTIONAL)))
        if decode is _decode_str and not field_.optional:
            strings.append((f.name, key))
        else:
            decoded.append(field_)
        if (encode is _identity or hint in _AS_IS) and not field_.optional:
            as_is.append((f.name, key))
        else:
            encoded.append(field_)
    codec = _Codec(frozenset(keys), tuple(strings), tuple(decoded), tuple(as_is), tuple(encoded))
    _CODECS[cls] = codec
    return codec


# Optional values whose JSON form is the value itself.
_AS_IS = (str | None, int | None)
_MISSING = object()
# Field metadata: the key may be absent (see _Field.optional).
OPTIONAL = "optional"


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """A JSON object with typed fields: an event's payload, or an object inside one."""

    def data(self) -> dict[str, Any]:
        """The JSON form, as written into the log."""
        codec = _CODECS.get(type(self)) or _codec(type(self))
        out = {key: getattr(self, name) for name, key in codec.as_is}
        for f in codec.encoded:
            value = getattr(self, f.name)
            if f.flatten is not None:
                out.update(value.data())
            elif not (f.optional and value is None):
                out[f.key] = f.encode(value)
        return out

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Self:
        """Read the JSON form back; :class:`EntryError` names the first field that is
        missing, extra, or of the wrong type."""
        try:
            return cls._decode(data, exact=True)
        except _Problem as problem:
            raise EntryError(f"{cls._where()} data{problem.text()}") from None

    @classmethod
    def _where(cls) -> str:
        return cls.__name__

    @classmethod
    def _decode(cls, data: Mapping[str, Any], *, exact: bool) -> Self:
        # A parsed payload is a dict: the ABC check (slow) only for any other mapping.
        if type(data) is not dict and not isinstance(data, Mapping):
            raise _Problem("must be an object")
        codec = _CODECS.get(cls) or _codec(cls)
        if exact and not codec.keys.issuperset(data):
            extra = next(key for key in data if key not in codec.keys)
            raise _Problem("is not a field of this entry", f".{extra}")
        values: dict[str, Any] = {}
        for name, key in codec.strings:
            value = data.get(key, _MISSING)
            if type(value) is not str:
                raise _Problem("is missing" if value is _MISSING else "must be a string", f".{key}")
            values[name] = value
        for f in codec.decoded:
            if f.flatten is not None:
                values[f.name] = f.flatten._decode(data, exact=False)
                continue
            try:
                value = data[f.key]
            except KeyError:
                if f.optional:
                    values[f.name] = None
                    continue
                raise _Problem("is missing", f".{f.key}") from None
            if value is None and f.optional:
                # One spelling per entry: absent, never null (its bytes are what is signed).
                raise _Problem("must be left out rather than null", f".{f.key}")
            try:
                values[f.name] = f.decode(value)
            except _Problem as problem:
                problem.where.append(f".{f.key}")
                raise
        return cls(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event(Record):
    """A log entry's payload; ``TYPE`` is the envelope's ``type``. ``PERSONAL``: the entry is
    about a person (it names their ``subject_ref``), so log format 2 commits to it rather than
    holding it (app.ledger.commitment); the others (organisations, clients, policies, the
    log's own) carry nothing personal and may stay in the clear."""

    TYPE: ClassVar[str]
    PERSONAL: ClassVar[bool] = False
    # The field naming the organisation that made the entry (an entry about a person only).
    MADE_BY: ClassVar[str | None] = None

    def made_by(self) -> str | None:
        """The organisation that made this entry, for an entry about a person."""
        return None if self.MADE_BY is None else str(getattr(self, self.MADE_BY))

    @classmethod
    def _where(cls) -> str:
        return cls.TYPE


# -- objects inside payloads ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LegalBasisRef(Record):
    """A legal basis an IG lead asserted instead of consent."""

    type: str
    reference: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Denied(Record):
    category: str
    reason: str
    rule: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Reason(Record):
    code: str
    rule: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer(Record):
    """What the policy engine answered (``Decision.as_json()``): the ``decisions.result``
    projection column, and the part of a decision entry that ``verify`` re-evaluates."""

    decision: str
    permitted_categories: tuple[str, ...]
    denied_categories: tuple[Denied, ...]
    reasons: tuple[Reason, ...]
    consents: tuple[str, ...]
    obligations: tuple[str, ...]
    policy_version: str
    basis: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Notify(Record):
    """An organisation that received data under a withdrawn consent, and what it must do."""

    organisation: str
    obligation: str


# -- the entry types --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OrganisationRegistered(Event):
    TYPE: ClassVar[str] = "organisation.registered"
    id: str
    name: str
    kind: str
    funder: str
    ods_code: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientCreated(Event):
    """Who can act, and as what (the token never enters the log)."""

    TYPE: ClassVar[str] = "client.created"
    client_id: str
    organisation: str
    role: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientRevoked(Event):
    TYPE: ClassVar[str] = "client.revoked"
    client_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientTokenRotated(Event):
    TYPE: ClassVar[str] = "client.token_rotated"
    client_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentGranted(Event):
    TYPE: ClassVar[str] = "consent.granted"
    PERSONAL: ClassVar[bool] = True
    MADE_BY: ClassVar[str | None] = "recorded_by"
    consent_id: str
    subject_ref: str
    purpose: str
    recipients: tuple[str, ...]
    data_categories: tuple[str, ...]
    form: str
    evidence_sha256: str | None
    valid_from: datetime | None
    expires_at: datetime | None
    recorded_by: str
    client_id: str
    # When the person gave the consent, for one given before it was recorded (an import of
    # paper or spreadsheet records, issue 17); absent (None) when given as it was recorded,
    # and on every entry made before it existed. The entry's own time stays when it was logged.
    given_at: datetime | None = field(default=None, metadata={OPTIONAL: True})


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentConfirmed(Event):
    TYPE: ClassVar[str] = "consent.confirmed"
    PERSONAL: ClassVar[bool] = True
    MADE_BY: ClassVar[str | None] = "by"
    consent_id: str
    subject_ref: str
    by: str
    client_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentWithdrawn(Event):
    TYPE: ClassVar[str] = "consent.withdrawn"
    PERSONAL: ClassVar[bool] = True
    MADE_BY: ClassVar[str | None] = "by"
    consent_id: str
    subject_ref: str
    reason: str | None
    by: str
    client_id: str
    notify: tuple[Notify, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectionRecorded(Event):
    TYPE: ClassVar[str] = "objection.recorded"
    PERSONAL: ClassVar[bool] = True
    MADE_BY: ClassVar[str | None] = "recorded_by"
    objection_id: str
    subject_ref: str
    scope: str
    recorded_by: str
    client_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectionWithdrawn(Event):
    TYPE: ClassVar[str] = "objection.withdrawn"
    PERSONAL: ClassVar[bool] = True
    MADE_BY: ClassVar[str | None] = "by"
    objection_id: str
    subject_ref: str
    by: str
    client_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyPublished(Event):
    """The whole policy document, so any past decision can be re-checked under it."""

    TYPE: ClassVar[str] = "policy.published"
    version: str
    name: str
    policy: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionMade(Event):
    TYPE: ClassVar[str] = "decision.made"
    PERSONAL: ClassVar[bool] = True
    MADE_BY: ClassVar[str | None] = "from_org"
    decision_id: str
    subject_ref: str
    from_org: str = field(metadata=_FROM)
    to_org: str = field(metadata=_TO)
    purpose: str
    data_categories: tuple[str, ...]
    legal_basis: LegalBasisRef | None
    client_id: str
    answer: Answer = field(metadata=_FLATTEN)


@dataclass(frozen=True, slots=True, kw_only=True)
class DisclosureRecorded(Event):
    TYPE: ClassVar[str] = "disclosure.recorded"
    PERSONAL: ClassVar[bool] = True
    MADE_BY: ClassVar[str | None] = "from_org"
    disclosure_id: str
    decision_id: str
    subject_ref: str
    from_org: str = field(metadata=_FROM)
    to_org: str = field(metadata=_TO)
    purpose: str
    data_categories: tuple[str, ...]
    basis: str | None
    legal_basis: str | None  # the type of the decision's legal basis
    consents: tuple[str, ...]
    policy_version: str
    client_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessLinkCreated(Event):
    """Who gave whom a way in, and until when (never the token)."""

    TYPE: ClassVar[str] = "access_link.created"
    PERSONAL: ClassVar[bool] = True
    MADE_BY: ClassVar[str | None] = "organisation"
    link_id: str
    subject_ref: str
    organisation: str
    client_id: str
    expires_at: datetime = field(metadata=_SECONDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessLinkRevoked(Event):
    TYPE: ClassVar[str] = "access_link.revoked"
    PERSONAL: ClassVar[bool] = True
    MADE_BY: ClassVar[str | None] = "organisation"
    link_id: str
    subject_ref: str
    organisation: str
    client_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectErased(Event):
    """A person was erased: the openings of the entries at ``indexes`` were deleted, with
    their identifier mapping and their rows. Holds nothing about the person: who asked (an
    organisation and client), why (``reason``, a code), under which of the requester's own case
    numbers (``reference``), and which leaves now commit to nothing that can be opened, so a
    verifier can tell an erased entry from a lost one."""

    TYPE: ClassVar[str] = "subject.erased"
    reason: str
    reference: str
    # Who asked: an API client and its organisation; None for an operator's command.
    organisation: str | None
    client_id: str | None
    count: int
    indexes: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ObligationAcknowledged(Event):
    """An organisation says it did what an obligation asked (UK GDPR Art 19): noted a
    withdrawal or objection, or erased what it held (``evidence_sha256``: the hash of its own
    record of the destruction). Names the obligation and the entry that created it, not the
    person."""

    TYPE: ClassVar[str] = "obligation.acknowledged"
    obligation_id: str
    cause_index: int
    kind: str
    organisation: str
    client_id: str
    outcome: str
    evidence_sha256: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RollbackAccepted(Event):
    """An operator accepted that the database lacks the newest published checkpoint."""

    TYPE: ClassVar[str] = "log.rollback_accepted"
    published_size: int | None
    published_root: str | None
    database_size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyAdded(Event):
    """The log has a new signing key (``keys rotate-signing``): every checkpoint from the one
    covering this entry is signed by it too, so anyone trusting the older key learns the new
    one from a checkpoint both signed. ``vkey`` is its verifier key, ``generation`` its number
    in the instance folder."""

    TYPE: ClassVar[str] = "log.key_added"
    vkey: str
    generation: int


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRetired(Event):
    """An older signing key was retired (``keys rotate-signing --retire-old``): it signed the
    checkpoints up to ``last_size`` and none after; its private key was destroyed."""

    TYPE: ClassVar[str] = "log.key_retired"
    vkey: str
    generation: int
    last_size: int


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        OrganisationRegistered,
        ClientCreated,
        ClientRevoked,
        ClientTokenRotated,
        ConsentGranted,
        ConsentConfirmed,
        ConsentWithdrawn,
        ObjectionRecorded,
        ObjectionWithdrawn,
        PolicyPublished,
        DecisionMade,
        DisclosureRecorded,
        AccessLinkCreated,
        AccessLinkRevoked,
        SubjectErased,
        ObligationAcknowledged,
        RollbackAccepted,
        KeyAdded,
        KeyRetired,
    )
}
for _cls in EVENT_TYPES.values():  # a field type without a JSON form fails here, at import
    _codec(_cls)


# -- the envelope -----------------------------------------------------------------------------


def envelope(event: Event, time: datetime) -> dict[str, Any]:
    """The entry for ``event`` at ``time``: format version, type, time and payload (the
    envelope ``log_store.make_entry`` builds, so the leaf bytes are unchanged)."""
    return {
        "v": FORMAT_VERSION,
        "type": event.TYPE,
        "time": time.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "data": event.data(),
    }


@dataclass(frozen=True, slots=True)
class Logged:
    """An entry read back: its envelope's time and its event."""

    time: datetime
    event: Event


_ENVELOPE = frozenset({"v", "type", "time", "data"})


def parse_entry(entry: Mapping[str, Any]) -> Logged:
    """Read a decoded entry: :class:`UnknownEntryType` for a type no class declares,
    :class:`MalformedEntry` naming the field for anything else that is not as written."""
    if not isinstance(entry, Mapping):
        raise EntryError("an entry must be an object")
    kind = entry.get("type")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise UnknownEntryType(f"type {str(kind)[:60]!r} is not an entry type of this log")
    try:
        if entry.get("v") != FORMAT_VERSION:
            raise _Problem(f"must be {FORMAT_VERSION}", "v")
        if not _ENVELOPE.issuperset(entry):
            raise _Problem("is not a field of an entry", min(set(entry) - _ENVELOPE))
        for key in ("time", "data"):
            if key not in entry:
                raise _Problem("is missing", key)
        try:
            time = _decode_time(entry["time"])
        except _Problem as problem:
            problem.where.append("time")
            raise
        try:
            event = cls._decode(entry["data"], exact=True)
        except _Problem as problem:
            problem.where.append("data")
            raise
    except _Problem as problem:
        raise MalformedEntry(cls.TYPE, problem.text()) from None
    return Logged(time, event)


def parse_event(entry: Mapping[str, Any]) -> Event:
    """The event a decoded entry holds (see :func:`parse_entry`)."""
    return parse_entry(entry).event
