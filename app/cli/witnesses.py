"""``witnesses``: show our checkpoints to the configured witnesses, and where each stands."""

from __future__ import annotations

import signal
import threading

import click
from flask.cli import AppGroup

from app.cli.common import _fail, _ledger
from app.services.log import witnesses

witnesses_group = AppGroup(
    "witnesses",
    help="Witness cosigning (c2sp.org/tlog-witness): the witnesses in CONSENT_LEDGER_WITNESSES.",
)


@witnesses_group.command("submit")
@click.option("--once", is_flag=True, help="one round, then stop")
def witnesses_submit_command(once: bool) -> None:
    """Show the newest checkpoint to every witness behind it, in the foreground (``serve``
    does this itself). One submitter runs per instance at a time: while ``serve`` runs, this
    waits its turn."""
    ledger = _ledger()
    if not ledger.witnesses.configured:
        _fail("no witnesses are configured (set CONSENT_LEDGER_WITNESSES)")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if not once:
        click.echo("submitting (Ctrl-C to stop)")
    if not witnesses.run(ledger, stop, once=once):
        if once:
            _fail("another submitter is running for this instance (consent-ledger serve?)")
        return
    if once:
        _print_status()
    else:
        click.echo("stopped")


@witnesses_group.command("status")
def witnesses_status_command() -> None:
    """Each witness: the size it cosigned, how far behind it is, and its last error."""
    if _ledger().witnesses.configured:
        _print_status()
    else:
        click.echo("no witnesses are configured (CONSENT_LEDGER_WITNESSES is not set)")


def _print_status() -> None:
    board = witnesses.report(_ledger())
    assert board is not None
    witnessed = "none yet" if board.witnessed_size is None else f"size {board.witnessed_size}"
    click.echo(
        f"log size {board.log_size}; served checkpoint size {board.served_size}; quorum "
        f"{board.quorum} of {len(board.witnesses)}; newest checkpoint the quorum cosigned: "
        f"{witnessed}"
    )
    for w in board.witnesses:
        click.echo(
            f"{w.id}\tcosigned {w.cosigned_size}\tbehind {w.behind} entries, {w.lag_seconds} s"
            f"\tlast error: {w.last_error or 'none'}"
        )
