"""``monitor``: follow a running log from outside, as an auditor does, and fail loudly.

Needs no instance, no database and no token: it reads the public checkpoint and tiles of the
service at URL and keeps what it has checked in the state file.
"""

from __future__ import annotations

import base64
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from app.cli.log import _progress_lines
from app.ledger.errors import VerifierKeyError
from app.ledger.monitor import BadTile, MonitorError, MonitorState, Rollback, SplitView, run
from app.services.log import monitor as io

EXIT_FAILED = 1
"""Bad signature, too few cosignatures, unreachable log, unusable state or key."""
EXIT_SPLIT_VIEW = 3
EXIT_ROLLBACK = 4
EXIT_BAD_TILE = 5
_EXIT_CODES: dict[type[MonitorError], tuple[int, str]] = {
    SplitView: (EXIT_SPLIT_VIEW, "SPLIT VIEW"),
    Rollback: (EXIT_ROLLBACK, "ROLLBACK"),
    BadTile: (EXIT_BAD_TILE, "BAD TILE"),
}


def _stop(message: str, code: int = EXIT_FAILED) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


@click.command("monitor")
@click.argument("url")
@click.option(
    "--state",
    "state_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON file holding what this monitor has checked (created by the first run)",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    help="the log's verifier key, got out of band: needed on the first run (repeatable)",
)
@click.option(
    "--witness",
    "witnesses",
    multiple=True,
    help="a witness's verifier key whose cosignature to require (repeatable; kept in the state)",
)
@click.option(
    "--witness-quorum",
    type=click.IntRange(min=0),
    default=None,
    help="how many witnesses must cosign (default: every witness given)",
)
@click.option("--quiet", is_flag=True, help="no progress lines")
def monitor_command(
    url: str,
    state_path: Path,
    keys: tuple[str, ...],
    witnesses: tuple[str, ...],
    witness_quorum: int | None,
    quiet: bool,
) -> None:
    """Check the log served at URL: signatures, cosignatures, every new tile, and that it
    extends what this monitor saw before. Exit 0 (one line), 1 bad signature or cosignatures,
    unreachable; 3 split view; 4 rollback; 5 bad tile."""
    try:
        log = io.HttpLog(url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="URL") from None
    try:
        with io.locked(state_path):
            _monitor(log, state_path, keys, witnesses, witness_quorum, quiet)
    except io.StateError as exc:
        _stop(str(exc))


def _monitor(
    log: io.HttpLog,
    state_path: Path,
    keys: tuple[str, ...],
    witnesses: tuple[str, ...],
    quorum: int | None,
    quiet: bool,
) -> None:
    saved = io.load_state(state_path)
    try:
        if saved is None:
            if not keys:
                raise click.UsageError(
                    f"{state_path} does not exist: the first run needs the log's verifier key "
                    "(--key), got out of band"
                )
            state = MonitorState.start(keys[0], witnesses, quorum).trusting(keys[1:])
        else:
            state = saved.trusting(keys, witnesses, quorum)
    except (VerifierKeyError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        note = log.checkpoint()
        report = run(state, note, log, _progress_lines("checked", quiet))
    except io.Unreachable as exc:
        _stop(f"{log.url}: {exc}")
        return
    except MonitorError as exc:
        code, name = _EXIT_CODES.get(type(exc), (EXIT_FAILED, "REFUSED"))
        if exc.evidence and code != EXIT_FAILED:
            where = io.record_evidence(state_path, log.url, exc, datetime.now(UTC))
            click.echo(f"{name}: {log.url}: {exc.message}", err=True)
            click.echo(f"the signed notes that show it (kept in {where}):", err=True)
            for shown in exc.evidence:
                click.echo(shown, err=True, nl=False)
                click.echo("", err=True)
            sys.exit(code)
        _stop(f"{name}: {log.url}: {exc.message}", code)
        return
    io.save_state(state_path, report.state)
    # Changes of trust go to stderr with the errors: a cron job that drops the ok line still
    # mails them to the auditor.
    for vkey in report.adopted:
        click.echo(
            f"adopted new log key {vkey} (announced by a log.key_added entry, signing beside "
            "a trusted key)",
            err=True,
        )
    last_sizes = report.state.last_sizes
    for vkey in report.retired:
        click.echo(
            f"log key {vkey} retired by the log after size {last_sizes[vkey]} (a log.key_retired "
            "entry): trusted for no later checkpoint, and never adopted",
            err=True,
        )
    for key_id in report.unadopted:
        click.echo(
            f"not trusting key id {key_id}, which signs beside a trusted key: no log.key_added "
            "entry this monitor checked announces it (if you trust it, pass it with --key)",
            err=True,
        )
    withheld = f", {report.withheld} by hash only (bundles withheld)" if report.withheld else ""
    cosigned = f"; cosigned by {', '.join(report.cosigned_by)}" if report.cosigned_by else ""
    root = base64.b64encode(report.checkpoint.root_hash).decode()
    click.echo(
        f"ok: {log.url} size {report.checkpoint.size} root {root}; "
        f"{report.new_entries} new entries checked{withheld}{cosigned}"
    )
