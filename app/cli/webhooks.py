"""``webhooks``: where organisations' notifications are pushed, and the deliverer."""

from __future__ import annotations

import signal
import threading

import click
from flask.cli import AppGroup

from app.cli.common import _fail, _ledger
from app.errors import DomainError
from app.services.log import keys
from app.services.notifications import webhooks

webhooks_group = AppGroup(
    "webhooks", help="Push each organisation's notifications to its webhook, signed."
)


@webhooks_group.command("set")
@click.argument("organisation")
@click.argument("url")
def webhooks_set_command(organisation: str, url: str) -> None:
    """Register (or replace) ORGANISATION's webhook URL and print its signing secret, once.

    URL must be https://, except http://127.0.0.1 or http://localhost, for tests and demos.
    Replacing a webhook makes a new secret."""
    try:
        secret = webhooks.set_webhook(_ledger(), organisation, url)
    except DomainError as exc:
        _fail(exc.detail)
    except keys.KeyFileError as exc:
        _fail(str(exc))
    click.echo(f"webhook for {organisation}: {url}")
    click.echo(f"signing secret (shown only now; give it to the receiver): {secret}")


@webhooks_group.command("remove")
@click.argument("organisation")
def webhooks_remove_command(organisation: str) -> None:
    """Stop pushing to ORGANISATION (its notifications stay in GET /v1/notifications)."""
    try:
        webhooks.remove_webhook(_ledger(), organisation)
    except DomainError as exc:
        _fail(exc.detail)
    click.echo(f"removed the webhook for {organisation}")


@webhooks_group.command("list")
def webhooks_list_command() -> None:
    """Each organisation with a webhook, and its URL (never the secret)."""
    rows = webhooks.list_webhooks(_ledger())
    if not rows:
        click.echo("no webhooks")
    for organisation, url in rows:
        click.echo(f"{organisation}\t{url}")


@webhooks_group.command("deliver")
@click.option("--once", is_flag=True, help="send what is due now, then stop")
def webhooks_deliver_command(once: bool) -> None:
    """Deliver notifications in the foreground (``serve`` does this itself). One deliverer
    runs per instance at a time: while ``serve`` runs, this waits its turn."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if not once:
        click.echo("delivering (Ctrl-C to stop)")
    try:
        ran = webhooks.run(_ledger(), stop, once=once)
    except keys.KeyFileError as exc:  # this host lacks the seal key: what to copy
        _fail(str(exc))
    if ran:
        click.echo("sent what was due" if once else "stopped")
    elif once:
        _fail("another deliverer is running for this instance (consent-ledger serve?)")
