"""The policy scenarios of policies/tests/*.yaml, table-driven, against the shipped policy."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.policy import Policy
from app.policy.scenarios import Scenario, coverage, parse_scenario_file, run_scenario
from app.services.decisions.policies import DEFAULT_POLICY_FILE, REPO_POLICIES, parse_policy_file

SHIPPED: Policy = parse_policy_file(DEFAULT_POLICY_FILE)
SCENARIOS: list[Scenario] = [
    scenario
    for path in sorted((REPO_POLICIES / "tests").glob("*.yaml"))
    for scenario in parse_scenario_file(yaml.safe_load(path.read_text()), path.name)
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario(scenario: Scenario) -> None:
    result = run_scenario(SHIPPED, scenario)
    assert result.ok, "; ".join(result.problems)
    # Every decision explains itself with at least one rule id.
    assert result.decision.reasons
    assert result.decision.policy_version == SHIPPED.version


def test_every_rule_has_a_permit_and_a_deny_scenario() -> None:
    covered = coverage(SCENARIOS)
    deny_only = {r.id for r in SHIPPED.rules if r.kind == "deny"} | {"G0"}
    rule_ids = {r.id for r in SHIPPED.rules} | {g.id for g in SHIPPED.global_rules} - {"G8"}
    missing = []
    for rule_id in sorted(rule_ids):
        wanted = {"deny"} if rule_id in deny_only else {"permit", "deny"}
        lacking = wanted - covered.get(rule_id, set())
        if lacking:
            missing.append(f"{rule_id}: no {' or '.join(sorted(lacking))} scenario")
    assert not missing, missing


def test_the_scenarios_can_fail() -> None:
    """A policy without P2 must fail the therapy-to-employment-adviser scenarios: the runner
    compares, it does not just evaluate."""
    import dataclasses

    weakened = dataclasses.replace(SHIPPED, rules=tuple(r for r in SHIPPED.rules if r.id != "P2"))
    results = [run_scenario(weakened, s) for s in SCENARIOS if "P2" in s.rules]
    assert results
    assert any(not r.ok for r in results)


def test_scenario_files_are_all_read() -> None:
    files = sorted(Path(REPO_POLICIES / "tests").glob("*.yaml"))
    assert len(files) >= 10
    assert len(SCENARIOS) >= 100
