"""Decisions re-evaluated from the log alone: the IG lead's what-if, and verify's proof.

:class:`LogFacts` walks the log in order and holds the facts as the log states them after each
entry: organisations and their kinds, each person's consents and objections, the published
policies and which one is in force. Nothing is read from the projection tables, which no
trigger guards.

- :func:`replay_decisions` re-evaluates every logged decision under a candidate policy and
  reports those whose outcome would change, before anyone publishes the candidate.
- :class:`AnswerAudit` (``consent-ledger verify``) re-evaluates every logged decision and
  disclosure under the policy the log had in force at its index, and names each whose logged
  answer does not follow: an answer the service gave from an edited projection row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.errors import LogUnavailable
from app.ledger.errors import EntryError
from app.ledger.events import (
    ConsentConfirmed,
    ConsentGranted,
    ConsentWithdrawn,
    DecisionMade,
    DisclosureRecorded,
    Event,
    Logged,
    MalformedEntry,
    ObjectionRecorded,
    ObjectionWithdrawn,
    OrganisationRegistered,
    PolicyPublished,
    UnknownEntryType,
    parse_entry,
)
from app.policy import (
    ConsentFact,
    Decision,
    Facts,
    LegalBasis,
    ObjectionFact,
    Party,
    Policy,
    PolicyError,
    Request,
    evaluate,
)
from app.services.decisions import policies
from app.services.log import openings
from app.services.log.rebuild import Unreplayable


@dataclass(frozen=True)
class Change:
    index: int
    decision_id: str
    request: str
    was: dict[str, Any]
    would_be: dict[str, Any]


@dataclass(frozen=True)
class ReplayReport:
    decisions: int
    changes: list[Change]


class NotFromLog(Exception):
    """An entry refers to something the log before it does not hold."""


class LogFacts:
    """The facts as the log states them after the entries applied so far."""

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}
        # Facts per person, so each decision reads only its own person's (not every fact so far).
        self._consents: dict[str, dict[str, ConsentFact]] = {}
        self._objections: dict[str, dict[str, ObjectionFact]] = {}
        self._documents: dict[str, dict[str, Any]] = {}
        self.in_force: str | None = None

    def apply(self, idx: int, time: datetime, event: Event) -> None:
        """Take in one entry; entries that state no fact a decision reads are ignored."""
        match event:
            case OrganisationRegistered():
                self.kinds[event.id] = event.kind
            case ConsentGranted():
                self._consents.setdefault(event.subject_ref, {})[event.consent_id] = ConsentFact(
                    id=event.consent_id,
                    purpose=event.purpose,
                    recipients=frozenset(event.recipients),
                    categories=frozenset(event.data_categories),
                    form=event.form,
                    status="active",
                    recorded_at=time,
                    recorded_by_kind=self.party(event.recorded_by).kind,
                    recorded_by=event.recorded_by,
                    sequence=idx,
                    valid_from=event.valid_from,
                    expires_at=event.expires_at,
                )
            case ConsentConfirmed() | ConsentWithdrawn():
                person = self._consents.get(event.subject_ref, {})
                if event.consent_id not in person:
                    raise NotFromLog(
                        f"refers to consent {event.consent_id}, which the log does not hold"
                    )
                change = (
                    {"confirmed": True}
                    if isinstance(event, ConsentConfirmed)
                    else {"status": "withdrawn"}
                )
                person[event.consent_id] = dataclasses.replace(person[event.consent_id], **change)
            case ObjectionRecorded():
                self._objections.setdefault(event.subject_ref, {})[event.objection_id] = (
                    ObjectionFact(event.objection_id, event.scope, "active", time, idx)
                )
            case ObjectionWithdrawn():
                held = self._objections.get(event.subject_ref, {})
                if event.objection_id not in held:
                    raise NotFromLog(
                        f"refers to objection {event.objection_id}, which the log does not hold"
                    )
                held[event.objection_id] = dataclasses.replace(
                    held[event.objection_id], status="withdrawn"
                )
            case PolicyPublished():
                # The newest publication is in force, a re-published older version included.
                self._documents[event.version] = event.policy
                self.in_force = event.version

    def party(self, org_id: str) -> Party:
        kind = self.kinds.get(org_id)
        if kind is None:
            raise NotFromLog(f"names organisation {org_id}, which the log had not registered")
        return Party(org_id, kind)

    def facts(self, subject_ref: str) -> Facts:
        return Facts(
            tuple(self._consents.get(subject_ref, {}).values()),
            tuple(self._objections.get(subject_ref, {}).values()),
        )

    def request(self, made: DecisionMade, categories: Sequence[str]) -> Request:
        """The question a ``decision.made`` entry answered, for ``categories``."""
        basis = made.legal_basis
        return Request(
            self.party(made.from_org),
            self.party(made.to_org),
            made.purpose,
            tuple(categories),
            LegalBasis(basis.type, basis.reference) if basis else None,
        )

    def policy_in_force(self, named: str) -> Policy:
        """The policy in force now, which an answer naming version ``named`` must have used."""
        if self.in_force is None:
            raise NotFromLog(f"names policy {named}, but the log had published no policy")
        if named != self.in_force:
            raise NotFromLog(
                f"names policy {named}, but the log had policy {self.in_force} in force"
            )
        return policies.policy_from_document(named, self._documents[named])


def _entries(session: Session) -> Iterator[tuple[int, Logged]]:
    """Every entry of a known type, read as its event (an unknown type states no fact). An
    entry that cannot be read (not canonical JSON, or not as its type declares) stops the
    replay with :class:`Unreplayable`, naming it: a decision after it cannot be replayed on
    facts that are not known."""
    try:
        for idx, entry in openings.entries(session):
            try:
                yield idx, parse_entry(entry)
            except UnknownEntryType:
                continue
            except EntryError as exc:
                raise Unreplayable(idx, exc) from None
    except openings.UnreadableEntry as exc:
        raise Unreplayable(exc.index, exc.error) from None


def replay_decisions(
    session: Session, candidate: Policy, progress: Callable[[int], None] | None = None
) -> ReplayReport:
    state = LogFacts()
    changes: list[Change] = []
    count = 0
    for idx, logged in _entries(session):
        made, time = logged.event, logged.time
        if not isinstance(made, DecisionMade):
            state.apply(idx, time, made)
            continue
        count += 1
        candidate_decision = evaluate(
            candidate,
            state.request(made, made.data_categories),
            state.facts(made.subject_ref),
            time,
        )
        was = _outcome(made.answer.data())
        would_be = _outcome(candidate_decision.as_json())
        if was != would_be:
            changes.append(
                Change(
                    idx,
                    made.decision_id,
                    f"{made.from_org} -> {made.to_org} {made.purpose} "
                    f"{','.join(made.data_categories)}",
                    was,
                    {
                        **would_be,
                        "reasons": [
                            f"{r['code']} ({r['rule']})"
                            for r in candidate_decision.as_json()["reasons"]
                        ],
                    },
                )
            )
        if progress and count % 1000 == 0:
            progress(count)
    return ReplayReport(count, changes)


def _outcome(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "decision": d["decision"],
        "permitted": sorted(d["permitted_categories"]),
        "denied": {x["category"]: x["reason"] for x in d["denied_categories"]},
    }


# -- verify: every logged answer follows from the log ------------------------------------------


@dataclass(frozen=True)
class Unfounded:
    """A logged entry that does not follow from the log before it."""

    index: int
    what: str  # "decision dec_...", "disclosure dis_..." or the entry's type
    problem: str

    def __str__(self) -> str:
        return f"entry {self.index} ({self.what}): {self.problem}"


# A logged answer's fields (those of :meth:`Decision.as_json`) are compared whole, but reasons
# by code and rule: their messages are prose from the policy and the engine, and a reworded
# message is not a different answer.


def _comparable(key: str, value: Any) -> Any:
    if key == "reasons" and isinstance(value, list):
        return [f"{r.get('code')} ({r.get('rule')})" for r in value]
    if key == "denied_categories" and isinstance(value, list):
        return [f"{x.get('category')}: {x.get('reason')} ({x.get('rule')})" for x in value]
    return value


def _differences(logged: Mapping[str, Any], replayed: Decision) -> str | None:
    """How the logged answer fields (those of ``logged``) differ from the replayed ones."""
    again = replayed.as_json()
    found = []
    for key, value in logged.items():
        if value == again[key]:
            continue  # the usual case, without building the comparable forms
        was, now = _comparable(key, value), _comparable(key, again[key])
        if was != now:
            found.append(f"{key} {was!r} in the log but {now!r} on replay")
    if not found:
        return None
    return "the logged answer does not follow from the log: " + "; ".join(found)


@dataclass(frozen=True)
class _Made:
    """What a disclosure under a logged decision is checked against."""

    event: DecisionMade
    permitted: frozenset[str]


class AnswerAudit:
    """Re-evaluates each logged decision and disclosure against the log before it.

    Fed every entry of a known type in index order through :meth:`see` (one pass, shared with
    the projection rebuild); keeps the first ``keep`` answers that do not follow, and counts
    them all.
    """

    def __init__(self, keep: int = 20) -> None:
        self.state = LogFacts()
        self.decisions = 0
        self.disclosures = 0
        self.unfounded: list[Unfounded] = []
        self.unfounded_count = 0
        self._keep = keep
        self._made: dict[str, _Made] = {}

    def see(self, idx: int, logged: Logged | MalformedEntry) -> None:
        if isinstance(logged, MalformedEntry):
            # Signed, but not what the service writes: a field missing, extra or mistyped.
            self._unfounded(idx, logged.entry_type, f"is not a well-formed entry: {logged}")
            return
        what = "entry"
        try:
            event, time = logged.event, logged.time
            what = event.TYPE
            if isinstance(event, DecisionMade):
                what = f"decision {event.decision_id}"
                problem = self._decision(time, event)
            elif isinstance(event, DisclosureRecorded):
                what = f"disclosure {event.disclosure_id}"
                problem = self._disclosure(time, event)
            else:
                self.state.apply(idx, time, event)
                if isinstance(event, PolicyPublished):
                    self.state.policy_in_force(event.version)  # the document must parse
                problem = None
        except NotFromLog as exc:
            problem = str(exc)
        except (PolicyError, LogUnavailable) as exc:
            problem = f"its policy cannot be used: {exc}"
        except (LookupError, TypeError, ValueError, AttributeError) as exc:
            problem = f"cannot be replayed: {type(exc).__name__} {exc}"
        if problem is not None:
            self._unfounded(idx, what, problem)

    def _unfounded(self, idx: int, what: str, problem: str) -> None:
        self.unfounded_count += 1
        if len(self.unfounded) < self._keep:
            self.unfounded.append(Unfounded(idx, what, problem))

    def _decision(self, time: datetime, made: DecisionMade) -> str | None:
        self.decisions += 1
        self._made[made.decision_id] = _Made(made, frozenset(made.answer.permitted_categories))
        policy = self.state.policy_in_force(made.answer.policy_version)
        replayed = evaluate(
            policy,
            self.state.request(made, made.data_categories),
            self.state.facts(made.subject_ref),
            time,
        )
        return _differences(made.answer.data(), replayed)

    def _disclosure(self, time: datetime, d: DisclosureRecorded) -> str | None:
        self.disclosures += 1
        made = self._made.get(d.decision_id)
        if made is None:
            return f"names decision {d.decision_id}, which the log does not hold before it"
        decision = made.event
        # A deny's permitted categories may be disclosed too (G7), so what is checked is that
        # every disclosed category was permitted (``beyond``), whatever the decision as a whole.
        basis = decision.legal_basis
        for key, now, was in (
            ("subject_ref", d.subject_ref, decision.subject_ref),
            ("from", d.from_org, decision.from_org),
            ("to", d.to_org, decision.to_org),
            ("purpose", d.purpose, decision.purpose),
            ("legal_basis", d.legal_basis, basis.type if basis else None),
        ):
            if now != was:
                return f"its {key} differs from that of decision {d.decision_id}"
        beyond = [c for c in d.data_categories if c not in made.permitted]
        if beyond:
            return f"discloses {', '.join(beyond)}, which decision {d.decision_id} did not permit"
        # Re-evaluated at the disclosure's own index, as the service must have done (G5).
        policy = self.state.policy_in_force(d.policy_version)
        replayed = evaluate(
            policy,
            self.state.request(decision, d.data_categories),
            self.state.facts(d.subject_ref),
            time,
        )
        if replayed.decision != "permit":
            denied = ", ".join(f"{x.category} ({x.reason})" for x in replayed.denied_categories)
            return f"the share was not permitted at its time: {denied}"
        logged = {
            "basis": d.basis,
            "consents": list(d.consents),
            "policy_version": d.policy_version,
        }
        return _differences(logged, replayed)
