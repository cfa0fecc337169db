"""``check-receipt``: check a receipt kept as a c2sp.org/tlog-proof file, offline.

Needs no instance, no database and no network: the file, the log's verifier key (from someone
the holder trusts, or ``/v1/log/key`` fetched once and kept) and the receipt's fingerprint.
"""

from __future__ import annotations

import re
from typing import TextIO

import click

from app.cli.common import _fail
from app.ledger.checkpoint import CheckpointVerifier
from app.ledger.errors import VerifierKeyError
from app.ledger.tlog_proof import TlogProofError, parse, verify

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


@click.command("check-receipt")
@click.argument("receipt", type=click.File("r", encoding="utf-8"))
@click.option(
    "--key",
    "vkeys",
    multiple=True,
    required=True,
    help="the log's verifier key; repeat it to accept any of several (across a key rotation)",
)
@click.option(
    "--fingerprint",
    required=True,
    help="the receipt's fingerprint: the entry's leaf hash, 64 lowercase hex digits",
)
def check_receipt_command(receipt: TextIO, vkeys: tuple[str, ...], fingerprint: str) -> None:
    """Check RECEIPT (a .tlog-proof file, or - for standard input) offline; exit 1 saying why
    it fails."""
    if not _FINGERPRINT.fullmatch(fingerprint):
        _fail("--fingerprint must be 64 lowercase hex digits (the receipt's leaf hash)")
    verifiers = []
    for vkey in vkeys:
        try:
            verifiers.append(CheckpointVerifier.from_verifier_key(vkey.strip()))
        except VerifierKeyError as exc:
            _fail(f"--key is not a verifier key: {exc}")
    try:
        proof = parse(receipt.read())
        checkpoint, key = verify(proof, verifiers, bytes.fromhex(fingerprint))
    except TlogProofError as exc:
        _fail(f"the receipt does NOT check: {exc}")
    except UnicodeDecodeError:
        _fail("the receipt does NOT check: it is not text (UTF-8)")
    click.echo(
        f"receipt checks: entry {proof.index} is in the log {checkpoint.origin} of "
        f"{checkpoint.size} entries, signed by key {key.key_id.hex()}"
    )
