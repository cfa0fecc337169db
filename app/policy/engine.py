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

Speed: everything that depends on the policy and the shape of the request alone (which rules
apply, in which tier, the reasons they give) is worked out once per policy and shape and kept
in ``Policy.derived``; an evaluation then only walks the person's facts.
"""

from __future__ import annotations

from datetime import datetime
from operator import attrgetter
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
from app.text import with_article

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
_RANK = {code: n for n, code in enumerate(_CONSENT_FAILURES)}
_UNRANKED = len(_CONSENT_FAILURES)

# Bound on each memo kept with a policy. Request shapes and categories come from validated
# requests, so a real policy fills a few hundred entries; past the bound, values are computed
# afresh (same answers, just slower).
_MEMO_LIMIT = 4096


class _RulePlan:
    """One applicable rule, with the reasons it can give built once."""

    __slots__ = (
        "blocked",
        "deny",
        "explicit",
        "implied",
        "legal",
        "needs_confirming",
        "opt_out",
        "rule",
        "unique_id",
    )

    def __init__(self, policy: Policy, rule: Rule, request: Request) -> None:
        cites = rule.cites()
        self.rule = rule
        # No other applicable rule has this id (always so in a loaded policy).
        self.unique_id = False
        # G6: the recorder kinds whose consents need confirming before this sender may
        # disclose under them, or None if G6 does not cover the sender's kind.
        g6 = policy.confirmation
        self.needs_confirming = (
            g6.consents_recorded_by if request.sender.kind in g6.disclosures_by else None
        )
        # When it permits: on consent, on its alternative legal basis, on implied consent.
        self.explicit = Reason("explicit_consent", rule.id, cites)
        self.legal = Reason("legal_basis", rule.id, cites)
        self.implied = Reason("implied_consent_direct_care", rule.id, cites)
        # A deny rule's refusal.
        self.deny = Reason(rule.reason, rule.id, cites) if rule.reason is not None else None
        # An objection blocking its implied consent: G3's reason, or its own.
        g3 = next((g for g in policy.global_rules if g.id == "G3"), None)
        self.blocked = (
            Reason("objection_direct_care", "G3", f"{g3.explanation} ({g3.source})")
            if g3
            else Reason("objection_direct_care", rule.id, cites)
        )
        # An opt-out blocking its alternative legal basis.
        alternative = rule.alternative
        self.opt_out = (
            Reason(
                alternative.blocked_by_objection or "objection",
                rule.id,
                f"The person has opted out ({alternative.blocked_by_objection}), which "
                f"blocks {alternative.legal_basis} for data from "
                f"{with_article(request.sender.kind)} organisation; only their explicit consent "
                f"disapplies it. {cites}",
            )
            if alternative is not None
            else None
        )


class _Plan:
    """What a policy does with one shape of request (sender and recipient kinds, same
    organisation or not, purpose, asserted legal basis)."""

    __slots__ = ("all_denies", "g0", "legal_tier", "purpose_denies", "purpose_tier")

    def __init__(self, policy: Policy, request: Request) -> None:
        applicable = [
            _RulePlan(policy, r, request) for r in policy.rules if rule_applies(r, request)
        ]
        ids = [p.rule.id for p in applicable]
        for p in applicable:
            p.unique_id = ids.count(p.rule.id) == 1
        # Global rules are checked before the purpose rules (ig-rules): the rules a legal basis
        # brings in (G1, G2) come first, and a purpose rule's deny (P10) does not undo what a
        # legal requirement permits. A legal-basis deny (G2-employer) refuses everything.
        legal_tier = [p for p in applicable if p.rule.legal_bases]
        purpose_tier = [p for p in applicable if not p.rule.legal_bases]
        legal_denies = [p for p in legal_tier if p.rule.kind == "deny"]
        purpose_denies = [p for p in purpose_tier if p.rule.kind == "deny"]
        self.legal_tier = tuple(legal_tier)
        self.purpose_tier = tuple(purpose_tier)
        self.purpose_denies = tuple(purpose_denies)
        # When a legal-basis deny applies, these deny everything.
        self.all_denies = tuple(legal_denies + purpose_denies) if legal_denies else ()
        # No applicable rule (G0): the reason given.
        self.g0: Reason | None = None
        if not applicable:
            g0 = policy.global_rule("G0")
            self.g0 = Reason("no_applicable_rule", "G0", f"{g0.explanation} ({g0.source})")


class _Memo:
    """What the engine derives from one policy, kept in ``Policy.derived``: immutable values,
    each a function of the policy and the key it is filed under."""

    __slots__ = ("denied", "globals", "plans")

    def __init__(self) -> None:
        self.plans: dict[_PlanKey, _Plan] = {}
        self.denied: dict[tuple[str, str, str], DeniedCategory] = {}
        self.globals: dict[str, Reason] = {}


def _new_memo(policy: Policy) -> _Memo:
    memo: _Memo = policy.derived.setdefault(_Memo, _Memo())
    return memo


# The shape of a request, all that decides which rules apply: sender kind, recipient kind, same
# organisation or not, purpose, asserted legal basis.
_PlanKey = tuple[str, str, bool, str, str | None]


def _new_plan(memo: _Memo, policy: Policy, request: Request, key: _PlanKey) -> _Plan:
    plan = _Plan(policy, request)
    if len(memo.plans) < _MEMO_LIMIT:
        memo.plans[key] = plan
    return plan


class _Outcome:
    """The decision being built."""

    __slots__ = (
        "consent_basis",
        "consents",
        "denials",
        "denied",
        "implied_basis",
        "legal_basis",
        "obligations",
        "permitted",
        "reasons",
    )

    def __init__(self, memo: _Memo) -> None:
        self.denials = memo.denied  # the memo of DeniedCategory values
        self.permitted: dict[str, str] = {}  # category -> rule id
        self.denied: dict[str, DeniedCategory] = {}  # category -> the first denial
        self.reasons: list[Reason] = []
        self.consents: set[str] = set()
        self.obligations: list[str] = []
        # What permitted categories rest on.
        self.consent_basis = False
        self.implied_basis = False
        self.legal_basis = False

    def deny(self, category: str, reason: str, rule: str) -> None:
        """Deny ``category`` for ``reason`` unless it is denied already (the first reason
        stands)."""
        if category not in self.denied:
            self.denied[category] = _denied(self.denials, category, reason, rule)

    def reason(self, reason: Reason) -> None:
        # One reason per (code, rule): the first, most specific message wins. (A decision
        # gives a handful, so a scan beats a set.)
        code, rule = reason.code, reason.rule
        for r in self.reasons:
            if r.code == code and r.rule == rule:
                return
        self.reasons.append(reason)

    def oblige(self, obligations: tuple[str, ...]) -> None:
        for o in obligations:
            if o not in self.obligations:
                self.obligations.append(o)


def _denied(
    denials: dict[tuple[str, str, str], DeniedCategory], category: str, reason: str, rule: str
) -> DeniedCategory:
    """``DeniedCategory(category, reason, rule)``: immutable, so each is built once per policy."""
    key = (category, reason, rule)
    denied = denials.get(key)
    if denied is None:
        denied = DeniedCategory(category, reason, rule)
        if len(denials) < _MEMO_LIMIT:
            denials[key] = denied
    return denied


def rule_applies(rule: Rule, request: Request) -> bool:
    """Whether ``rule`` applies to the shape of ``request``: its kinds (or same organisation),
    purpose and asserted legal basis."""
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
    latest = None
    if scope is not None:
        latest_order = (-1, datetime.min)
        for o in facts.objections:
            if o.scope == scope and o.status == "active":
                # By log position, then time; the first of equals stands.
                order = (o.sequence if o.sequence is not None else -1, o.recorded_at)
                if latest is None or order > latest_order:
                    latest, latest_order = o, order
    return latest


def overriding_scopes(policy: Policy, purpose: str) -> frozenset[str]:
    """The objection scopes that override a consent for ``purpose`` given before them: the
    ``overridden_by_later_objection`` of the consent rules for that purpose, the scopes
    ``_apply_consent_rule`` ranks a consent against. An objection of any other scope never
    makes the engine set such a consent aside."""
    return frozenset(
        rule.overridden_by_later_objection
        for rule in policy.rules
        if rule.kind == "consent"
        and rule.overridden_by_later_objection is not None
        and (rule.purposes is None or purpose in rule.purposes)
    )


def _after(objection: ObjectionFact, consent: ConsentFact) -> bool:
    """Was the objection recorded after the consent? By log position when both are known."""
    if objection.sequence is not None and consent.sequence is not None:
        return objection.sequence > consent.sequence
    return objection.recorded_at > consent.recorded_at


_UNKNOWN = ObjectionFact("", "", "", datetime.min)  # not looked up yet


def _apply_consent_rule(
    policy: Policy, plan: _RulePlan, request: Request, facts: Facts, now: datetime, out: _Outcome
) -> None:
    rule = plan.rule
    # A consent names who may receive; the other party must be its recorder or named too, so
    # an organisation outside the consent cannot share under it (G4).
    if rule.consent_names == "recipient":
        named, other = request.recipient.id, request.sender.id
    else:
        named, other = request.sender.id, request.recipient.id
    purpose = request.purpose
    needs_confirming = plan.needs_confirming
    objection: ObjectionFact | None = _UNKNOWN
    candidates: list[ConsentFact] = []
    usable: list[ConsentFact] = []
    # Why each candidate cannot be relied on now, or None if it can.
    failures: dict[str, str | None] = {}
    for c in facts.consents:
        if (
            c.purpose != purpose
            or named not in c.recipients
            or (c.recorded_by is not None and other != c.recorded_by and other not in c.recipients)
        ):
            continue
        candidates.append(c)
        failure: str | None = None
        if c.status != "active":
            failure = "consent_withdrawn"
        elif now < (c.valid_from or c.recorded_at):
            failure = "consent_not_yet_valid"
        elif c.expires_at is not None and now >= c.expires_at:
            failure = "consent_expired"
        elif c.form not in rule.forms:
            failure = "consent_not_signed"
        else:
            if objection is _UNKNOWN:
                objection = _active_objection(facts, rule.overridden_by_later_objection)
            if objection is not None and _after(objection, c):
                failure = "objection_direct_care"
            elif (
                needs_confirming is not None
                and c.recorded_by_kind in needs_confirming
                and not c.confirmed
            ):
                failure = "consent_needs_confirmation"
        failures[c.id] = failure
        if failure is None:
            usable.append(c)
    if len(failures) != len(candidates):
        # Candidates sharing an id share the last one's verdict.
        usable = [c for c in candidates if failures[c.id] is None]

    alternative = rule.alternative
    alt_asserted = (
        alternative is not None
        and request.legal_basis is not None
        and request.legal_basis.type == alternative.legal_basis
    )
    alt_ok = False
    if alt_asserted:
        assert alternative is not None
        opt_out = _active_objection(facts, alternative.blocked_by_objection)
        if opt_out is not None and (
            not alternative.when_from or request.sender.kind in alternative.when_from
        ):
            assert plan.opt_out is not None
            out.reason(plan.opt_out)
        else:
            alt_ok = True

    rule_id = rule.id
    permitted = out.permitted
    granted = False  # this rule is the first to permit some category
    for category in request.categories:
        if category not in rule.ceiling:
            out.deny(category, "above_ceiling", rule_id)
            continue
        if usable:
            relied_on = False
            for c in usable:
                if category in c.categories:
                    out.consents.add(c.id)
                    relied_on = True
            if relied_on:
                granted = permitted.setdefault(category, rule_id) == rule_id or granted
                out.consent_basis = True
                continue
        if alt_ok:
            granted = permitted.setdefault(category, rule_id) == rule_id or granted
            out.legal_basis = True
        elif alt_asserted:
            assert alternative is not None
            out.deny(category, alternative.blocked_by_objection or "objection", rule_id)
        elif category not in out.denied:  # (else the first denial stands: skip the search)
            out.deny(category, _best_failure(candidates, failures, category), rule_id)
    if not plan.unique_id:
        # Another applicable rule has this id: what counts is the id a category is permitted by.
        granted = any(permitted.get(category) == rule_id for category in request.categories)
    if granted:
        out.reason(plan.legal if out.legal_basis and not out.consents else plan.explicit)
        if rule.obligations:
            out.oblige(rule.obligations)


def _best_failure(
    candidates: list[ConsentFact], failures: dict[str, str | None], category: str
) -> str:
    """The first of ``_CONSENT_FAILURES`` that a candidate listing ``category`` fails on."""
    if not candidates:
        return "no_consent"
    best = _UNRANKED
    for c in candidates:
        failure = failures[c.id]
        if failure is not None and category in c.categories:
            rank = _RANK[failure]
            if rank < best:
                best = rank
    return _CONSENT_FAILURES[best] if best < _UNRANKED else "category_not_in_consent"


def _apply_implied_rule(plan: _RulePlan, request: Request, facts: Facts, out: _Outcome) -> None:
    rule = plan.rule
    objection = _active_objection(facts, rule.blocked_by_objection)
    if objection is not None:
        out.reason(plan.blocked)
    for category in request.categories:
        if category not in rule.ceiling:
            out.deny(category, "above_ceiling", rule.id)
        elif objection is not None:
            out.deny(category, "objection_direct_care", "G3")
        else:
            out.permitted.setdefault(category, rule.id)
            out.implied_basis = True
    if objection is None:
        out.reason(plan.implied)
        if rule.obligations:
            out.oblige(rule.obligations)


def _apply_legal_basis_rule(rule: Rule, request: Request, out: _Outcome) -> None:
    assert request.legal_basis is not None
    for category in request.categories:
        if category in rule.ceiling:
            out.permitted.setdefault(category, rule.id)
            out.legal_basis = True
        else:
            out.deny(category, "above_ceiling", rule.id)
    out.reason(
        Reason(
            f"legal_basis_{request.legal_basis.type}",
            rule.id,
            f"{rule.cites()} Reference: {request.legal_basis.reference}.",
        )
    )
    out.oblige(rule.obligations)


def _apply_denies(
    plans: tuple[_RulePlan, ...], categories: list[str] | tuple[str, ...], out: _Outcome
) -> None:
    if not categories:
        return
    for plan in plans:
        rule = plan.rule
        assert rule.reason is not None
        assert plan.deny is not None
        out.reason(plan.deny)
        for category in categories:
            out.deny(category, rule.reason, rule.id)


def evaluate(policy: Policy, request: Request, facts: Facts, now: datetime) -> Decision:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    memo: _Memo = policy.derived.get(_Memo) or _new_memo(policy)
    asserted = request.legal_basis
    sender, recipient = request.sender, request.recipient
    key = (
        sender.kind,
        recipient.kind,
        sender.id == recipient.id,
        request.purpose,
        None if asserted is None else asserted.type,
    )
    plan = memo.plans.get(key) or _new_plan(memo, policy, request, key)
    categories = request.categories
    if plan.g0 is not None:
        # No applicable rule: every category is denied, whatever the facts (G0).
        denials = memo.denied
        return Decision(
            "deny",
            (),
            tuple([_denied(denials, c, "no_applicable_rule", "G0") for c in categories]),
            (plan.g0,),
            (),
            (),
            policy.version,
            None,
        )

    out = _Outcome(memo)
    if plan.all_denies:
        _apply_denies(plan.all_denies, categories, out)
    else:
        for rule_plan in plan.legal_tier:
            _apply_legal_basis_rule(rule_plan.rule, request, out)
        if plan.purpose_denies:
            # Deny overrides permit among the purpose rules.
            rest = [c for c in categories if c not in out.permitted]
            _apply_denies(plan.purpose_denies, rest, out)
        else:
            for rule_plan in plan.purpose_tier:
                if rule_plan.rule.kind == "implied":
                    _apply_implied_rule(rule_plan, request, facts, out)
                else:
                    _apply_consent_rule(policy, rule_plan, request, facts, now, out)
        denied = out.denied
        if denied:
            # A category another rule permits is not denied (any applicable basis suffices).
            for category in out.permitted:
                denied.pop(category, None)
            # Name the global rule behind each denial (G3-G7), once per reason code.
            for code in sorted(set(map(_REASON, denied.values()))):
                if code in _GLOBAL_FOR:
                    out.reason(_global_reason(memo, policy, code))

    if out.permitted:
        permitted_map = out.permitted
        # Every category is permitted or denied by now.
        if out.denied:
            permitted = tuple([c for c in categories if c in permitted_map])
            denied_categories = tuple([out.denied[c] for c in categories if c not in permitted_map])
        else:
            permitted, denied_categories = tuple(categories), ()
        basis: str | None = (
            "consent"
            if out.consent_basis
            else "implied"
            if out.implied_basis
            else "legal_basis"
            if out.legal_basis
            else None
        )
        consents = tuple(sorted(out.consents))
        obligations = tuple(out.obligations)
    else:
        permitted = ()
        denied_categories = tuple(map(out.denied.__getitem__, categories))
        basis, consents, obligations = None, (), ()
    decision: Literal["permit", "deny"] = (
        "permit" if categories and not denied_categories else "deny"
    )
    # Positional: building a class instance with keywords goes through a kwargs dict.
    return Decision(
        decision,
        permitted,
        denied_categories,
        tuple(out.reasons),
        consents,
        obligations,
        policy.version,
        basis,
    )


_REASON = attrgetter("reason")
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


def _global_reason(memo: _Memo, policy: Policy, code: str) -> Reason:
    """The reason naming the global rule behind a denial's code (G3-G7)."""
    reason = memo.globals.get(code)
    if reason is None:
        reason = Reason(code, _GLOBAL_FOR[code], _global_message(policy, code))
        memo.globals[code] = reason
    return reason


def _global_message(policy: Policy, code: str) -> str:
    rule_id = _GLOBAL_FOR.get(code, "G4")
    text = _MESSAGES.get(code, code)
    for g in policy.global_rules:
        if g.id == rule_id:
            return f"{text} {g.id}: {g.explanation} ({g.source})"
    return text
