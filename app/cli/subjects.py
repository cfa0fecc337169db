"""``erase``: erase a person (UK GDPR Art 17), as ``POST /v1/subjects/erasures`` does; and
``retention run``: erase everyone past the policy's retention period."""

from __future__ import annotations

import json
import sys

import click
from flask.cli import AppGroup, with_appcontext

from app.cli.common import _fail, _ledger
from app.errors import DomainError
from app.services.consents import erasure
from app.services.consents.subjects import InvalidNhsNumber, SubjectIdentifier


def _read_identifier(local_system: str | None) -> SubjectIdentifier:
    # Read, never an argument: a command line is kept in shell history and shown by ps.
    if sys.stdin.isatty():
        raw = click.prompt(
            "local identifier" if local_system else "NHS number", hide_input=True, err=True
        )
    else:
        raw = sys.stdin.readline().strip()
    if not raw:
        _fail("no identifier was given on standard input")
    if local_system is not None:
        return SubjectIdentifier.local_id(local_system, raw)
    try:
        return SubjectIdentifier.nhs_number(raw)
    except InvalidNhsNumber as exc:
        _fail(f"the NHS number {exc}")


@click.command("erase")
@with_appcontext
@click.option(
    "--reason", required=True, type=click.Choice(erasure.REASONS), help="why the person is erased"
)
@click.option(
    "--reference", required=True, help="your own case number for the request (it is logged)"
)
@click.option(
    "--local-system",
    default=None,
    help="the person is named by this organisation's local identifier, not an NHS number",
)
@click.option("--json", "as_json", is_flag=True, help="print the erasure as JSON")
def erase_command(reason: str, reference: str, local_system: str | None, as_json: bool) -> None:
    """Erase a person: delete the openings of every log entry about them, their identifier
    mappings and every row about them, and log a subject.erased entry holding nothing
    personal. The identifier (an NHS number, or with --local-system a local one) is read from
    standard input or a hidden prompt, never from the command line. Refused while the policy's
    retention period keeps the records, unless --reason recorded_in_error."""
    identifier = _read_identifier(local_system)
    try:
        erased = erasure.erase(_ledger(), None, identifier, reason, reference)
    except DomainError as exc:
        _fail(exc.detail)
    if as_json:
        click.echo(json.dumps(erasure.erasure_view(erased)))
        return
    click.echo(
        f"erased: {erased.count} log entries now open to nothing; subject.erased is log "
        f"index {erased.receipt.index} (reference {erased.reference})"
    )


retention_group = AppGroup("retention", help="Erase records past the policy's retention period.")


@retention_group.command("run")
@click.option("--dry-run", is_flag=True, help="count the people past retention; erase nothing")
@click.option(
    "--batch",
    default=erasure.RETENTION_BATCH,
    show_default=True,
    type=click.IntRange(min=1, max=10_000),
    help="people erased per transaction (and per subject.erased entry)",
)
@click.option("--quiet", is_flag=True, help="no progress lines")
def retention_run_command(dry_run: bool, batch: int, quiet: bool) -> None:
    """Erase every person whose records are past the retention period of the policy in force
    (as `erase --reason retention_expired` would, one at a time), logging one subject.erased
    entry per run (per --batch people when more are due); a run that erases nobody logs one
    too, so the log shows when retention was last enforced. Run it daily."""

    def progress(done: int, total: int) -> None:
        if not quiet:
            click.echo(f"checked {done}/{total} people", err=True)

    try:
        run = erasure.run_retention(_ledger(), dry_run=dry_run, batch=batch, progress=progress)
    except DomainError as exc:
        _fail(exc.detail)
    where = f"policy {run.policy_version[:12]}, rule {run.rule}"
    if dry_run:
        click.echo(
            f"dry run: {run.due} of {run.checked} people are past retention ({where}); "
            "nothing was erased"
        )
        return
    indexes = ", ".join(str(r.index) for r in run.receipts)
    click.echo(
        f"erased {run.erased_people} of {run.checked} people past retention ({where}): "
        f"{run.erased_entries} log entries now open to nothing; subject.erased at log index "
        f"{indexes}"
    )
