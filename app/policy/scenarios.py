"""Policy tests as data: scenarios (``policies/tests/*.yaml``) run against a policy.

A scenario gives a request, the person's consents and objections, the instant, and the
expected decision; :func:`run_scenario` evaluates it and lists every mismatch. The same runner
serves ``consent-ledger policy test`` and pytest, so a deployment can test a candidate policy
with the scenarios before publishing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.policy.engine import evaluate
from app.policy.model import (
    ConsentFact,
    Decision,
    Facts,
    LegalBasis,
    ObjectionFact,
    Party,
    Policy,
    Request,
)

DEFAULT_NOW = datetime.fromisoformat("2026-11-25T12:00:00+00:00")


class ScenarioFormatError(ValueError):
    pass


@dataclass(frozen=True)
class Scenario:
    name: str
    rules: tuple[str, ...]
    request: Request
    facts: Facts
    now: datetime
    expect: Mapping[str, Any]


@dataclass(frozen=True)
class ScenarioResult:
    scenario: Scenario
    decision: Decision
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _time(value: Any, default: datetime, where: str) -> datetime:
    if value is None:
        return default
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ScenarioFormatError(f"{where}: {value!r} is not an RFC 3339 time") from None
    else:
        raise ScenarioFormatError(f"{where}: {value!r} is not a time")
    if parsed.tzinfo is None:
        raise ScenarioFormatError(f"{where}: give a time zone (for example Z)")
    return parsed


def _party(value: Any, where: str) -> Party:
    if not isinstance(value, Mapping) or "id" not in value or "kind" not in value:
        raise ScenarioFormatError(f"{where}: must be {{id, kind}}")
    return Party(str(value["id"]), str(value["kind"]))


def parse_scenario(raw: Mapping[str, Any], where: str) -> Scenario:
    try:
        name = str(raw["name"])
        req = raw["request"]
        expect = raw["expect"]
    except (KeyError, TypeError):
        raise ScenarioFormatError(f"{where}: needs name, request and expect") from None
    now = _time(raw.get("now"), DEFAULT_NOW, f"{where}.now")
    basis = req.get("legal_basis")
    request = Request(
        sender=_party(req.get("from"), f"{where}.request.from"),
        recipient=_party(req.get("to"), f"{where}.request.to"),
        purpose=str(req.get("purpose")),
        categories=tuple(req.get("categories") or ()),
        legal_basis=LegalBasis(str(basis["type"]), str(basis.get("reference", "ref")))
        if basis
        else None,
    )
    consents = []
    for n, c in enumerate(raw.get("consents") or ()):
        here = f"{where}.consents[{n}]"
        try:
            consents.append(
                ConsentFact(
                    id=str(c.get("id", f"consent-{n}")),
                    purpose=str(c["purpose"]),
                    recipients=frozenset(c["recipients"]),
                    categories=frozenset(c["categories"]),
                    form=str(c["form"]),
                    status=str(c.get("status", "active")),
                    recorded_at=_time(
                        c.get("recorded_at"), now - timedelta(days=1), f"{here}.recorded_at"
                    ),
                    recorded_by_kind=str(c.get("recorded_by_kind", request.sender.kind)),
                    confirmed=bool(c.get("confirmed", False)),
                    recorded_by=str(c["recorded_by"]) if c.get("recorded_by") else None,
                    valid_from=_time(c["valid_from"], now, f"{here}.valid_from")
                    if c.get("valid_from")
                    else None,
                    expires_at=_time(c["expires_at"], now, f"{here}.expires_at")
                    if c.get("expires_at")
                    else None,
                )
            )
        except (KeyError, TypeError):
            raise ScenarioFormatError(
                f"{here}: needs purpose, recipients, categories and form"
            ) from None
    objections = [
        ObjectionFact(
            id=str(o.get("id", f"objection-{n}")),
            scope=str(o["scope"]),
            status=str(o.get("status", "active")),
            recorded_at=_time(
                o.get("recorded_at"),
                now - timedelta(hours=1),
                f"{where}.objections[{n}].recorded_at",
            ),
        )
        for n, o in enumerate(raw.get("objections") or ())
    ]
    rules = raw.get("rules") or ()
    return Scenario(
        name,
        tuple(str(r) for r in rules),
        request,
        Facts(tuple(consents), tuple(objections)),
        now,
        expect,
    )


def run_scenario(policy: Policy, scenario: Scenario) -> ScenarioResult:
    decision = evaluate(policy, scenario.request, scenario.facts, scenario.now)
    problems: list[str] = []
    expect = scenario.expect
    if decision.decision != expect.get("decision"):
        problems.append(f"decision is {decision.decision}, expected {expect.get('decision')}")
    if "permitted" in expect and sorted(decision.permitted_categories) != sorted(
        expect["permitted"] or ()
    ):
        problems.append(
            f"permitted {sorted(decision.permitted_categories)}, expected "
            f"{sorted(expect['permitted'] or ())}"
        )
    if "denied" in expect:
        got = {d.category: d.reason for d in decision.denied_categories}
        want = dict(expect["denied"] or {})
        if got != want:
            problems.append(f"denied {got}, expected {want}")
    if "consents" in expect and sorted(decision.consents) != sorted(expect["consents"] or ()):
        problems.append(f"consents {sorted(decision.consents)}, expected {expect['consents']}")
    if "obligations" in expect and sorted(decision.obligations) != sorted(
        expect["obligations"] or ()
    ):
        problems.append(
            f"obligations {sorted(decision.obligations)}, expected {expect['obligations']}"
        )
    if "reasons" in expect:
        codes = {r.code for r in decision.reasons}
        missing = [c for c in expect["reasons"] if c not in codes]
        if missing:
            problems.append(f"reasons lack {missing} (got {sorted(codes)})")
    return ScenarioResult(scenario, decision, tuple(problems))


def parse_scenario_file(document: Any, source: str) -> list[Scenario]:
    if not isinstance(document, Mapping) or not isinstance(document.get("scenarios"), list):
        raise ScenarioFormatError(f"{source}: must be a mapping with a 'scenarios' list")
    return [
        parse_scenario(raw, f"{source}: scenarios[{n}] ({raw.get('name', '?')})")
        for n, raw in enumerate(document["scenarios"])
    ]


def coverage(scenarios: Sequence[Scenario]) -> dict[str, set[str]]:
    """rule id -> the decisions ('permit', 'deny') its scenarios exercise."""
    out: dict[str, set[str]] = {}
    for s in scenarios:
        for rule in s.rules:
            out.setdefault(rule, set()).add(str(s.expect.get("decision")))
    return out
