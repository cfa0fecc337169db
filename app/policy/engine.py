"""``evaluate(policy, request, facts, now) -> Decision``: the one question case systems ask.

Deterministic and pure: the same policy, request, facts and instant always give the same
decision. The engine knows only the meaning of the four rule kinds; every rule, ceiling,
reason and obligation comes from the policy document.

- A rule applies when its kind pair (or same-organisation test), purpose and asserted legal
  basis match the request.
- No applicable rule: deny everything, reason ``no_applicable_rule`` (G0).
- Deny overrides permit: an applicable ``deny`` rule denies every requested category.
- Otherwise a category is permitted when some applicable rule permits it inside that rule's
  ceiling (G7); ``decision`` is ``permit`` only when every requested category is permitted.
- ``consent`` rules rely on consents that are active (G5), for the rule's purpose, naming the
  right organisation, of an allowed form, inside their validity period and listing the
  category (G4), confirmed where G6 applies, and not overridden by a later objection (G3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from app.policy.model import (
    ConsentFact,
    Decision,
    DeniedCategory,
    Facts,
    ObjectionFact,
    Policy,
    Reason,
    Request,
    Rule,
)

# When no consent can be relied on for a category, the reason given is the first of these that
# some candidate consent (right purpose, right organisation, listing the category) fails on.
_CONSENT_FAILURES = (
    "consent_withdrawn",
    "consent_needs_confirmation",
    "objection_direct_care",
    "consent_not_signed",
    "consent_expired",
    "consent_not_yet_valid",
)


@dataclass
class _Outcome:
    permitted: dict[str, str] = field(default_factory=dict)  # category -> rule id
    denied: dict[str, tuple[str, str]] = field(default_factory=dict)  # category -> (reason, rule)
    reasons: list[Reason] = field(default_factory=list)
    consents: set[str] = field(default_factory=set)
    obligations: list[str] = field(default_factory=list)
    bases: set[str] = field(default_factory=set)

    def deny(self, category: str, reason: str, rule: str) -> None:
        self.denied.setdefault(category, (reason, rule))

    def reason(self, code: str, rule: str, message: str) -> None:
        # One reason per (code, rule): the first, most specific message wins.
        if not any(r.code == code and r.rule == rule for r in self.reasons):
            self.reasons.append(Reason(code, rule, message))

    def oblige(self, obligations: tuple[str, ...]) -> None:
        for o in obligations:
            if o not in self.obligations:
                self.obligations.append(o)


def _applies(rule: Rule, request: Request) -> bool:
    if rule.purposes is not None and request.purpose not in rule.purposes:
        return False
    if rule.legal_bases and (
        request.legal_basis is None or request.legal_basis.type not in rule.legal_bases
    ):
        return False
    if rule.same_organisation:
        return request.sender.id == request.recipient.id
    return any(
        (s is None or s == request.sender.kind) and (t is None or t == request.recipient.kind)
        for s, t in rule.pairs
    )


def _active_objection(facts: Facts, scope: str | None) -> ObjectionFact | None:
    """The latest active objection of ``scope``. Every objection in the facts is in force: the
    facts are what was committed before this decision, whatever this worker's clock says."""
    if scope is None:
        return None
    active = [o for o in facts.objections if o.scope == scope and o.status == "active"]
    return max(active, key=_order) if active else None


def _order(fact: ConsentFact | ObjectionFact) -> tuple[int, datetime]:
    return (fact.sequence if fact.sequence is not None else -1, fact.recorded_at)


def _after(objection: ObjectionFact, consent: ConsentFact) -> bool:
    """Was the objection recorded after the consent? By log position when both are known."""
    if objection.sequence is not None and consent.sequence is not None:
        return objection.sequence > consent.sequence
    return objection.recorded_at > consent.recorded_at


def _parties_ok(rule: Rule, request: Request, consent: ConsentFact) -> bool:
    """A consent names who may receive; the other party must be its recorder or named too,
    so an organisation outside the consent cannot share under it (G4)."""
    named, other = (
        (request.recipient.id, request.sender.id)
        if rule.consent_names == "recipient"
        else (request.sender.id, request.recipient.id)
    )
    if named not in consent.recipients:
        return False
    return (
        consent.recorded_by is None or other == consent.recorded_by or other in consent.recipients
    )


def _consent_failure(
    policy: Policy,
    rule: Rule,
    request: Request,
    facts: Facts,
    consent: ConsentFact,
    now: datetime,
) -> str | None:
    """Why ``consent`` cannot be relied on under ``rule`` now, or None if it can."""
    if consent.status != "active":
        return "consent_withdrawn"
    starts = consent.valid_from or consent.recorded_at
    if now < starts:
        return "consent_not_yet_valid"
    if consent.expires_at is not None and now >= consent.expires_at:
        return "consent_expired"
    if consent.form not in rule.forms:
        return "consent_not_signed"
    objection = _active_objection(facts, rule.overridden_by_later_objection)
    if objection is not None and _after(objection, consent):
        return "objection_direct_care"
    g6 = policy.confirmation
    if (
        request.sender.kind in g6.disclosures_by
        and consent.recorded_by_kind in g6.consents_recorded_by
        and not consent.confirmed
    ):
        return "consent_needs_confirmation"
    return None


def _apply_consent_rule(
    policy: Policy, rule: Rule, request: Request, facts: Facts, now: datetime, out: _Outcome
) -> None:
    candidates = [
        c for c in facts.consents if c.purpose == request.purpose and _parties_ok(rule, request, c)
    ]
    failures = {c.id: _consent_failure(policy, rule, request, facts, c, now) for c in candidates}
    usable = [c for c in candidates if failures[c.id] is None]
    alternative = rule.alternative
    alt_ok = False
    if (
        alternative is not None
        and request.legal_basis is not None
        and request.legal_basis.type == alternative.legal_basis
    ):
        opt_out = _active_objection(facts, alternative.blocked_by_objection)
        if opt_out is not None and (
            not alternative.when_from or request.sender.kind in alternative.when_from
        ):
            out.reason(
                alternative.blocked_by_objection or "objection",
                rule.id,
                f"The person has opted out ({alternative.blocked_by_objection}), which blocks "
                f"{alternative.legal_basis} for data from a {request.sender.kind} "
                f"organisation; only their explicit consent disapplies it. {rule.cites()}",
            )
        else:
            alt_ok = True

    for category in request.categories:
        if category not in rule.ceiling:
            out.deny(category, "above_ceiling", rule.id)
            continue
        listing = [c for c in usable if category in c.categories]
        if listing:
            out.permitted.setdefault(category, rule.id)
            out.consents.update(c.id for c in listing)
            out.bases.add("consent")
            continue
        if alt_ok:
            out.permitted.setdefault(category, rule.id)
            out.bases.add("legal_basis")
            continue
        if (
            alternative is not None
            and request.legal_basis is not None
            and not alt_ok
            and (request.legal_basis.type == alternative.legal_basis)
        ):
            out.deny(category, alternative.blocked_by_objection or "objection", rule.id)
            continue
        out.deny(category, _best_failure(candidates, failures, category, bool(usable)), rule.id)
    if any(cat in out.permitted and out.permitted[cat] == rule.id for cat in request.categories):
        code = (
            "legal_basis" if "legal_basis" in out.bases and not out.consents else "explicit_consent"
        )
        out.reason(code, rule.id, rule.cites())
        out.oblige(rule.obligations)


def _best_failure(
    candidates: list[ConsentFact],
    failures: dict[str, str | None],
    category: str,
    some_usable: bool,
) -> str:
    if not candidates:
        return "no_consent"
    listing = [failures[c.id] for c in candidates if category in c.categories]
    for code in _CONSENT_FAILURES:
        if code in listing:
            return code
    return "category_not_in_consent" if some_usable or candidates else "no_consent"


def _apply_implied_rule(
    policy: Policy, rule: Rule, request: Request, facts: Facts, out: _Outcome
) -> None:
    objection = _active_objection(facts, rule.blocked_by_objection)
    if objection is not None:
        g3 = policy.global_rule("G3") if any(g.id == "G3" for g in policy.global_rules) else None
        message = (g3.explanation + f" ({g3.source})") if g3 else rule.cites()
        out.reason("objection_direct_care", "G3" if g3 else rule.id, message)
    for category in request.categories:
        if category not in rule.ceiling:
            out.deny(category, "above_ceiling", rule.id)
        elif objection is not None:
            out.deny(category, "objection_direct_care", "G3")
        else:
            out.permitted.setdefault(category, rule.id)
            out.bases.add("implied")
    if objection is None:
        out.reason("implied_consent_direct_care", rule.id, rule.cites())
        out.oblige(rule.obligations)


def _apply_legal_basis_rule(rule: Rule, request: Request, out: _Outcome) -> None:
    assert request.legal_basis is not None
    for category in request.categories:
        if category in rule.ceiling:
            out.permitted.setdefault(category, rule.id)
            out.bases.add("legal_basis")
        else:
            out.deny(category, "above_ceiling", rule.id)
    out.reason(
        f"legal_basis_{request.legal_basis.type}",
        rule.id,
        f"{rule.cites()} Reference: {request.legal_basis.reference}.",
    )
    out.oblige(rule.obligations)


def _apply_denies(rules: list[Rule], categories: Sequence[str], out: _Outcome) -> None:
    if not categories:
        return
    for rule in rules:
        assert rule.reason is not None
        out.reason(rule.reason, rule.id, rule.cites())
        for category in categories:
            out.deny(category, rule.reason, rule.id)


def evaluate(policy: Policy, request: Request, facts: Facts, now: datetime) -> Decision:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    out = _Outcome()
    applicable = [rule for rule in policy.rules if _applies(rule, request)]
    # Global rules are checked before the purpose rules (ig-rules): the rules a legal basis
    # brings in (G1, G2) come first, and a purpose rule's deny (P10) does not undo what a legal
    # requirement permits. A legal-basis deny (G2-employer) refuses everything.
    legal_tier = [rule for rule in applicable if rule.legal_bases]
    purpose_tier = [rule for rule in applicable if not rule.legal_bases]
    legal_denies = [rule for rule in legal_tier if rule.kind == "deny"]
    purpose_denies = [rule for rule in purpose_tier if rule.kind == "deny"]

    if not applicable:
        g0 = policy.global_rule("G0")
        out.reason("no_applicable_rule", "G0", f"{g0.explanation} ({g0.source})")
        for category in request.categories:
            out.deny(category, "no_applicable_rule", "G0")
    elif legal_denies:
        _apply_denies(legal_denies + purpose_denies, request.categories, out)
    else:
        for rule in legal_tier:
            _apply_legal_basis_rule(rule, request, out)
        if purpose_denies:
            # Deny overrides permit among the purpose rules.
            rest = [c for c in request.categories if c not in out.permitted]
            _apply_denies(purpose_denies, rest, out)
        else:
            for rule in purpose_tier:
                if rule.kind == "implied":
                    _apply_implied_rule(policy, rule, request, facts, out)
                else:
                    _apply_consent_rule(policy, rule, request, facts, now, out)
        # A category another rule permits is not denied (any applicable basis suffices).
        for category in out.permitted:
            out.denied.pop(category, None)
        # Name the global rule behind each denial (G3-G7), once per reason code.
        for code in sorted({reason for reason, _ in out.denied.values()}):
            if code in _GLOBAL_FOR:
                out.reason(code, _GLOBAL_FOR[code], _global_message(policy, code))

    permitted = tuple(c for c in request.categories if c in out.permitted)
    denied = tuple(
        DeniedCategory(c, out.denied[c][0], out.denied[c][1])
        for c in request.categories
        if c not in out.permitted
    )
    decision: Literal["permit", "deny"] = "permit" if request.categories and not denied else "deny"
    relied_on = tuple(sorted(out.consents)) if permitted else ()
    basis = None
    for candidate in ("consent", "implied", "legal_basis"):
        if candidate in out.bases and permitted:
            basis = candidate
            break
    return Decision(
        decision=decision,
        permitted_categories=permitted,
        denied_categories=denied,
        reasons=tuple(out.reasons),
        consents=relied_on,
        obligations=tuple(out.obligations) if permitted else (),
        policy_version=policy.version,
        basis=basis,
    )


_GLOBAL_FOR = {
    "above_ceiling": "G7",
    "objection_direct_care": "G3",
    "no_consent": "G4",
    "category_not_in_consent": "G4",
    "consent_expired": "G4",
    "consent_not_yet_valid": "G4",
    "consent_not_signed": "G4",
    "consent_withdrawn": "G5",
    "consent_needs_confirmation": "G6",
}
_MESSAGES = {
    "objection_direct_care": "The person has objected to direct-care sharing.",
    "above_ceiling": "A requested category is above what this recipient may receive.",
    "no_consent": "No consent names this organisation for this purpose.",
    "category_not_in_consent": "The consent does not list this category.",
    "consent_expired": "The consent has expired.",
    "consent_not_yet_valid": "The consent is not valid yet.",
    "consent_not_signed": "This share needs a signed (written or electronic) consent.",
    "consent_withdrawn": "The consent was withdrawn.",
    "consent_needs_confirmation": (
        "The consent was recorded by DWP or a DWP-funded provider and a health organisation has "
        "not confirmed it yet."
    ),
}


def _global_message(policy: Policy, code: str) -> str:
    rule_id = _GLOBAL_FOR.get(code, "G4")
    text = _MESSAGES.get(code, code)
    for g in policy.global_rules:
        if g.id == rule_id:
            return f"{text} {g.id}: {g.explanation} ({g.source})"
    return text
