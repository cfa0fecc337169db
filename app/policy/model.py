"""The policy, the question and the answer, as plain immutable values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
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
