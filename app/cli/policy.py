"""``policy``: publish, test and replay IG policy versions."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml
from flask.cli import AppGroup, with_appcontext

from app.cli.common import _fail, _ledger
from app.policy import Policy, PolicyError
from app.services.decisions import policies

policy_group = AppGroup("policy", help="Publish, test and try out IG policy versions.")


def _load_policy_or_exit(file: Path) -> Policy:
    try:
        return policies.parse_policy_file(file)
    except PolicyError as exc:
        click.echo(
            f"Error: {exc.source}: the policy is refused; the policy in force is unchanged.",
            err=True,
        )
        for problem in exc.problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(1)


@policy_group.command("publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def policy_publish_command(file: Path) -> None:
    """Validate FILE and publish it as the policy in force (a log entry holding it whole)."""
    policy = _load_policy_or_exit(file)
    published = policies.publish(_ledger(), policy)
    if published.already_in_force:
        click.echo(
            f"policy {policy.version} is already in force (log index "
            f"{published.ledger_index}); nothing published"
        )
        return
    click.echo(
        f"published policy {policy.version} ({policy.name}) at log index {published.ledger_index}"
    )


@policy_group.command("test")
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--scenarios",
    "scenario_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="folder of scenario files (default: policies/tests)",
)
def policy_test_command(file: Path | None, scenario_dir: Path | None) -> None:
    """Run the policy scenarios against FILE (default: the shipped policy)."""
    from app.policy.scenarios import ScenarioFormatError, parse_scenario_file, run_scenario

    policy = _load_policy_or_exit(file or policies.DEFAULT_POLICY_FILE)
    folder = scenario_dir or policies.REPO_POLICIES / "tests"
    failed = total = 0
    for path in sorted(folder.glob("*.yaml")):
        try:
            scenarios = parse_scenario_file(yaml.safe_load(path.read_text()), path.name)
        except ScenarioFormatError as exc:
            _fail(str(exc))
        for scenario in scenarios:
            total += 1
            result = run_scenario(policy, scenario)
            if not result.ok:
                failed += 1
                click.echo(f"FAIL {path.name}: {scenario.name}: {'; '.join(result.problems)}")
    click.echo(f"{total - failed} passed, {failed} failed")
    if failed or not total:
        sys.exit(1)


@policy_group.command("replay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def policy_replay_command(file: Path) -> None:
    """Re-evaluate every logged decision under the candidate policy FILE; report changes."""
    from app.services.log.rebuild import Unreplayable
    from app.services.log.replay import replay_decisions

    candidate = _load_policy_or_exit(file)
    ledger = _ledger()
    with ledger.db.read() as session:
        try:
            report = replay_decisions(
                session, candidate, lambda n: click.echo(f"replayed {n} decisions", err=True)
            )
        except Unreplayable as exc:
            _fail(f"{exc}; run `consent-ledger verify` for the whole log")
    click.echo(
        f"{report.decisions} decisions replayed under {candidate.version[:16]}...; "
        f"{len(report.changes)} would change"
    )
    for change in report.changes:
        click.echo(f"  entry {change.index} {change.decision_id}: {change.request}")
        click.echo(
            f"    was      {change.was['decision']} {change.was['permitted']} "
            f"denied {change.was['denied']}"
        )
        click.echo(
            f"    would be {change.would_be['decision']} {change.would_be['permitted']} "
            f"denied {change.would_be['denied']}: {', '.join(change.would_be['reasons'])}"
        )
