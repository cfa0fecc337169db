"""The ``consent-ledger`` command group.

The same commands run as ``consent-ledger ...`` and as ``flask --app wsgi ...``: they are
registered on the application's CLI group by :func:`init_app`. Each command group has its
module here (``setup``, ``orgs``, ``clients``, ``keys``, ``log``, ``policy``, ``subjects``,
``webhooks``, ``receipts``, ``witnesses``, ``monitor``); ``common`` holds what they share.
:data:`COMMANDS` wraps each command once, at import, in the refusal of writes on an
inconsistent log.
"""

from __future__ import annotations

import os
from typing import Any

import click
from flask import Flask
from flask.cli import FlaskGroup

from app import create_app
from app.cli.clients import clients_group
from app.cli.common import _refusing_inconsistent_logs, alembic_config
from app.cli.imports import import_command
from app.cli.keys import keys_group
from app.cli.log import (
    accept_rollback_command,
    backup_command,
    rebuild_command,
    restore_command,
    verify_command,
)
from app.cli.monitor import monitor_command
from app.cli.orgs import orgs_group
from app.cli.policy import policy_group
from app.cli.receipts import check_receipt_command
from app.cli.setup import demo_command, demo_token_command, init_command, serve_command
from app.cli.subjects import erase_command, retention_group
from app.cli.webhooks import webhooks_group
from app.cli.witnesses import witnesses_group
from app.services.log.witness_config import WitnessConfigError

__all__ = ["COMMANDS", "alembic_config", "init_app", "main"]

COMMANDS = tuple(
    _refusing_inconsistent_logs(cmd)
    for cmd in (
        init_command,
        orgs_group,
        clients_group,
        keys_group,
        serve_command,
        verify_command,
        check_receipt_command,
        rebuild_command,
        backup_command,
        restore_command,
        accept_rollback_command,
        monitor_command,
        policy_group,
        webhooks_group,
        witnesses_group,
        erase_command,
        retention_group,
        import_command,
        demo_command,
        demo_token_command,
    )
)


def init_app(app: Flask) -> None:
    for cmd in COMMANDS:
        app.cli.add_command(cmd)


def _create_app() -> Flask:
    # A setting that refuses start-up is one line naming what to fix, not a traceback.
    try:
        return create_app()
    except WitnessConfigError as exc:
        raise click.ClickException(str(exc)) from None


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``consent-ledger`` console script."""
    # Everything this process creates (the SQLite database and its WAL, keys, demo tokens)
    # is for the service's user alone, whatever umask it was started with.
    os.umask(0o077)
    group = FlaskGroup(
        create_app=_create_app,
        add_default_commands=False,
        add_version_option=False,
        load_dotenv=False,
        help="consent-ledger: signed consent ledger, policy decisions and disclosure history.",
    )
    # An auditor's command: found before the app is loaded, so it needs no instance folder.
    group.add_command(monitor_command)
    return group.main(args=argv, prog_name="consent-ledger")
