"""The policy, the question and the answer, as plain immutable values."""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

RuleKind = Literal["legal_basis", "implied", "consent", "deny"]


@dataclass(frozen=True)
class GlobalRule:
    id: str
    explanation: str
    source: str


@dataclass(frozen=True)
class AlternativeBasis:
    """A legal basis that can stand in for the rule's consent (s251 support for evaluation)."""

    legal_basis: str
    blocked_by_objection: str | None
    when_from: frozenset[str]


@dataclass(frozen=True)
class Rule:
    id: str
    kind: RuleKind
    explanation: str
    source: str
    # Directed (sender kind, recipient kind) pairs; ``None`` matches any kind.
    pairs: tuple[tuple[str | None, str | None], ...]
    same_organisation: bool
    purposes: frozenset[str] | None  # None: any purpose
    legal_bases: frozenset[str]  # the rule applies only when one of these is asserted
    forms: frozenset[str]
    consent_names: Literal["recipient", "sender"]
    ceiling: frozenset[str]
    obligations: tuple[str, ...]
    reason: str | None
    blocked_by_objection: str | None
    overridden_by_later_objection: str | None
    alternative: AlternativeBasis | None

    def cites(self) -> str:
        return f"{self.id}: {self.explanation} ({self.source})"


@dataclass(frozen=True)
class Confirmation:
    rule: str
    consents_recorded_by: frozenset[str]
    disclosures_by: frozenset[str]


@dataclass(frozen=True)
class Withdrawal:
    rule: str
    source: str
    obligation: str
    by_purpose: dict[str, str]

    def obligation_for(self, purpose: str) -> str:
        return self.by_purpose.get(purpose, self.obligation)


@dataclass(frozen=True)
class Period:
    """A retention period in whole years, months and days (ISO 8601 ``PnYnMnD``), with the
    retention schedule entry it follows."""

    years: int
    months: int
    days: int
    source: str

    def __str__(self) -> str:
        parts = zip((self.years, self.months, self.days), "YMD", strict=True)
        return "P" + "".join(f"{n}{unit}" for n, unit in parts if n)

    def after(self, instant: datetime) -> datetime:
        """``instant`` plus the period, by the calendar: years and months first, then days (the
        ISO 8601 order), a day past the end of the month becoming its last day (29 February
        + P1Y is 28 February; 31 January + P1M is the last day of February). The time of day
        and the zone are kept."""
        month0 = instant.month - 1 + self.months + 12 * self.years
        year, month = instant.year + month0 // 12, month0 % 12 + 1
        day = min(instant.day, calendar.monthrange(year, month)[1])
        return instant.replace(year=year, month=month, day=day) + timedelta(days=self.days)


@dataclass(frozen=True)
class Retention:
    """How long a person's records are kept after their last event (UK GDPR Art 5(1)(e)), and
    the rule an erasure refused before then names (Art 5(2), 17(3)(b) and (e))."""

    rule: str
    explanation: str
    source: str
    by_purpose: dict[str, Period]
    # Records that have no purpose: objections, national data opt-outs, patient portal links.
    no_purpose: Period

    def period_for(self, purpose: str | None) -> Period:
        """The period of ``purpose`` (``None``: records without one); ``KeyError`` for a
        purpose this policy does not declare."""
        return self.no_purpose if purpose is None else self.by_purpose[purpose]

    def kept_until(self, last_events: Mapping[str | None, datetime]) -> datetime:
        """The instant before which the records must be kept, given the time of the person's
        last event for each purpose (``None``: their records without a purpose): the latest of
        last event + period. At or after it, the records may be erased.

        A purpose this policy does not declare (records made under an earlier version) is kept
        for whichever period ends last, so that dropping a purpose never makes its records
        erasable early."""
        if not last_events:
            raise ValueError("no last event: a person without records has nothing to keep")
        return max(self._after(purpose, t) for purpose, t in last_events.items())

    def _after(self, purpose: str | None, instant: datetime) -> datetime:
        if purpose is None or purpose in self.by_purpose:
            return self.period_for(purpose).after(instant)
        # Periods have no order of their own (P12M and P365D differ by the calendar): compare
        # their ends from this instant.
        periods = [*self.by_purpose.values(), self.no_purpose]
        return max(p.after(instant) for p in periods)


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    organisation_kinds: tuple[str, ...]
    purposes: tuple[str, ...]
    categories: dict[str, str]  # category -> tier
    consent_forms: dict[str, bool]  # form -> signed
    legal_bases: tuple[str, ...]
    objection_scopes: tuple[str, ...]
    confirmation: Confirmation
    withdrawal: Withdrawal
    # None only for a document read back from the log that was published before the section
    # existed: it states no period, so no record is known to be past one (README, "Retention").
    retention: Retention | None
    global_rules: tuple[GlobalRule, ...]
    rules: tuple[Rule, ...]
    # The validated document as parsed; its canonical JSON is what gets published and hashed.
    document: dict[str, Any] = field(repr=False, compare=False)
    version: str = ""
    # The engine's memo of values derived from the fields above (the rules that apply to each
    # shape of request, their reasons and messages), filled on first use: evaluating stays a
    # pure function of (policy, request, facts, now), and ``dataclasses.replace`` starts empty.
    derived: dict[Any, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def global_rule(self, rule_id: str) -> GlobalRule:
        for rule in self.global_rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


# -- the question ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    id: str
    kind: str


@dataclass(frozen=True)
class LegalBasis:
    type: str
    reference: str


@dataclass(frozen=True)
class Request:
    sender: Party
    recipient: Party
    purpose: str
    categories: tuple[str, ...]
    legal_basis: LegalBasis | None = None


@dataclass(frozen=True)
class ConsentFact:
    id: str
    purpose: str
    recipients: frozenset[str]
    categories: frozenset[str]
    form: str
    status: str  # active or withdrawn
    recorded_at: datetime
    recorded_by_kind: str
    confirmed: bool = False
    valid_from: datetime | None = None
    expires_at: datetime | None = None
    # The organisation that recorded the consent: with the organisations it names, the only
    # parties a consent lets share among themselves. None where unknown (scenario shorthand).
    recorded_by: str | None = None
    # Position in the log. Orders a consent against an objection exactly: clocks of different
    # workers may disagree, the log's order does not.
    sequence: int | None = None


@dataclass(frozen=True)
class ObjectionFact:
    id: str
    scope: str
    status: str
    recorded_at: datetime
    sequence: int | None = None


@dataclass(frozen=True)
class Facts:
    consents: tuple[ConsentFact, ...] = ()
    objections: tuple[ObjectionFact, ...] = ()


# -- the answer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    code: str
    rule: str
    message: str


@dataclass(frozen=True)
class DeniedCategory:
    category: str
    reason: str
    rule: str


@dataclass(frozen=True, init=False)
class Decision:
    decision: Literal["permit", "deny"]
    permitted_categories: tuple[str, ...]
    denied_categories: tuple[DeniedCategory, ...]
    reasons: tuple[Reason, ...]
    consents: tuple[str, ...]
    obligations: tuple[str, ...]
    policy_version: str
    # What the permitted categories rest on: consent, implied, legal_basis (or none).
    basis: str | None

    def __init__(
        self,
        decision: Literal["permit", "deny"],
        permitted_categories: tuple[str, ...],
        denied_categories: tuple[DeniedCategory, ...],
        reasons: tuple[Reason, ...],
        consents: tuple[str, ...],
        obligations: tuple[str, ...],
        policy_version: str,
        basis: str | None,
    ) -> None:
        # The generated __init__ of a frozen dataclass sets each field through
        # object.__setattr__, which made building a Decision a quarter of an evaluation's cost
        # (bench/bench_engine.py); filling the instance dict at once is the same object.
        self.__dict__.update(
            {
                "decision": decision,
                "permitted_categories": permitted_categories,
                "denied_categories": denied_categories,
                "reasons": reasons,
                "consents": consents,
                "obligations": obligations,
                "policy_version": policy_version,
                "basis": basis,
            }
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "permitted_categories": list(self.permitted_categories),
            "denied_categories": [
                {"category": d.category, "reason": d.reason, "rule": d.rule}
                for d in self.denied_categories
            ],
            "reasons": [
                {"code": r.code, "rule": r.rule, "message": r.message} for r in self.reasons
            ],
            "consents": list(self.consents),
            "obligations": list(self.obligations),
            "policy_version": self.policy_version,
            "basis": self.basis,
        }
