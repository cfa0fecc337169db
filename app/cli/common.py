"""What every command group shares: the ledger of the current app, failing with one line, refusing
writes on an inconsistent log, and the Alembic configuration."""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from alembic.config import Config as AlembicConfig
from flask import current_app

from app import get_ledger
from app.services.container import Ledger
from app.services.log.log_store import LogInconsistent

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
MIGRATIONS_DIR = REPO_ROOT / "migrations"


def _ledger() -> Ledger:
    return get_ledger(current_app)


logger = logging.getLogger("consent_ledger.cli")


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def _refusing_inconsistent_logs(command: click.Command) -> click.Command:
    """Make a write refused because the log is inconsistent (a database rolled back under
    the service, a tree that contradicts its checkpoint) end the command with one ERROR line
    and a clear message, as the API answers 503: nothing was recorded."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _refusing_inconsistent_logs(sub)
        return command
    callback = command.callback
    if callback is None:
        return command

    @functools.wraps(callback)
    def refusing(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except LogInconsistent as exc:
            logger.error("consent-ledger refuses to write: %s", exc)
            _fail(f"refused, nothing was recorded: {exc}")

    command.callback = refusing
    return command


def alembic_config(ledger: Ledger) -> AlembicConfig:
    if not MIGRATIONS_DIR.is_dir():
        raise click.ClickException(
            f"migrations not found at {MIGRATIONS_DIR}: install from a checkout (pip install -e .)"
        )
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", ledger.settings.database_url.replace("%", "%%"))
    return cfg
