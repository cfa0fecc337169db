"""``clients``: manage API clients."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from app.cli.common import _fail, _ledger
from app.errors import DomainError
from app.services.access import clients
from app.vocabulary import ROLES

clients_group = AppGroup("clients", help="Manage API clients.")


@clients_group.command("create")
@click.option("--org", "org", required=True, help="organisation id the client acts for")
@click.option("--role", required=True, type=click.Choice(list(ROLES)))
@click.option("--name", default=None, help="a name for the client (shown in audit)")
@click.option("--json", "as_json", is_flag=True, help="print {client_id, token} as JSON")
def clients_create_command(org: str, role: str, name: str | None, as_json: bool) -> None:
    """Create an API client and print its token. The token is shown only this once."""
    try:
        created = clients.create_client(_ledger(), org, role, name)
    except DomainError as exc:
        _fail(exc.detail)
    if as_json:
        click.echo(json.dumps({"client_id": created.client_id, "token": created.token}))
        return
    click.echo(f"client {created.client_id} ({role} for {org}), log index {created.ledger_index}")
    click.echo(f"token (shown once, keep it secret): {created.token}")


@clients_group.command("revoke")
@click.argument("client_id")
def clients_revoke_command(client_id: str) -> None:
    """Revoke a client: its token stops working at once (logged)."""
    try:
        index = clients.revoke_client(_ledger(), client_id)
    except DomainError as exc:
        _fail(exc.detail)
    click.echo(f"client {client_id} revoked at log index {index}")


@clients_group.command("rotate")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True, help="print {client_id, token} as JSON")
def clients_rotate_command(client_id: str, as_json: bool) -> None:
    """Give a client a new token; the old one stops working at once (logged)."""
    try:
        rotated = clients.rotate_token(_ledger(), client_id)
    except DomainError as exc:
        _fail(exc.detail)
    if as_json:
        click.echo(json.dumps({"client_id": client_id, "token": rotated.token}))
        return
    click.echo(f"client {client_id}: token rotated at log index {rotated.ledger_index}")
    click.echo(f"new token (shown once, keep it secret): {rotated.token}")


@clients_group.command("list")
def clients_list_command() -> None:
    """List clients: id, organisation, role, name, and whether revoked (never tokens)."""
    for c in clients.list_clients(_ledger()):
        state = f"revoked (log {c.revoked_index})" if c.revoked_at else "active"
        click.echo(f"{c.id}  {c.organisation_id:<24} {c.role:<15} {state:<18} {c.name}")
