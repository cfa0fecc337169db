"""The ``consent-ledger`` command group.

The same commands run as ``consent-ledger ...`` and as ``flask --app wsgi ...``: they are
registered on the application's CLI group by :func:`init_app`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, with_appcontext
from sqlalchemy import select

from app import create_app, get_ledger
from app.errors import DomainError
from app.models import LogHead, PolicyVersion
from app.policy import Policy, PolicyError
from app.services import organisations
from app.services.access import clients
from app.services.container import Ledger
from app.services.decisions import dashboard, policies
from app.services.log import keys
from app.services.log.log_store import LogInconsistent, RollbackDetected
from app.services.log.published import check_contains_published
from app.services.log.verify import AnswersResult, verify_answers, verify_log
from app.vocabulary import ROLES

REPO_ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = REPO_ROOT / "migrations"
DEMO_ORGANISATIONS = REPO_ROOT / "policies" / "organisations.example.yaml"
DEMO_TOKENS_FILE = "demo-tokens.json"
DEMO_CLIENTS = (
    ("tt-leeds", "case_system", "Talking Therapies record system (demo)"),
    ("jcp-leeds-city", "case_system", "Jobcentre work coach tool (demo)"),
    ("ea-tt-leeds", "case_system", "Employment Adviser caseload tool (demo)"),
    ("tt-leeds", "ig_lead", "Talking Therapies IG lead (demo)"),
    ("tt-leeds", "patient_portal", "Patient portal (demo)"),
    ("tt-leeds", "auditor", "Auditor (demo)"),
)


def _ledger() -> Ledger:
    return get_ledger(current_app)


logger = logging.getLogger("consent_ledger.cli")


def _fail(message: str) -> None:
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


@click.command("init")
@click.option(
    "--new-identity",
    is_flag=True,
    help="allow creating keys for a database that already holds entries (a new log identity)",
)
@with_appcontext
def init_command(new_identity: bool) -> None:
    """Create or upgrade the database and create missing keys."""
    ledger = _ledger()
    settings = ledger.settings
    try:
        keys.validate_origin(settings.log_origin)
        keys.ensure_instance_folder(settings)
    except keys.KeyFileError as exc:
        _fail(str(exc))
    alembic_command.upgrade(alembic_config(ledger), "head")
    with ledger.db.read() as session:
        size = session.execute(select(LogHead.size)).scalar_one()
    missing = [
        p for p in (settings.signing_key_path, settings.identifier_key_path) if not p.exists()
    ]
    if size and missing and not new_identity:
        # A key gone from a database that holds entries is a wrong instance path or a lost
        # backup, not a first run: a new signing key is a new log identity, and a new
        # identifier key makes every stored subject unreachable.
        _fail(
            f"the database holds {size} log entries but {', '.join(map(str, missing))} "
            "is missing. Restore it from backup, or check CONSENT_LEDGER_INSTANCE_PATH. "
            "To start a new log identity anyway, run `consent-ledger init --new-identity`."
        )
    try:
        created = keys.ensure_keys(settings)
    except keys.KeyFileError as exc:
        _fail(str(exc))
    for warning in keys.permission_warnings(settings):
        click.echo(f"Warning: {warning}", err=True)
    click.echo(f"Instance folder: {settings.instance_path}")
    click.echo(f"Database: {_safe_url(settings.database_url)} (at the newest migration)")
    click.echo(
        ("Created" if created.signing_key_created else "Kept")
        + f" the signing key {settings.signing_key_path}"
    )
    click.echo(
        ("Created" if created.identifier_key_created else "Kept")
        + f" the identifier key {settings.identifier_key_path}"
    )
    click.echo(f"Log origin and verifier key: {ledger.log_store.signer.verifier_key()}")
    with ledger.db.read() as session:
        has_policy = session.execute(select(PolicyVersion.version).limit(1)).first() is not None
    if not has_policy:
        shipped = policies.parse_policy_file(policies.DEFAULT_POLICY_FILE)
        published = policies.publish(ledger, shipped)
        click.echo(
            f"Published the shipped policy {shipped.version[:16]}... at log index "
            f"{published.ledger_index}"
        )


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


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


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
def serve_command(host: str, port: int, workers: int) -> None:
    """Run the production WSGI server (gunicorn)."""
    from app.server import serve

    serve(host, port, workers)


@click.command("verify")
@with_appcontext
@click.option(
    "--key",
    "vkey",
    default=None,
    help="verifier key to check signatures against (default: this instance's key)",
)
@click.option("--quiet", is_flag=True, help="no progress lines")
def verify_command(vkey: str | None, quiet: bool) -> None:
    """Verify the whole log offline; exit 1 naming the first bad entry."""
    from app.ledger.checkpoint import CheckpointVerifier
    from app.ledger.errors import VerificationError

    ledger = _ledger()
    try:
        verifier = CheckpointVerifier.from_verifier_key(vkey) if vkey else ledger.log_store.verifier
    except (VerificationError, keys.KeyFileError) as exc:
        _fail(f"cannot load the verifier key: {exc or 'malformed key'}")
    # The log must also contain the newest checkpoint this instance published; the record is
    # read before the snapshot (see check_database_against_record) and judged after the log.
    record_problem: RollbackDetected | None = None
    try:
        ledger.published.refuse_if_fork_detected()
        recorded = ledger.published.read(verifier)
    except RollbackDetected as exc:
        recorded, record_problem = None, exc
    answers: AnswersResult | None = None
    with ledger.db.read() as session:
        result = verify_log(session, verifier, _progress_lines("verified", quiet))
        if result.ok and recorded is not None:
            try:
                check_contains_published(session, recorded.checkpoint, result.size)
            except RollbackDetected as exc:
                record_problem = exc
        if result.ok and record_problem is not None:
            result = dataclasses.replace(result, ok=False, problem=str(record_problem))
        # In the same snapshot, and only on a log whose bytes are sound.
        if result.ok:
            answers = verify_answers(session, result.size, _progress_lines("replayed", quiet))
    problem = answers.problem if answers is not None else result.problem
    # The IG dashboard shows the outcome of the last run.
    dashboard.record_verification(ledger, problem is None, result.size, result.checkpoints, problem)
    if not result.ok:
        _fail(f"log verification FAILED: {result.problem}")
    click.echo(
        f"log verified: {result.size} entries re-hashed, tree rebuilt, "
        f"{result.checkpoints} signed checkpoints checked"
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
    with ledger.db.write() as session:
        ledger.log_store.lock_head(session)
        total = ledger.log_store.size(session)
        expected = rebuild.replay(session, total, progress)
        before = rebuild.differences(session, expected)
        rebuild.rewrite_consent_projections(session, expected)
        session.flush()
        after = rebuild.differences(session, expected)
    for line in before:
        click.echo(f"  repaired: {line}")
    if after:
        for line in after:
            click.echo(f"  still differs: {line}", err=True)
        sys.exit(1)
    click.echo(f"consent projections rebuilt from {total} entries; {len(before)} differences fixed")


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
    from app.services.log.replay import replay_decisions

    candidate = _load_policy_or_exit(file)
    ledger = _ledger()
    with ledger.db.read() as session:
        report = replay_decisions(
            session, candidate, lambda n: click.echo(f"replayed {n} decisions", err=True)
        )
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


@click.command("demo")
@click.option(
    "--url",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="where the service will be served, for the lines to try",
)
@with_appcontext
def demo_command(url: str) -> None:
    """Load example organisations and clients for a first look (used by `make run`)."""
    ledger = _ledger()
    data = organisations.read_organisation_file(DEMO_ORGANISATIONS)
    organisations.import_organisations(ledger, data, str(DEMO_ORGANISATIONS))
    tokens_path = ledger.settings.instance_path / DEMO_TOKENS_FILE
    if tokens_path.exists():
        tokens = json.loads(tokens_path.read_text())
    else:
        tokens = []
        for org, role, name in DEMO_CLIENTS:
            created = clients.create_client(ledger, org, role, name)
            tokens.append(
                {
                    "organisation": org,
                    "role": role,
                    "client_id": created.client_id,
                    "token": created.token,
                }
            )
        # Demo only: a real deployment never keeps tokens. 0600, beside the keys.
        fd = os.open(tokens_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(tokens, fh, indent=2)
    click.echo(f"Demo organisations loaded from {DEMO_ORGANISATIONS.name}.")
    click.echo(f"Demo clients (tokens kept in {tokens_path} for the demo only):")
    for t in tokens:
        click.echo(f"  {t['role']:<15} {t['organisation']:<16} {t['token']}")
    auditor = next(t["token"] for t in tokens if t["role"] == "auditor")
    click.echo("")
    click.echo("Try, once the server below is up:")
    click.echo(f"  curl {url}/healthz")
    click.echo(f"  curl {url}/v1/log/checkpoint")
    click.echo(f"  curl {url}/v1/log/key")
    click.echo(f"  curl -H 'Authorization: Bearer {auditor}' {url}/v1/organisations")
    click.echo(
        f"  curl -H 'Authorization: Bearer {auditor}' '{url}/v1/log/proof/inclusion?index=0'"
    )
    click.echo(f"  OpenAPI document: {url}/openapi.json")
    click.echo(f"  IG pages: {url}/ig/ (sign in with the ig_lead or auditor token above)")
    click.echo("")


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


COMMANDS = tuple(
    _refusing_inconsistent_logs(cmd)
    for cmd in (
        init_command,
        orgs_group,
        clients_group,
        serve_command,
        verify_command,
        rebuild_command,
        backup_command,
        restore_command,
        accept_rollback_command,
        policy_group,
        demo_command,
    )
)


def init_app(app: Flask) -> None:
    for cmd in COMMANDS:
        app.cli.add_command(cmd)


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``consent-ledger`` console script."""
    # Everything this process creates (the SQLite database and its WAL, keys, demo tokens)
    # is for the service's user alone, whatever umask it was started with.
    os.umask(0o077)
    group = FlaskGroup(
        create_app=lambda: create_app(),
        add_default_commands=False,
        add_version_option=False,
        load_dotenv=False,
        help="consent-ledger: signed consent ledger, policy decisions and disclosure history.",
    )
    return group.main(args=argv, prog_name="consent-ledger")
