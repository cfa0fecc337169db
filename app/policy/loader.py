"""Policy document -> validated :class:`Policy`, or :class:`PolicyError` naming every fault.

The document is the parsed YAML or JSON of a ``policies/*.yaml`` file. Validation is strict:
unknown keys, unknown kinds, purposes, categories, tiers, forms, legal bases and objection
scopes, duplicate rule ids, missing explanations or sources, and a retention period missing,
malformed, zero or negative are all refused, each with its path inside the document
(``rules[4].ceiling[2]``, ``retention.by_purpose.referral.period``), so a bad file is never
half-loaded. The version is the SHA-256 of the document's RFC 8785 canonical JSON.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, cast

from app.ledger.entry import encode_entry
from app.ledger.errors import EntryError
from app.policy.errors import PolicyError
from app.policy.model import (
    AlternativeBasis,
    Confirmation,
    GlobalRule,
    Period,
    Policy,
    Retention,
    Rule,
    RuleKind,
    Withdrawal,
)
from app.text import with_article

RULE_KINDS: tuple[RuleKind, ...] = ("legal_basis", "implied", "consent", "deny")
_TIER = re.compile(r"T[0-9]")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
# ISO 8601 durations in whole years, months and days only: a retention period is counted in
# calendar units, never hours or weeks, and is never fractional. ASCII digits only.
_PERIOD = re.compile(r"P(?!\Z)(?:([0-9]+)Y)?(?:([0-9]+)M)?(?:([0-9]+)D)?\Z", re.ASCII)
# Longer than this is keeping forever: say so by not erasing, not by a period whose end lies
# past what a date can hold.
MAX_RETENTION_YEARS = 100

TOP_KEYS = {
    "name",
    "description",
    "organisation_kinds",
    "purposes",
    "categories",
    "consent_forms",
    "legal_bases",
    "objection_scopes",
    "confirmation",
    "withdrawal",
    "retention",
    "global_rules",
    "rules",
}
RETENTION_KEYS = {"rule", "explanation", "source", "by_purpose", "no_purpose"}
RULE_KEYS = {
    "id",
    "kind",
    "explanation",
    "source",
    "between",
    "from",
    "to",
    "same_organisation",
    "purposes",
    "legal_bases",
    "forms",
    "consent_names",
    "ceiling",
    "obligations",
    "reason",
    "blocked_by_objection",
    "overridden_by_later_objection",
    "alternative_legal_basis",
}


class _Reader:
    """Collects every problem with its path instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, reason: str) -> None:
        self.problems.append(f"{path}: {reason}")

    def mapping(self, value: Any, path: str, allowed: set[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(path, "must be a mapping")
            return {}
        for key in value:
            if not isinstance(key, str):
                self.fail(path, f"key {key!r} must be a string")
            elif allowed is not None and key not in allowed:
                self.fail(f"{path}.{key}", "is not a known field")
        return dict(value)

    def text(self, m: Mapping[str, Any], key: str, path: str, *, required: bool = True) -> str:
        value = m.get(key)
        if value is None:
            if required:
                self.fail(f"{path}.{key}", "is required")
            return ""
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{path}.{key}", "must be non-empty text")
            return ""
        return value.strip()

    def names(
        self, value: Any, path: str, known: tuple[str, ...] | None = None, what: str = "name"
    ) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            self.fail(path, "must be a non-empty list")
            return ()
        out: list[str] = []
        for n, item in enumerate(value):
            here = f"{path}[{n}]"
            if not isinstance(item, str) or not _CODE.fullmatch(item):
                self.fail(here, f"{item!r} must be a lower-case {what}")
            elif known is not None and item not in known:
                self.fail(here, f"{item!r} is not a known {what} ({', '.join(known)})")
            elif item in out:
                self.fail(here, f"{item!r} is listed twice")
            else:
                out.append(item)
        return tuple(out)

    def flag(self, m: Mapping[str, Any], key: str, path: str) -> bool:
        value = m.get(key, False)
        if not isinstance(value, bool):
            self.fail(f"{path}.{key}", "must be true or false")
            return False
        return value


def policy_version(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(encode_entry(document)).hexdigest()


def load_policy(
    document: Any, source: str = "policy", *, published_before_retention: bool = False
) -> Policy:
    """Validate ``document``. ``published_before_retention`` is for a document read back from
    the log: one published before the ``retention`` section existed is loaded without it
    (its version is the hash of exactly what was published); every new policy must state it.
    """
    r = _Reader()
    doc = r.mapping(document, "(document)", TOP_KEYS)
    if r.problems:
        raise PolicyError(source, r.problems)
    try:
        encode_entry(doc)
    except EntryError as exc:
        raise PolicyError(source, [f"(document): not plain JSON data: {exc}"]) from None

    name = r.text(doc, "name", "(document)")
    description = r.text(doc, "description", "(document)", required=False)
    kinds = r.names(doc.get("organisation_kinds"), "organisation_kinds", what="kind")
    purposes = r.names(doc.get("purposes"), "purposes", what="purpose")
    legal_bases = r.names(doc.get("legal_bases"), "legal_bases", what="legal basis")
    scopes = r.names(doc.get("objection_scopes"), "objection_scopes", what="scope")

    categories: dict[str, str] = {}
    for cat, tier in r.mapping(doc.get("categories"), "categories").items():
        if not _CODE.fullmatch(str(cat)):
            r.fail(f"categories.{cat}", "must be a lower-case name")
        elif not isinstance(tier, str) or not _TIER.fullmatch(tier):
            r.fail(f"categories.{cat}", f"tier {tier!r} must be T0 to T9")
        else:
            categories[cat] = tier
    if not categories:
        r.fail("categories", "must list at least one category")

    forms: dict[str, bool] = {}
    for form, spec in r.mapping(doc.get("consent_forms"), "consent_forms").items():
        spec_m = r.mapping(spec, f"consent_forms.{form}", {"signed"})
        forms[form] = r.flag(spec_m, "signed", f"consent_forms.{form}")
    if not forms:
        r.fail("consent_forms", "must list at least one form")

    conf_m = r.mapping(
        doc.get("confirmation"), "confirmation", {"rule", "consents_recorded_by", "disclosures_by"}
    )
    confirmation = Confirmation(
        rule=r.text(conf_m, "rule", "confirmation"),
        consents_recorded_by=frozenset(
            r.names(
                conf_m.get("consents_recorded_by"),
                "confirmation.consents_recorded_by",
                kinds,
                "kind",
            )
        ),
        disclosures_by=frozenset(
            r.names(conf_m.get("disclosures_by"), "confirmation.disclosures_by", kinds, "kind")
        ),
    )

    wd_m = r.mapping(
        doc.get("withdrawal"), "withdrawal", {"rule", "source", "obligation", "by_purpose"}
    )
    by_purpose: dict[str, str] = {}
    for purpose, obligation in r.mapping(
        wd_m.get("by_purpose", {}), "withdrawal.by_purpose"
    ).items():
        if purpose not in purposes:
            r.fail(f"withdrawal.by_purpose.{purpose}", "is not a known purpose")
        if not isinstance(obligation, str) or not _CODE.fullmatch(obligation):
            r.fail(f"withdrawal.by_purpose.{purpose}", "must be an obligation code")
        else:
            by_purpose[purpose] = obligation
    withdrawal = Withdrawal(
        rule=r.text(wd_m, "rule", "withdrawal"),
        source=r.text(wd_m, "source", "withdrawal"),
        obligation=r.text(wd_m, "obligation", "withdrawal"),
        by_purpose=by_purpose,
    )

    retention = None
    if "retention" in doc or not published_before_retention:
        retention = _retention(r, doc.get("retention"), purposes)

    global_rules: list[GlobalRule] = []
    raw_globals = doc.get("global_rules")
    if not isinstance(raw_globals, list):
        r.fail("global_rules", "must be a list")
        raw_globals = []
    for n, raw in enumerate(raw_globals):
        path = f"global_rules[{n}]"
        g = r.mapping(raw, path, {"id", "explanation", "source"})
        global_rules.append(
            GlobalRule(
                r.text(g, "id", path), r.text(g, "explanation", path), r.text(g, "source", path)
            )
        )
    if "G0" not in {g.id for g in global_rules}:
        r.fail("global_rules", "must state G0 (deny by default)")

    raw_rules = doc.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        r.fail("rules", "must be a non-empty list (an empty rule set would deny everything)")
        raw_rules = []
    context = _Context(kinds, purposes, categories, forms, legal_bases, scopes)
    rules = [_rule(r, raw, f"rules[{n}]", context) for n, raw in enumerate(raw_rules)]
    seen: dict[str, int] = {g.id: -1 for g in global_rules}
    for n, rule in enumerate(rules):
        if rule.id in seen and rule.id:
            r.fail(f"rules[{n}].id", f"{rule.id!r} is used twice")
        seen[rule.id] = n
    if retention is not None and retention.rule in seen:
        r.fail("retention.rule", f"{retention.rule!r} is used twice")

    if r.problems:
        raise PolicyError(source, r.problems)
    return Policy(
        name=name,
        description=description,
        organisation_kinds=kinds,
        purposes=purposes,
        categories=categories,
        consent_forms=forms,
        legal_bases=legal_bases,
        objection_scopes=scopes,
        confirmation=confirmation,
        withdrawal=withdrawal,
        retention=retention,
        global_rules=tuple(global_rules),
        rules=tuple(rules),
        document=doc,
        version=policy_version(doc),
    )


def _retention(r: _Reader, raw: Any, purposes: tuple[str, ...]) -> Retention:
    path = "retention"
    if raw is None:
        r.fail(path, "is required (how long a person's records are kept, per purpose)")
        return Retention("", "", "", {}, _UNSET)
    m = r.mapping(raw, path, RETENTION_KEYS)
    if not isinstance(raw, Mapping):
        return Retention("", "", "", {}, _UNSET)
    rule = r.text(m, "rule", path)
    if rule and not _ID.fullmatch(rule):
        r.fail(f"{path}.rule", f"{rule!r} must be a short identifier")
    by_purpose: dict[str, Period] = {}
    raw_periods = m.get("by_purpose")
    if raw_periods is None:
        r.fail(f"{path}.by_purpose", "is required")
    elif not isinstance(raw_periods, Mapping):
        r.fail(f"{path}.by_purpose", "must be a mapping of purpose to period")
    else:
        for purpose, spec in raw_periods.items():
            here = f"{path}.by_purpose.{purpose}"
            if purpose in purposes:
                by_purpose[purpose] = _period(r, spec, here)
            else:
                r.fail(here, f"{purpose!r} is not a declared purpose ({', '.join(purposes)})")
        for purpose in purposes:
            if purpose not in raw_periods:
                r.fail(
                    f"{path}.by_purpose.{purpose}",
                    "is required (every purpose the policy declares states its period)",
                )
    no_purpose = _UNSET
    if m.get("no_purpose") is None:
        r.fail(f"{path}.no_purpose", "is required (objections, opt-outs, portal links)")
    else:
        no_purpose = _period(r, m["no_purpose"], f"{path}.no_purpose")
    return Retention(
        rule=rule,
        explanation=r.text(m, "explanation", path),
        source=r.text(m, "source", path),
        by_purpose=by_purpose,
        no_purpose=no_purpose,
    )


# Stands in for a period that failed validation; a policy with a problem is never returned.
_UNSET = Period(0, 0, 0, "")


def _period(r: _Reader, raw: Any, path: str) -> Period:
    m = r.mapping(raw, path, {"period", "source"})
    if not isinstance(raw, Mapping):
        return _UNSET
    source = r.text(m, "source", path)
    value = m.get("period")
    if value is None:
        r.fail(f"{path}.period", "is required (an ISO 8601 duration: P8Y, P6M, P30D)")
        return _UNSET
    if isinstance(value, str) and value.startswith("-P"):
        r.fail(f"{path}.period", f"{value!r} must not be negative")
        return _UNSET
    match = _PERIOD.match(value) if isinstance(value, str) else None
    if match is None:
        r.fail(
            f"{path}.period",
            f"{value!r} is not an ISO 8601 duration in whole years, months and days "
            "(P8Y, P6M, P30D, P1Y6M)",
        )
        return _UNSET
    years, months, days = (int(n or 0) for n in match.groups())
    if not (years or months or days):
        r.fail(f"{path}.period", f"{value!r} must be longer than zero")
        return _UNSET
    if years * 12 + months + days * 12 / 365.25 > MAX_RETENTION_YEARS * 12:
        r.fail(f"{path}.period", f"{value!r} must be at most {MAX_RETENTION_YEARS} years")
        return _UNSET
    return Period(years, months, days, source)


class _Context:
    def __init__(
        self,
        kinds: tuple[str, ...],
        purposes: tuple[str, ...],
        categories: dict[str, str],
        forms: dict[str, bool],
        legal_bases: tuple[str, ...],
        scopes: tuple[str, ...],
    ) -> None:
        self.kinds = kinds
        self.purposes = purposes
        self.categories = categories
        self.forms = forms
        self.legal_bases = legal_bases
        self.scopes = scopes


def _kinds_or_any(r: _Reader, value: Any, path: str, ctx: _Context) -> tuple[str | None, ...]:
    if value == "any":
        return (None,)
    return r.names(value, path, ctx.kinds, "kind")


def _scope(r: _Reader, m: Mapping[str, Any], key: str, path: str, ctx: _Context) -> str | None:
    value = m.get(key)
    if value is None:
        return None
    if value not in ctx.scopes:
        r.fail(f"{path}.{key}", f"{value!r} is not a known objection scope")
        return None
    return cast(str, value)


def _rule(r: _Reader, raw: Any, path: str, ctx: _Context) -> Rule:
    m = r.mapping(raw, path, RULE_KEYS)
    rule_id = r.text(m, "id", path)
    if rule_id and not _ID.fullmatch(rule_id):
        r.fail(f"{path}.id", f"{rule_id!r} must be a short identifier")
    kind = m.get("kind")
    if kind not in RULE_KINDS:
        r.fail(f"{path}.kind", f"{kind!r} is not one of {', '.join(RULE_KINDS)}")
        kind = "deny"
    explanation = r.text(m, "explanation", path)
    source = r.text(m, "source", path)

    pairs: list[tuple[str | None, str | None]] = []
    same_org = r.flag(m, "same_organisation", path)
    if "between" in m:
        between = m["between"]
        if not isinstance(between, list) or not between:
            r.fail(f"{path}.between", "must be a list of [kind, kind] pairs")
        else:
            for n, pair in enumerate(between):
                here = f"{path}.between[{n}]"
                if not isinstance(pair, list) or len(pair) != 2:
                    r.fail(here, "must be a pair of kinds")
                    continue
                for k, kind_name in enumerate(pair):
                    if kind_name not in ctx.kinds:
                        r.fail(f"{here}[{k}]", f"{kind_name!r} is not a known kind")
                a, b = str(pair[0]), str(pair[1])
                pairs.extend([(a, b)] if a == b else [(a, b), (b, a)])
        if "from" in m or "to" in m:
            r.fail(f"{path}.between", "give either between or from/to, not both")
    elif "from" in m or "to" in m:
        senders = _kinds_or_any(r, m.get("from", "any"), f"{path}.from", ctx)
        recipients = _kinds_or_any(r, m.get("to", "any"), f"{path}.to", ctx)
        pairs = [(s, t) for s in senders for t in recipients]
    elif same_org or kind == "legal_basis" or m.get("legal_bases"):
        pairs = [(None, None)]
    else:
        r.fail(
            path, "must say which organisations it covers (between, from/to or same_organisation)"
        )

    purposes: frozenset[str] | None
    if m.get("purposes", "any") == "any":
        purposes = None
        if kind in ("implied", "consent"):
            r.fail(f"{path}.purposes", f"{with_article(kind)} rule must name its purposes")
    else:
        purposes = frozenset(
            r.names(m.get("purposes"), f"{path}.purposes", ctx.purposes, "purpose")
        )

    legal_bases = frozenset(
        r.names(m["legal_bases"], f"{path}.legal_bases", ctx.legal_bases, "legal basis")
        if "legal_bases" in m
        else ()
    )
    if kind == "legal_basis" and not legal_bases:
        r.fail(f"{path}.legal_bases", "a legal_basis rule must name its legal bases")

    forms_value = m.get("forms", "any")
    if forms_value == "any":
        forms = frozenset(ctx.forms)
    elif forms_value == "signed":
        forms = frozenset(f for f, signed in ctx.forms.items() if signed)
    else:
        forms = frozenset(r.names(forms_value, f"{path}.forms", tuple(ctx.forms), "form"))

    consent_names = m.get("consent_names", "recipient")
    if consent_names not in ("recipient", "sender"):
        r.fail(f"{path}.consent_names", "must be recipient or sender")
        consent_names = "recipient"

    ceiling: set[str] = set()
    raw_ceiling = m.get("ceiling")
    if kind == "deny":
        if raw_ceiling is not None:
            r.fail(f"{path}.ceiling", "a deny rule has no ceiling")
    elif raw_ceiling == "all":
        ceiling = set(ctx.categories)
    elif not isinstance(raw_ceiling, list) or not raw_ceiling:
        r.fail(f"{path}.ceiling", "must be 'all' or a list of tiers and categories")
    else:
        for n, item in enumerate(raw_ceiling):
            if isinstance(item, str) and _TIER.fullmatch(item):
                members = {c for c, t in ctx.categories.items() if t == item}
                if not members:
                    r.fail(f"{path}.ceiling[{n}]", f"no category is in tier {item}")
                ceiling |= members
            elif item in ctx.categories:
                ceiling.add(item)
            else:
                r.fail(f"{path}.ceiling[{n}]", f"{item!r} is not a category or tier")

    reason = m.get("reason")
    if kind == "deny":
        if not isinstance(reason, str) or not _CODE.fullmatch(reason):
            r.fail(f"{path}.reason", "a deny rule needs a reason code")
            reason = "denied"
    elif reason is not None:
        r.fail(f"{path}.reason", "only a deny rule has a reason")

    obligations = (
        r.names(m["obligations"], f"{path}.obligations", what="obligation")
        if "obligations" in m
        else ()
    )

    alternative = None
    if "alternative_legal_basis" in m:
        alt = r.mapping(
            m["alternative_legal_basis"],
            f"{path}.alternative_legal_basis",
            {"legal_basis", "blocked_by_objection", "when_from"},
        )
        basis = alt.get("legal_basis")
        if basis not in ctx.legal_bases:
            r.fail(
                f"{path}.alternative_legal_basis.legal_basis",
                f"{basis!r} is not a known legal basis",
            )
        alternative = AlternativeBasis(
            legal_basis=str(basis),
            blocked_by_objection=_scope(
                r, alt, "blocked_by_objection", f"{path}.alternative_legal_basis", ctx
            ),
            when_from=frozenset(
                r.names(
                    alt["when_from"], f"{path}.alternative_legal_basis.when_from", ctx.kinds, "kind"
                )
                if "when_from" in alt
                else ()
            ),
        )

    return Rule(
        id=rule_id,
        kind=cast(RuleKind, kind),
        explanation=explanation,
        source=source,
        pairs=tuple(pairs),
        same_organisation=same_org,
        purposes=purposes,
        legal_bases=legal_bases,
        forms=forms,
        consent_names=cast(Any, consent_names),
        ceiling=frozenset(ceiling),
        obligations=obligations,
        reason=reason,
        blocked_by_objection=_scope(r, m, "blocked_by_objection", path, ctx),
        overridden_by_later_objection=_scope(r, m, "overridden_by_later_objection", path, ctx),
        alternative=alternative,
    )
