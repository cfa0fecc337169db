"""Policy engine, in process (a benchmark, not a test): ours against cedarpy (AWS Cedar).

Median and p99 per evaluation of ``app.policy.evaluate`` on realistic facts, against
``cedarpy.is_authorized`` evaluating an equivalent Cedar policy in the same run, on the same
requests, in alternating blocks (so drift on a noisy machine hits both alike).

The person: eleven consents (active, withdrawn, expired, other purposes, one recorded by DWP-funded
support and never confirmed, one given before their direct-care objection and one after it), an
active direct-care objection and an active national data opt-out. The request mix, in equal
parts:

- ``permit``     health -> employment_nhs referral under a consent given after the objection (P2);
- ``withdrawn``  health -> employment_nhs referral whose consent was withdrawn (P2, G5);
- ``objection``  health -> social_care referral: implied consent blocked by the objection, and the
                 only explicit consent predates it (P1, P1-consent, G3);
- ``no_rule``    health -> evaluator referral: no rule covers it (G0).

The Cedar policy is translated, by :func:`cedar_policies` below, from the rules P1, P1-consent,
P2 and P10 of ``policies/default.yaml`` and this person's facts (G0 is Cedar's own default deny).
Cedar has no quantifier over a set, so "some consent allows it" becomes one ``permit`` per
(consent rule, consent) and "no later objection" one clause per objection; a consent's status,
period, recipients and categories stay entity data, so a withdrawal is an entity change, not a
policy change. It is equivalent to ours *on this mix only*: a Cedar permit needs one consent
covering every requested category (ours combines consents and rules per category), and rules
other than those four are not translated. The script checks that both engines give the same
permit/deny on every case (and that ours gives the expected reason) before timing anything, and
stops otherwise. Ours also builds the whole decision (reasons, obligations, consents relied
on); Cedar answers Allow/Deny with the ids of the determining policies.

Cedar is measured at its cheapest public per-decision cost: ``PolicySet`` and ``Entities``
handles parsed once, the request dicts built once (structured uids, the context already
serialised to JSON). ``is_authorized_batch`` is also reported, amortised per decision, and so is
the private Rust call under ``is_authorized`` (``cedarpy._internal``, the result left as a JSON
string): Cedar's floor from Python.

Usage: .venv/bin/python bench/bench_engine.py [--n 20000] [--warmup 2000] [--batch 100]
       [--block 500] [--print-cedar]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import cedarpy
import yaml

from app.policy import (
    ConsentFact,
    Facts,
    ObjectionFact,
    Party,
    Policy,
    Request,
    evaluate,
    load_policy,
)
from app.policy.model import Rule

POLICY_FILE = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PERSON = "p-9434765919"
TRANSLATED = ("P1", "P1-consent", "P2", "P10")

ORGANISATIONS = {
    "tt-leeds": "health",
    "cmht-leeds-west": "health",
    "ea-tt-leeds": "employment_nhs",
    "ips-cmht-leeds": "employment_nhs",
    "whp-leeds": "employment_dwp",
    "jcp-leeds-city": "dwp",
    "asc-leeds": "social_care",
    "eval-northern-uni": "evaluator",
    "employer-acme-logistics": "employer",
}


def days(n: float) -> datetime:
    return NOW - timedelta(days=n)


def consent(
    seq: int,
    purpose: str,
    recipients: set[str],
    categories: set[str],
    form: str,
    recorded_by: str,
    recorded: float,
    *,
    status: str = "active",
    expires: float | None = None,
    confirmed: bool = False,
) -> ConsentFact:
    return ConsentFact(
        id=f"c{seq:02d}",
        purpose=purpose,
        recipients=frozenset(recipients),
        categories=frozenset(categories),
        form=form,
        status=status,
        recorded_at=days(recorded),
        recorded_by_kind=ORGANISATIONS[recorded_by],
        confirmed=confirmed,
        expires_at=None if expires is None else days(expires),
        recorded_by=recorded_by,
        sequence=seq,
    )


def person_facts() -> Facts:
    """One person's record, as ``app.services`` would read it: log order, every status."""
    ids = {"identity", "service_status"}
    return Facts(
        consents=(
            consent(
                3, "referral", {"ea-tt-leeds"}, ids, "verbal", "tt-leeds", 300, status="withdrawn"
            ),
            consent(
                5,
                "referral",
                {"ips-cmht-leeds"},
                ids | {"employment_status"},
                "verbal",
                "tt-leeds",
                280,
                status="withdrawn",
            ),
            consent(
                7,
                "evaluation",
                {"eval-northern-uni"},
                {"service_status", "outcome_measures"},
                "written",
                "tt-leeds",
                270,
            ),
            consent(9, "referral", {"asc-leeds"}, ids | {"condition"}, "verbal", "tt-leeds", 250),
            consent(
                11,
                "case_conferencing",
                {"ea-tt-leeds"},
                ids | {"work_needs"},
                "written",
                "tt-leeds",
                240,
                expires=150,
            ),
            consent(13, "referral", {"whp-leeds"}, ids, "verbal", "whp-leeds", 200),
            consent(17, "referral", {"ea-tt-leeds"}, ids, "verbal", "tt-leeds", 190, expires=100),
            consent(
                24,
                "referral",
                {"ea-tt-leeds"},
                ids | {"outcome_measures"},
                "written",
                "tt-leeds",
                60,
            ),
            consent(
                26,
                "employer_contact",
                {"employer-acme-logistics"},
                {"identity", "employment_status", "work_needs"},
                "written",
                "ea-tt-leeds",
                45,
            ),
            consent(28, "sms_contact", {"tt-leeds"}, {"contact_details"}, "verbal", "tt-leeds", 40),
            consent(
                30,
                "case_conferencing",
                {"tt-leeds"},
                ids | {"work_needs"},
                "electronic",
                "ea-tt-leeds",
                30,
            ),
        ),
        objections=(
            ObjectionFact("o04", "national_data_opt_out", "active", days(290), sequence=4),
            ObjectionFact("o20", "direct_care", "active", days(120), sequence=20),
        ),
    )


@dataclass(frozen=True)
class Case:
    kind: str
    request: Request
    expect: str  # ours: "permit", or the reason code every requested category is denied with


def request(sender: str, recipient: str, purpose: str, *categories: str) -> Request:
    return Request(
        Party(sender, ORGANISATIONS[sender]),
        Party(recipient, ORGANISATIONS[recipient]),
        purpose,
        categories,
    )


CASES = (
    Case(
        "permit",
        request(
            "tt-leeds", "ea-tt-leeds", "referral", "identity", "service_status", "outcome_measures"
        ),
        "permit",
    ),
    Case(
        "withdrawn",
        request("tt-leeds", "ips-cmht-leeds", "referral", "identity", "service_status"),
        "consent_withdrawn",
    ),
    Case(
        "objection",
        request("tt-leeds", "asc-leeds", "referral", "identity", "service_status", "condition"),
        "objection_direct_care",
    ),
    Case(
        "no_rule",
        request("tt-leeds", "eval-northern-uni", "referral", "service_status", "outcome_measures"),
        "no_applicable_rule",
    ),
)


# -- the Cedar translation ----------------------------------------------------------------------


def micros(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1)


def org(org_id: str) -> dict[str, Any]:
    return {"__entity": {"type": "Organisation", "id": org_id}}


def cedar_entities(facts: Facts) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"uid": {"type": "Organisation", "id": o}, "attrs": {"kind": k}, "parents": []}
        for o, k in ORGANISATIONS.items()
    ]
    out.append({"uid": {"type": "Person", "id": PERSON}, "attrs": {}, "parents": []})
    for c in facts.consents:
        attrs: dict[str, Any] = {
            "purpose": c.purpose,
            "recipients": [org(r) for r in sorted(c.recipients)],
            "categories": sorted(c.categories),
            "form": c.form,
            "status": c.status,
            "valid_from": micros(c.valid_from or c.recorded_at),
            "recorded_by_kind": c.recorded_by_kind,
            "confirmed": c.confirmed,
            "sequence": c.sequence,
        }
        if c.recorded_by is not None:
            attrs["recorded_by"] = org(c.recorded_by)
        if c.expires_at is not None:
            attrs["expires_at"] = micros(c.expires_at)
        out.append({"uid": {"type": "Consent", "id": c.id}, "attrs": attrs, "parents": []})
    for o in facts.objections:
        attrs = {"scope": o.scope, "status": o.status, "sequence": o.sequence}
        out.append({"uid": {"type": "Objection", "id": o.id}, "attrs": attrs, "parents": []})
    return out


def _strings(values: Any) -> str:
    return "[" + ", ".join(json.dumps(v) for v in sorted(values)) + "]"


def _scope(rule: Rule) -> tuple[str, str]:
    """The action scope and the shared conditions of a rule: its pairs and its ceiling (G7)."""
    assert not rule.same_organisation, rule.id
    assert not rule.legal_bases, rule.id
    actions = (
        "action"
        if rule.purposes is None
        else "action in [" + ", ".join(f'Action::"{p}"' for p in sorted(rule.purposes)) + "]"
    )
    pairs = []
    for s, t in rule.pairs:
        parts = [f'principal.kind == "{s}"'] if s else []
        parts += [f'context.recipient.kind == "{t}"'] if t else []
        pairs.append("(" + " && ".join(parts or ["true"]) + ")")
    conditions = "(" + " || ".join(pairs) + ")"
    if rule.kind != "deny":
        conditions += (
            f" &&\n  !context.categories.isEmpty() &&\n"
            f"  {_strings(rule.ceiling)}.containsAll(context.categories)"
        )
    return actions, conditions


def cedar_policies(policy: Policy, facts: Facts) -> str:
    """The Cedar policy set for this person: rules P1, P1-consent, P2, P10 and their facts."""
    rules = {r.id: r for r in policy.rules}
    g6 = policy.confirmation
    person = f'Person::"{PERSON}"'
    out = ["// G0: Cedar denies when no permit applies."]
    for rule_id in TRANSLATED:
        rule = rules[rule_id]
        actions, scope = _scope(rule)
        if rule.kind == "deny":
            out.append(
                f'@id("{rule.id}")\nforbid (principal, {actions}, resource)\nwhen {{ {scope} }};'
            )
        elif rule.kind == "implied":
            blockers = [o for o in facts.objections if o.scope == rule.blocked_by_objection]
            unless = " || ".join(f'Objection::"{o.id}".status == "active"' for o in blockers)
            out.append(
                f'@id("{rule.id}")\npermit (principal, {actions}, resource == {person})\n'
                f"when {{\n  {scope}\n}}" + (f"\nunless {{ {unless} }};" if unless else ";")
            )
        else:
            assert rule.kind == "consent", rule.id
            assert rule.purposes is not None, rule.id
            named, other = (
                ("context.recipient", "principal")
                if rule.consent_names == "recipient"
                else ("principal", "context.recipient")
            )
            later = [o for o in facts.objections if o.scope == rule.overridden_by_later_objection]
            for c in facts.consents:
                if c.purpose not in rule.purposes:
                    continue
                e = f'Consent::"{c.id}"'
                terms = [
                    scope,
                    f'action == Action::"{c.purpose}"',
                    f"{e}.recipients.contains({named})",
                    f"({e} has recorded_by && {other} == {e}.recorded_by ||"
                    f" {e}.recipients.contains({other}))"
                    if c.recorded_by is not None
                    else "true",
                    f"{e}.categories.containsAll(context.categories)",
                    f'{e}.status == "active"',
                    f"{e}.valid_from <= context.now",
                    f"(!({e} has expires_at) || context.now < {e}.expires_at)",
                    f"{_strings(rule.forms)}.contains({e}.form)",
                    f"!({_strings(g6.disclosures_by)}.contains(principal.kind) &&"
                    f" {_strings(g6.consents_recorded_by)}.contains({e}.recorded_by_kind) &&"
                    f" !{e}.confirmed)",
                ]
                terms += [
                    f'!(Objection::"{o.id}".status == "active" &&'
                    f' Objection::"{o.id}".sequence > {e}.sequence)'
                    for o in later
                ]
                out.append(
                    f'@id("{rule.id} {c.id}")\n'
                    f"permit (principal, {actions}, resource == {person})\n"
                    "when {\n  " + " &&\n  ".join(terms) + "\n};"
                )
    return "\n\n".join(out) + "\n"


def cedar_request(case: Case) -> dict[str, Any]:
    r = case.request
    context = {
        "recipient": org(r.recipient.id),
        "categories": list(r.categories),
        "now": micros(NOW),
    }
    return {
        # Structured uids: parsing 'Organisation::"tt-leeds"' costs Cedar ~15 µs a uid.
        "principal": {"type": "Organisation", "id": r.sender.id},
        "action": {"type": "Action", "id": r.purpose},
        "resource": {"type": "Person", "id": PERSON},
        "context": json.dumps(context),  # serialised once, like our prepared Request
    }


# -- measurement --------------------------------------------------------------------------------


def check(policy: Policy, facts: Facts, ps: Any, entities: Any, requests: list[Any]) -> None:
    """Both engines must agree on every case, and ours must say what the case claims."""
    problems = []
    for case, creq in zip(CASES, requests, strict=True):
        ours = evaluate(policy, case.request, facts, NOW)
        got = (
            "permit"
            if ours.decision == "permit"
            else "/".join(sorted({d.reason for d in ours.denied_categories}))
        )
        if got != case.expect:
            problems.append(f"{case.kind}: ours gives {got}, the case expects {case.expect}")
        cedar = cedarpy.is_authorized(creq, ps, entities)
        if cedar.diagnostics.errors:
            problems.append(f"{case.kind}: Cedar evaluation errors {cedar.diagnostics.errors}")
        if cedar.allowed != (ours.decision == "permit"):
            problems.append(
                f"{case.kind}: ours {ours.decision}, Cedar {cedar.decision.value} "
                f"(determining: {cedar.diagnostics.id_annotations_by_reason})"
            )
        else:
            ids = sorted(cedar.diagnostics.id_annotations_by_reason.values())
            print(
                f"  check {case.kind:<10} ours {ours.decision:<6} ({got}; "
                f"{','.join(r.rule for r in ours.reasons)})  Cedar {cedar.decision.value}"
                f" ({','.join(ids) or 'no policy'})"
            )
    if problems:
        sys.exit("NOT EQUIVALENT, nothing timed:\n  " + "\n  ".join(problems))


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.platform()}; CPU {cpu} x{os.cpu_count()}; "
        f"Python {platform.python_version()} ({platform.python_implementation()}); "
        f"cedarpy {metadata.version('cedarpy')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000, help="timed evaluations per engine")
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100, help="requests per Cedar batch")
    parser.add_argument("--block", type=int, default=500, help="evaluations per alternation")
    parser.add_argument("--print-cedar", action="store_true")
    args = parser.parse_args()

    policy = load_policy(yaml.safe_load(POLICY_FILE.read_text()), str(POLICY_FILE))
    facts = person_facts()
    cedar_text = cedar_policies(policy, facts)
    if args.print_cedar:
        print(cedar_text)
    ps = cedarpy.PolicySet.from_str(cedar_text)
    entities = cedarpy.Entities.from_json_str(json.dumps(cedar_entities(facts)))
    requests = [cedar_request(c) for c in CASES]

    print(f"machine: {machine()}")
    print(
        f"facts: {len(facts.consents)} consents, {len(facts.objections)} objections; "
        f"Cedar: {cedar_text.count('@id(')} policies; mix: {', '.join(c.kind for c in CASES)}"
    )
    check(policy, facts, ps, entities, requests)

    k = len(CASES)
    ours_req = [c.request for c in CASES]
    perf = time.perf_counter_ns
    is_authorized = cedarpy.is_authorized
    for i in range(args.warmup):
        evaluate(policy, ours_req[i % k], facts, NOW)
        is_authorized(requests[i % k], ps, entities)

    ours_ns: list[list[int]] = [[] for _ in CASES]
    cedar_ns: list[list[int]] = [[] for _ in CASES]
    core_ns: list[int] = []
    core = cedarpy._internal.is_authorized  # the Rust call under is_authorized (private)
    inner = entities._inner
    batch_ns: list[float] = []
    batch = [requests[i % k] for i in range(args.batch)]
    done = 0
    while done < args.n:
        size = min(args.block, args.n - done)
        for i in range(done, done + size):
            j = i % k
            r = ours_req[j]
            t0 = perf()
            evaluate(policy, r, facts, NOW)
            ours_ns[j].append(perf() - t0)
        for i in range(done, done + size):
            j = i % k
            cr = requests[j]
            t0 = perf()
            is_authorized(cr, ps, entities)
            cedar_ns[j].append(perf() - t0)
        for i in range(done, done + size):
            cr = requests[i % k]
            t0 = perf()
            core(cr, ps, inner, None, False)
            core_ns.append(perf() - t0)
        for _ in range(max(1, size // args.batch)):
            t0 = perf()
            cedarpy.is_authorized_batch(batch, ps, entities)
            batch_ns.append((perf() - t0) / args.batch)
        done += size

    def us(v: float) -> str:
        return f"{v / 1000:7.2f}"

    ours_all = [t for ts in ours_ns for t in ts]
    cedar_all = [t for ts in cedar_ns for t in ts]
    print(f"\nper evaluation, µs ({args.n} each, {args.block}-evaluation blocks alternating)")
    print(f"{'case':<11}{'ours med':>9}{'p99':>9}{'Cedar med':>11}{'p99':>9}{'ratio':>8}")
    rows = [(c.kind, ours_ns[j], cedar_ns[j]) for j, c in enumerate(CASES)]
    for name, o, c in [*rows, ("all", ours_all, cedar_all)]:
        om, cm = statistics.median(o), statistics.median(c)
        print(
            f"{name:<11}{us(om):>9}{us(percentile(o, 0.99)):>9}{us(cm):>11}"
            f"{us(percentile(c, 0.99)):>9}{om / cm:8.2f}"
        )
    bm = statistics.median(batch_ns)
    om = statistics.median(ours_all)
    print(
        f"Cedar is_authorized_batch ({args.batch} per batch), amortised per decision: "
        f"median {us(bm).strip()} µs, p99 {us(percentile(batch_ns, 0.99)).strip()} µs; "
        f"ours/batch {om / bm:.2f}"
    )
    cm = statistics.median(core_ns)
    print(
        f"Cedar core (cedarpy._internal.is_authorized: no Python wrapper, result not parsed): "
        f"median {us(cm).strip()} µs, p99 {us(percentile(core_ns, 0.99)).strip()} µs; "
        f"ours/core {om / cm:.2f}"
    )
    print("ratio = ours median / Cedar median (below 1: ours is faster)")


if __name__ == "__main__":
    main()
