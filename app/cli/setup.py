"""Setting up and running an instance: ``init``, ``demo`` and ``serve``."""

from __future__ import annotations

import json
import os

import click
from alembic import command as alembic_command
from flask.cli import with_appcontext
from sqlalchemy import select

from app.cli.common import (
    REPO_ROOT,
    _fail,
    _ledger,
    alembic_config,
)
from app.models import LogHead, PolicyVersion
from app.services import demo
from app.services.decisions import policies
from app.services.log import keys, signing_keys
from app.services.notifications import webhooks

DEMO_ORGANISATIONS = REPO_ROOT / "policies" / "organisations.example.yaml"
DEMO_TOKENS_FILE = "demo-tokens.json"
DEMO_FLOWS_DONE = "demo-flows.done"
# The tokens the demo prints (all are in the tokens file, and `demo-token` prints any).
DEMO_SHOWN = (
    ("tt-leeds", "case_system"),
    ("jcp-leeds-city", "case_system"),
    ("ea-tt-leeds", "case_system"),
    ("eval-northern-uni", "case_system"),
    ("tt-leeds", "ig_lead"),
    ("tt-leeds", "patient_portal"),
    ("tt-leeds", "auditor"),
)


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
    # After a rotation retired it, signing-key.pem is gone on purpose: a newer key signs.
    missing = [] if keys.has_signing_key(settings) else [str(settings.signing_key_path)]
    if not keys.has_identifier_key(settings):
        missing.append(str(settings.identifier_key_path))
    if size and missing and not new_identity:
        # A key gone from a database that holds entries is a wrong instance path or a lost
        # backup, not a first run: a new signing key is a new log identity, and a new
        # identifier key makes every stored subject unreachable.
        _fail(
            f"the database holds {size} log entries but {', '.join(missing)} "
            "is missing. Restore it from backup, or check CONSENT_LEDGER_INSTANCE_PATH. "
            "To start a new log identity anyway, run `consent-ledger init --new-identity`."
        )
    try:
        created = keys.ensure_keys(settings)
    except keys.KeyFileError as exc:
        _fail(str(exc))
    # Webhook secrets sealed under the signing key (before the seal key) move under the seal
    # key now, once, so a signing-key rotation cannot lose them.
    try:
        resealed = webhooks.reseal_secrets(ledger)
    except keys.KeyFileError as exc:
        _fail(str(exc))
    if resealed:
        click.echo(f"Re-sealed {resealed} webhook secrets under {keys.WEBHOOK_SEAL_KEY_FILE}")
    for warning in keys.permission_warnings(settings):
        click.echo(f"Warning: {warning}", err=True)
    click.echo(f"Instance folder: {settings.instance_path}")
    click.echo(f"Database: {_safe_url(settings.database_url)} (at the newest migration)")
    click.echo(
        ("Created" if created.signing_key_created else "Kept")
        + f" the signing key {keys.newest_signing_key_path(settings)}"
    )
    if created.identifier_key_created:
        click.echo(f"Created the identifier key {settings.identifier_key_path}")
    else:
        try:
            newest = keys.load_identifier_keys(settings).newest
        except keys.KeyFileError as exc:
            _fail(str(exc))
        click.echo(f"Kept the identifier keys (newest {newest.key_id}, {newest.path})")
    with ledger.db.read() as session:
        vkey = signing_keys.newest_vkey(ledger, session)
    click.echo(f"Log origin and verifier key: {vkey}")
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


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--threads",
    # Requests must be in flight together for the sequencer to batch them: 8 threads in each
    # of 2 workers measured best on 2 cores (BENCHMARKS.md, "Batching").
    default=8,
    show_default=True,
    type=click.IntRange(1, 64),
    envvar="CONSENT_LEDGER_THREADS",
    help="threads per worker; more than one serves with gunicorn's gthread worker",
)
@click.option(
    "--timeout",
    default=30,
    show_default=True,
    # At least 2: a gthread worker tells the arbiter it is alive about once a second.
    type=click.IntRange(2, 3600),
    help="seconds a client may leave a request half sent (with threads, each read or write; "
    "with sync workers, the whole request, when the worker restarts)",
)
def serve_command(host: str, port: int, workers: int, threads: int, timeout: int) -> None:
    """Run the production WSGI server (gunicorn)."""
    from app.server import serve

    serve(host, port, workers, threads, timeout)


@click.command("demo")
@click.option(
    "--url",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="where the service will be served, for the lines to try",
)
@with_appcontext
def demo_command(url: str) -> None:
    """Load the example organisations, a client of every role for each, and the six flows of
    the pilots (consents, a G6 confirmation, decisions, disclosures, an evaluation withdrawal
    with its erase obligation and acknowledgement, an objection, a patient link), through the
    same services the API uses. Used by `make run`; a second run adds nothing."""
    ledger = _ledger()
    with ledger.db.read() as session:
        if session.execute(select(PolicyVersion.version).limit(1)).first() is None:
            _fail("no policy is published: run `consent-ledger init` first")
    orgs = demo.load(ledger, DEMO_ORGANISATIONS)
    tokens_path = ledger.settings.instance_path / DEMO_TOKENS_FILE
    flows_done = ledger.settings.instance_path / DEMO_FLOWS_DONE
    if tokens_path.exists():
        tokens = json.loads(tokens_path.read_text())
    else:
        tokens = demo.create_clients(ledger, orgs)
        # Demo only: a real deployment never keeps tokens. 0600, beside the keys.
        fd = os.open(tokens_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(tokens, fh, indent=2)
        click.echo(f"Demo organisations loaded from {DEMO_ORGANISATIONS.name}; a client of")
        click.echo(f"every role for each, tokens kept in {tokens_path} (for the demo only).")
    if flows_done.exists():
        click.echo(f"Demo already loaded (tokens in {tokens_path}).")
    else:
        # Marked done only once every flow is made: a run that stopped part way makes them
        # again rather than never.
        click.echo("The six flows of the pilots, made through the service:")
        demo.run_flows(ledger, tokens, click.echo)
        flows_done.touch(mode=0o600)

    def token(org: str, role: str) -> str:
        return str(
            next(t["token"] for t in tokens if (t["organisation"], t["role"]) == (org, role))
        )

    click.echo("")
    click.echo("Some of the demo's tokens (`consent-ledger demo-token ORG ROLE` prints any):")
    for org, role in DEMO_SHOWN:
        click.echo(f"  {role:<15} {org:<24} {token(org, role)}")
    auditor = token("tt-leeds", "auditor")
    click.echo("")
    click.echo('Try, once the server below is up (README, "A first look", walks through more):')
    click.echo(f"  curl {url}/healthz")
    click.echo(f"  curl {url}/v1/log/checkpoint")
    click.echo(f"  curl -H 'Authorization: Bearer {auditor}' {url}/v1/organisations")
    click.echo(f"  OpenAPI document: {url}/openapi.json")
    click.echo(f"  IG pages: {url}/ig/ (sign in with the tt-leeds ig_lead token above)")
    click.echo("")


@click.command("demo-token")
@click.argument("organisation")
@click.argument("role")
@with_appcontext
def demo_token_command(organisation: str, role: str) -> None:
    """Print the demo's token for ORGANISATION's client of ROLE (for the README's commands)."""
    tokens_path = _ledger().settings.instance_path / DEMO_TOKENS_FILE
    if not tokens_path.exists():
        _fail("no demo is loaded here: run `consent-ledger demo` first")
    for t in json.loads(tokens_path.read_text()):
        if (t["organisation"], t["role"]) == (organisation, role):
            click.echo(t["token"])
            return
    _fail(f"the demo has no {role} client for {organisation}")
