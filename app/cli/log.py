"""The log: ``verify``, ``rebuild``, ``backup``, ``restore`` and ``accept-rollback``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click
from flask.cli import with_appcontext

from app.cli.common import _fail, _ledger
from app.errors import DomainError
from app.services.log import keys
from app.services.log.log_store import LogInconsistent
from app.services.log.verify import AnswersResult, verify_instance


@click.command("verify")
@with_appcontext
@click.option(
    "--key",
    "vkey",
    default=None,
    help="verifier key to check every signature against (default: the keys the log lists, "
    "each for its own period)",
)
@click.option("--quiet", is_flag=True, help="no progress lines")
def verify_command(vkey: str | None, quiet: bool) -> None:
    """Verify the whole log offline; exit 1 naming the first bad entry."""
    from app.ledger.checkpoint import CheckpointVerifier
    from app.ledger.errors import VerifierKeyError

    ledger = _ledger()
    try:
        verifier = CheckpointVerifier.from_verifier_key(vkey) if vkey else None
        ledger.keyring()  # the log's own keys, each for the checkpoints of its period
    except (VerifierKeyError, keys.KeyFileError) as exc:
        _fail(f"cannot load the verifier key: {exc}")
    verified = verify_instance(
        ledger,
        verifier,
        _progress_lines("verified", quiet),
        _progress_lines("replayed", quiet),
        _progress_lines("opened", quiet),
    )
    result, answers = verified.log, verified.answers
    if not verified.recorded:
        click.echo(
            "checked against a key that is not this log's: the result is not recorded "
            "on the IG dashboard",
            err=True,
        )
    if not result.ok:
        _fail(f"log verification FAILED: {result.problem}")
    click.echo(
        f"log verified: {result.size} entries re-hashed, tree rebuilt, "
        f"{result.checkpoints} signed checkpoints checked, every committed entry opened "
        f"({result.erased} erased)"
    )
    assert answers is not None
    _report_answers(answers)


def _progress_lines(verb: str, quiet: bool) -> Callable[[int, int], None]:
    """A progress callback printing a line per 5% on long runs (10,000 entries or more)."""
    last_pct = -1

    def progress(done: int, total: int) -> None:
        nonlocal last_pct
        pct = 100 * done // total if total else 100
        if not quiet and total >= 10_000 and pct // 5 != last_pct // 5:
            last_pct = pct
            click.echo(f"{verb} {done}/{total} entries ({pct}%)", err=True)

    return progress


def _report_answers(answers: AnswersResult) -> None:
    if answers.unfounded_count:
        click.echo(f"entries that do not follow from the log: {answers.unfounded_count}", err=True)
        for unfounded in answers.unfounded:
            click.echo(f"  - {unfounded}", err=True)
        if answers.unfounded_count > len(answers.unfounded):
            click.echo(
                f"  ... and {answers.unfounded_count - len(answers.unfounded)} more", err=True
            )
    if answers.differences:
        click.echo(
            f"projections differ from the log in {len(answers.differences)} places:", err=True
        )
        for line in answers.differences:
            click.echo(f"  - {line}", err=True)
    if not answers.ok:
        _fail(f"log verification FAILED: {answers.problem}")
    click.echo(
        f"{answers.decisions} decisions and {answers.disclosures} disclosures re-evaluated "
        "from the log; projections match the log"
    )


@click.command("rebuild")
@click.option("--check", "check_only", is_flag=True, help="only report differences (exit 1 if any)")
@with_appcontext
def rebuild_command(check_only: bool) -> None:
    """Re-derive the projections from the log; with --check, report any difference."""
    from app.services.log import rebuild

    ledger = _ledger()

    def progress(done: int, total: int) -> None:
        if total >= 10_000:
            click.echo(f"replayed {done}/{total} entries ({100 * done // total}%)", err=True)

    if check_only:
        with ledger.db.read() as session:
            total = ledger.log_store.size(session)
            try:
                report = rebuild.check(session, total, progress)
            except rebuild.Unreplayable as exc:
                _fail(str(exc))
        if report.differences:
            click.echo(
                f"projections differ from the log in {len(report.differences)} places:", err=True
            )
            for line in report.differences:
                click.echo(f"  - {line}", err=True)
            sys.exit(1)
        click.echo(f"projections match the log ({report.entries} entries replayed)")
        return
    result = rebuild.repair(ledger, progress)
    for line in result.repaired:
        click.echo(f"  repaired: {line}")
    if result.still_differs:
        for line in result.still_differs:
            click.echo(f"  still differs: {line}", err=True)
        sys.exit(1)
    click.echo(
        f"consent projections rebuilt from {result.entries} entries; "
        f"{len(result.repaired)} differences fixed"
    )


def _copy_progress(done: int, total: int) -> None:
    if total >= 4096:  # only for copies large enough to take a while
        click.echo(f"copied {done}/{total} pages ({100 * done // max(total, 1)}%)", err=True)


@click.command("backup")
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def backup_command(dest: Path) -> None:
    """Copy the SQLite database to DEST (online, consistent) and check the copy.
    For PostgreSQL use pg_dump (see the README)."""
    from app.services.log import backup

    try:
        state = backup.backup(_ledger(), dest, _copy_progress)
    except DomainError as exc:
        _fail(exc.detail)
    click.echo(f"backed up {state.size} entries (root {state.root_hex}) to {dest}")


@click.command("restore")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--accept-rollback",
    is_flag=True,
    help="restore even if the copy lacks the newest published checkpoint, and log the loss",
)
@with_appcontext
def restore_command(source: Path, accept_rollback: bool) -> None:
    """Replace the SQLite database with SOURCE, after checking that it contains the newest
    checkpoint this instance published. Stop the service first."""
    from app.services.log import backup

    try:
        done = backup.restore(
            _ledger(), source, accept_rollback=accept_rollback, progress=_copy_progress
        )
    except DomainError as exc:
        _fail(exc.detail)
    click.echo(f"restored {done.size} entries (root {done.root_hex}) from {source}")
    if done.rollback_logged_at is not None:
        click.echo(f"the loss of later entries is recorded at log index {done.rollback_logged_at}")


@click.command("accept-rollback")
@with_appcontext
def accept_rollback_command() -> None:
    """Record in the log that the database (restored by other means, e.g. pg_restore) lacks
    the newest checkpoint this instance published, so the service can serve again."""
    from app.services.log import backup

    try:
        index = backup.accept_rollback_now(_ledger())
    except LogInconsistent as exc:
        _fail(f"the database fails its own check: {exc}; run `consent-ledger verify`")
    if index is None:
        click.echo("the database contains the newest published checkpoint: nothing to accept")
        return
    click.echo(f"rollback recorded at log index {index}; restart the service")
