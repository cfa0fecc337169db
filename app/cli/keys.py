"""``keys``: the identifier keys (list them, rotate, re-key the mappings, retire an old one)
and the log's signing key (rotate, retire the old one).

Identifier keys are named by their ids, signing keys by their public verifier keys; a secret
key itself is never printed."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.cli.common import _fail, _ledger
from app.errors import DomainError
from app.services.consents import identifier_keys
from app.services.log import keys, signing_keys
from app.services.notifications import webhooks

keys_group = AppGroup(
    "keys", help="Identifier keys: list, rotate, re-key, retire. Signing keys: rotate, retire."
)


@keys_group.command("list")
def keys_list_command() -> None:
    """The identifier keys, newest first: id, generation, file and mappings under each; then
    the log's signing keys, newest first: generation, status, the tree sizes each signed and
    its verifier key; then the id of the database's webhook seal key, and whether this host
    holds it."""
    ledger = _ledger()
    with ledger.db.read() as session:
        usage = identifier_keys.key_usage(ledger, session)
    for i, use in enumerate(usage):
        if use.key is None:
            click.echo(f"{use.key_id}  NOT HELD  {use.mappings} mappings cannot be found")
            continue
        role = "newest" if i == 0 else "older"
        click.echo(
            f"{use.key_id}  generation {use.key.generation}  {role:<6}  "
            f"{use.mappings} mappings  {use.key.path}"
        )
    for key in signing_keys.list_keys(ledger):
        first = "-" if key.first_size is None else key.first_size
        last = "" if key.last_size is None else key.last_size
        click.echo(
            f"signing key  generation {key.generation}  {key.status:<7}  "
            f"sizes {first}..{last}  {key.vkey}"
        )
    recorded, held = webhooks.seal_key_ids(ledger)
    path = keys.webhook_seal_key_path(ledger.settings)
    if recorded is None:
        state = "none chosen yet" if held is None else f"{held}  not yet recorded"
    elif held == recorded:
        state = f"{recorded}  held"
    else:
        state = f"{recorded}  NOT HELD (copy it from a host that holds it)"
    click.echo(f"webhook seal key  {state}  {path}")


@keys_group.command("rotate-identifier")
@click.option(
    "--rekey",
    is_flag=True,
    help="add no key: move every mapping that can be moved to the newest key (resumable)",
)
@click.option("--quiet", is_flag=True, help="no progress lines")
def rotate_identifier_command(rekey: bool, quiet: bool) -> None:
    """Add a new identifier key (lookups try it first, then the older ones); with --rekey,
    move the mappings under older keys to the newest. Nothing in the log changes."""
    ledger = _ledger()
    if not rekey:
        try:
            key = identifier_keys.rotate(ledger)
        except keys.KeyFileError as exc:
            _fail(str(exc))
        click.echo(f"added identifier key {key.key_id} (generation {key.generation}, {key.path})")
        click.echo(
            "new people are mapped under it, and lookups try it first. Copy the file to every "
            "host that serves this database, back it up, then run "
            "`consent-ledger keys rotate-identifier --rekey`"
        )
        return
    try:
        done = identifier_keys.rekey(ledger, _progress(quiet))
    except DomainError as exc:
        _fail(exc.detail)
    if not done.total:
        click.echo(f"nothing to re-key: every sealed mapping is under {done.newest.key_id}")
    else:
        click.echo(f"re-keyed {done.moved} mappings to identifier key {done.newest.key_id}")
    if done.unsealed:
        click.echo(
            f"{done.unsealed} mappings made before key ids hold no sealed identifier: each "
            "moves when its person is next written about. Until then the old key is in use "
            "and cannot be retired yet"
        )
    if done.elsewhere:
        click.echo(
            f"{done.elsewhere} mappings are under keys this instance does not hold: see "
            "`consent-ledger keys list`",
            err=True,
        )
    if not done.unsealed and not done.elsewhere:
        click.echo(
            "every mapping is under the newest key: older keys can be retired "
            "(`consent-ledger keys retire-identifier KEY_ID`)"
        )


def _progress(quiet: bool) -> identifier_keys.Progress:
    """A line per 5% of the mappings, and the last."""
    last = -1

    def progress(done: int, total: int) -> None:
        nonlocal last
        pct = 100 * done // total if total else 100
        if not quiet and (pct // 5 != last // 5 or done == total):
            last = pct
            click.echo(f"rekeyed {done}/{total} mappings ({pct}%)", err=True)

    return progress


@keys_group.command("retire-identifier")
@click.argument("key_id")
def retire_identifier_command(key_id: str) -> None:
    """Destroy an older identifier key once no mapping uses it (refused otherwise)."""
    try:
        key = identifier_keys.retire(_ledger(), key_id)
    except DomainError as exc:
        _fail(exc.detail)
    click.echo(f"retired identifier key {key.key_id}: {key.path} overwritten and deleted")
    click.echo(
        "destroy the copies in backups of the instance folder too; restart running workers "
        "to drop it from their memory"
    )


@keys_group.command("rotate-signing")
@click.option(
    "--retire-old",
    is_flag=True,
    help="add no key: end the overlap, retiring the older key (its private key is destroyed)",
)
def rotate_signing_command(retire_old: bool) -> None:
    """Add a new signing key under the same origin: from a checkpoint made at once, every
    checkpoint is signed by both keys. With --retire-old, end that overlap: the older key's
    period closes at the last checkpoint it signed and its private key is destroyed; its public
    key stays listed (GET /v1/log/key), so history verifies."""
    ledger = _ledger()
    if retire_old:
        # Left by a retirement cut short after its commit: a retired key is never kept.
        for path in signing_keys.destroy_retired(ledger):
            click.echo(f"{path}: a retired signing key, overwritten and deleted")
        try:
            retired = signing_keys.retire_old(ledger)
        except (DomainError, keys.KeyFileError) as exc:
            _fail(exc.detail if isinstance(exc, DomainError) else str(exc))
        for key in retired:
            click.echo(
                f"retired signing key {key.vkey} (generation {key.generation}): it signed the "
                f"checkpoints up to size {key.last_size}; log entry {key.index} records it"
            )
            if key.destroyed:
                click.echo(f"{key.destroyed} overwritten and deleted")
        click.echo(
            "destroy its copies on other hosts and in backups of the instance folder too: "
            "checkpoints it signs from now on are refused by `verify` and monitors"
        )
        return
    try:
        # Before the signing key can change: no webhook secret may stay sealed under it.
        resealed = webhooks.reseal_secrets(ledger)
        rotated = signing_keys.rotate(ledger)
    except (DomainError, keys.KeyFileError) as exc:
        _fail(exc.detail if isinstance(exc, DomainError) else str(exc))
    if resealed:
        click.echo(f"re-sealed {resealed} webhook secret(s) under {keys.WEBHOOK_SEAL_KEY_FILE}")
    click.echo(
        f"added signing key {rotated.vkey} (generation {rotated.generation}, {rotated.path})"
    )
    click.echo(
        f"checkpoints from size {rotated.first_size} are signed by both keys (log entry "
        f"{rotated.index}, log.key_added, names it). Copy the file to every host that serves "
        "this database and back it up; give the new key to those who check the log; then run "
        "`consent-ledger keys rotate-signing --retire-old`"
    )
