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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import LogUnavailable
from app.ledger.entry import decode_entry
from app.models import LogEntry
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
from app.services.log.rebuild import RESULT_KEYS


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


def _t(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


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

    def apply(self, idx: int, kind: str, time: datetime, d: dict[str, Any]) -> None:
        """Take in one entry; entries that state no fact a decision reads are ignored."""
        if kind == "organisation.registered":
            self.kinds[d["id"]] = d["kind"]
        elif kind == "consent.granted":
            self._consents.setdefault(d["subject_ref"], {})[d["consent_id"]] = ConsentFact(
                id=d["consent_id"],
                purpose=d["purpose"],
                recipients=frozenset(d["recipients"]),
                categories=frozenset(d["data_categories"]),
                form=d["form"],
                status="active",
                recorded_at=time,
                recorded_by_kind=self.party(d["recorded_by"]).kind,
                recorded_by=d["recorded_by"],
                sequence=idx,
                valid_from=_t(d["valid_from"]),
                expires_at=_t(d["expires_at"]),
            )
        elif kind in ("consent.confirmed", "consent.withdrawn"):
            person = self._consents.get(d["subject_ref"], {})
            if d["consent_id"] not in person:
                raise NotFromLog(
                    f"refers to consent {d['consent_id']}, which the log does not hold"
                )
            change = {"confirmed": True} if kind == "consent.confirmed" else {"status": "withdrawn"}
            person[d["consent_id"]] = dataclasses.replace(person[d["consent_id"]], **change)
        elif kind == "objection.recorded":
            self._objections.setdefault(d["subject_ref"], {})[d["objection_id"]] = ObjectionFact(
                d["objection_id"], d["scope"], "active", time, idx
            )
        elif kind == "objection.withdrawn":
            held = self._objections.get(d["subject_ref"], {})
            if d["objection_id"] not in held:
                raise NotFromLog(
                    f"refers to objection {d['objection_id']}, which the log does not hold"
                )
            held[d["objection_id"]] = dataclasses.replace(
                held[d["objection_id"]], status="withdrawn"
            )
        elif kind == "policy.published":
            # The newest publication is in force, a re-published older version included.
            self._documents[d["version"]] = d["policy"]
            self.in_force = d["version"]

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

    def request(self, d: dict[str, Any], categories: Sequence[str]) -> Request:
        """The question a ``decision.made`` entry answered, for ``categories``."""
        basis = d.get("legal_basis")
        return Request(
            self.party(d["from"]),
            self.party(d["to"]),
            d["purpose"],
            tuple(categories),
            LegalBasis(basis["type"], basis["reference"]) if basis else None,
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


def _entries(session: Session) -> Any:
    return session.execute(
        select(LogEntry.idx, LogEntry.leaf).order_by(LogEntry.idx).execution_options(yield_per=2000)
    )


def replay_decisions(
    session: Session, candidate: Policy, progress: Callable[[int], None] | None = None
) -> ReplayReport:
    state = LogFacts()
    changes: list[Change] = []
    count = 0
    for idx, leaf in _entries(session):
        entry = decode_entry(leaf)
        kind, d = entry["type"], entry["data"]
        time = datetime.fromisoformat(entry["time"])
        if kind != "decision.made":
            state.apply(idx, kind, time, d)
            continue
        count += 1
        candidate_decision = evaluate(
            candidate, state.request(d, d["data_categories"]), state.facts(d["subject_ref"]), time
        )
        was = _outcome(d)
        would_be = _outcome(candidate_decision.as_json())
        if was != would_be:
            changes.append(
                Change(
                    idx,
                    d["decision_id"],
                    f"{d['from']} -> {d['to']} {d['purpose']} {','.join(d['data_categories'])}",
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


def _differences(logged: dict[str, Any], replayed: Decision, keys: Sequence[str]) -> str | None:
    again = replayed.as_json()
    found = []
    for key in keys:
        if logged.get(key) == again[key]:
            continue  # the usual case, without building the comparable forms
        was, now = _comparable(key, logged.get(key)), _comparable(key, again[key])
        if was != now:
            found.append(f"{key} {was!r} in the log but {now!r} on replay")
    if not found:
        return None
    return "the logged answer does not follow from the log: " + "; ".join(found)


@dataclass(frozen=True)
class _Made:
    """What a disclosure under a logged decision is checked against."""

    entry: dict[str, Any]
    permitted: frozenset[str]


# The entries the audit reads: the facts a decision rests on, and the answers.
_READ = frozenset(
    {
        "organisation.registered",
        "consent.granted",
        "consent.confirmed",
        "consent.withdrawn",
        "objection.recorded",
        "objection.withdrawn",
        "policy.published",
        "decision.made",
        "disclosure.recorded",
    }
)


class AnswerAudit:
    """Re-evaluates each logged decision and disclosure against the log before it.

    Fed every entry in index order through :meth:`see` (one pass, shared with the projection
    rebuild); keeps the first ``keep`` answers that do not follow, and counts them all.
    """

    def __init__(self, keep: int = 20) -> None:
        self.state = LogFacts()
        self.decisions = 0
        self.disclosures = 0
        self.unfounded: list[Unfounded] = []
        self.unfounded_count = 0
        self._keep = keep
        self._made: dict[str, _Made] = {}

    def see(self, idx: int, entry: dict[str, Any]) -> None:
        kind = entry.get("type")
        if kind not in _READ:
            return
        what = str(kind)
        try:
            d, time = entry["data"], datetime.fromisoformat(entry["time"])
            if kind == "decision.made":
                what = f"decision {d['decision_id']}"
                problem = self._decision(time, d)
            elif kind == "disclosure.recorded":
                what = f"disclosure {d['disclosure_id']}"
                problem = self._disclosure(time, d)
            else:
                self.state.apply(idx, str(kind), time, d)
                if kind == "policy.published":
                    self.state.policy_in_force(d["version"])  # the document must parse
                problem = None
        except NotFromLog as exc:
            problem = str(exc)
        except (PolicyError, LogUnavailable) as exc:
            problem = f"its policy cannot be used: {exc}"
        except (LookupError, TypeError, ValueError, AttributeError) as exc:
            problem = f"cannot be replayed: {type(exc).__name__} {exc}"
        if problem is not None:
            self.unfounded_count += 1
            if len(self.unfounded) < self._keep:
                self.unfounded.append(Unfounded(idx, what, problem))

    def _decision(self, time: datetime, d: dict[str, Any]) -> str | None:
        self.decisions += 1
        self._made[d["decision_id"]] = _Made(d, frozenset(d["permitted_categories"]))
        policy = self.state.policy_in_force(d["policy_version"])
        replayed = evaluate(
            policy,
            self.state.request(d, d["data_categories"]),
            self.state.facts(d["subject_ref"]),
            time,
        )
        return _differences(d, replayed, RESULT_KEYS)

    def _disclosure(self, time: datetime, d: dict[str, Any]) -> str | None:
        self.disclosures += 1
        made = self._made.get(d["decision_id"])
        if made is None:
            return f"names decision {d['decision_id']}, which the log does not hold before it"
        decision = made.entry
        if decision["decision"] != "permit":
            return f"was recorded under decision {d['decision_id']}, which was a deny"
        basis = decision.get("legal_basis")
        for key, was in (
            ("subject_ref", decision["subject_ref"]),
            ("from", decision["from"]),
            ("to", decision["to"]),
            ("purpose", decision["purpose"]),
            ("legal_basis", basis["type"] if basis else None),
        ):
            if d[key] != was:
                return f"its {key} differs from that of decision {d['decision_id']}"
        beyond = [c for c in d["data_categories"] if c not in made.permitted]
        if beyond:
            return (
                f"discloses {', '.join(beyond)}, which decision {d['decision_id']} did not permit"
            )
        # Re-evaluated at the disclosure's own index, as the service must have done (G5).
        policy = self.state.policy_in_force(d["policy_version"])
        replayed = evaluate(
            policy,
            self.state.request(decision, d["data_categories"]),
            self.state.facts(d["subject_ref"]),
            time,
        )
        if replayed.decision != "permit":
            denied = ", ".join(f"{x.category} ({x.reason})" for x in replayed.denied_categories)
            return f"the share was not permitted at its time: {denied}"
        return _differences(d, replayed, ("basis", "consents", "policy_version"))
