"""``orgs``: register organisations."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import AppGroup

from app.cli.common import _ledger
from app.services import organisations

orgs_group = AppGroup("orgs", help="Register organisations.")


@orgs_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def orgs_import_command(file: Path) -> None:
    """Register organisations from a YAML or JSON list of {id, name, kind, funder, ods_code?}."""
    ledger = _ledger()
    try:
        data = organisations.read_organisation_file(file)
        result = organisations.import_organisations(ledger, data, str(file))
    except organisations.OrganisationImportRefused as exc:
        click.echo(f"Error: {exc.source}: nothing was imported.", err=True)
        for problem in exc.problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(1)
    for rec, index in result.registered:
        click.echo(f"registered {rec.id} ({rec.kind}) at log index {index}")
    if result.unchanged:
        click.echo(f"already registered, unchanged: {', '.join(result.unchanged)}")
