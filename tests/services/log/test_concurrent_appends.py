"""Several OS processes recording consents into one log at once, on SQLite and on PostgreSQL:
indexes stay dense with no duplicates, every receipt is the stored entry and the stored
checkpoint (no fork), and every signed checkpoint is consistent with the next.

Each process builds its own application (its own engines and connections, as a gunicorn worker
does) and records through the service layer, started together behind a barrier so the writes
really contend for the log head. The checks use the independent RFC 9162 verifier.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from app.models import LogCheckpoint, LogEntry, LogHead
from app.services.container import Ledger
from app.services.log.verify import verify_log
from tests.helpers import BOTH
from tests.nhs import valid_nhs_numbers
from tests.support import rfc9162_verifier as rfc

PROCESSES = 4
APPENDS_EACH = 25
START_TIMEOUT = 120  # seconds for every process to import and build its app
RUN_TIMEOUT = 240  # seconds for all of them to start and finish
# (organisation, recipient) of each process's case system: all different recorders.
RECORDERS = (
    ("jcp-leeds-city", "tt-leeds"),
    ("tt-leeds", "ea-tt-leeds"),
    ("ea-tt-leeds", "tt-leeds"),
    ("whp-leeds", "tt-leeds"),
)
NHS = valid_nhs_numbers(PROCESSES * 3, start=999_200_000)


def _append_consents(
    instance_path: str,
    database_url: str,
    token: str,
    recipient: str,
    numbers: list[str],
    out: str,
    barrier: Any,
) -> None:
    """One writer process (``spawn``ed, so it imports everything afresh): build an app, wait
    for the others, record ``APPENDS_EACH`` consents, and write the receipts to ``out``."""
    try:
        from app import create_app, get_ledger
        from app.services.access import clients
        from app.services.consents import consents, subjects
        from app.services.consents.consents import ConsentInput

        app = create_app({"INSTANCE_PATH": instance_path, "DATABASE_URL": database_url})
        ledger = get_ledger(app)
        principal = clients.authenticate(ledger, f"Bearer {token}")
        receipts = []
        barrier.wait(timeout=START_TIMEOUT)
        for n in range(APPENDS_EACH):
            inp = ConsentInput(
                subject=subjects.SubjectIdentifier.nhs_number(numbers[n % len(numbers)]),
                purpose="referral",
                recipients=[recipient],
                data_categories=["identity", "service_status"],
                form="written",
                evidence_sha256=f"{n:064x}",
            )
            result = consents.record_consent(ledger, principal, inp, None)
            assert result.status == 201, result.body
            receipts.append({"consent_id": result.body["id"], **result.body["ledger"]})
        ledger.db.dispose()
        Path(out).write_text(json.dumps(receipts))
    except BaseException:
        Path(out).write_text(json.dumps({"error": traceback.format_exc()}))
        raise


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_processes_appending_at_once_keep_one_dense_consistent_log(
    ledger: Ledger,
    orgs: list[str],
    make_token: Callable[..., str],
    runner: FlaskCliRunner,
    instance_path: Path,
    database_url: str,
    tmp_path: Path,
) -> None:
    vkey = ledger.log_store.signer.verifier_key()
    tokens = [make_token(org, "case_system") for org, _ in RECORDERS]
    with ledger.db.read() as session:
        initial = ledger.log_store.size(session)
    assert initial > 0  # the organisations and clients are already logged

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    outs = [tmp_path / f"writer-{p}.json" for p in range(PROCESSES)]
    procs = [
        ctx.Process(
            target=_append_consents,
            args=(
                str(instance_path),
                database_url,
                tokens[p],
                RECORDERS[p][1],
                NHS[3 * p : 3 * p + 3],
                str(outs[p]),
                barrier,
            ),
        )
        for p in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        for proc in procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
    results: list[list[dict[str, Any]]] = []
    for p, (proc, out) in enumerate(zip(procs, outs, strict=True)):
        result = json.loads(out.read_text()) if out.exists() else None
        assert proc.exitcode == 0, (p, proc.exitcode, result)
        assert isinstance(result, list), (p, result)
        results.append(result)
    receipts: list[dict[str, Any]] = [r for result in results for r in result]

    # Dense indexes, none handed out twice; each process saw its own writes in order.
    total = initial + PROCESSES * APPENDS_EACH
    got = sorted(r["index"] for r in receipts)
    assert got == list(range(initial, total))
    for result in results:
        indexes = [r["index"] for r in result]
        assert indexes == sorted(indexes)
    # The writes did interleave: otherwise this test proved nothing about contention.
    by_index = {r["index"]: p for p, result in enumerate(results) for r in result}
    switches = sum(by_index[i] != by_index[i + 1] for i in range(initial, total - 1))
    assert switches >= PROCESSES - 1

    with ledger.db.read() as session:
        head = session.get(LogHead, 1)
        entries = session.execute(select(LogEntry).order_by(LogEntry.idx)).scalars().all()
        checkpoints = (
            session.execute(select(LogCheckpoint).order_by(LogCheckpoint.tree_size)).scalars().all()
        )
        assert head is not None
        assert head.size == total
        assert [e.idx for e in entries] == list(range(total))
        leaves = [bytes(e.leaf) for e in entries]

        # Every receipt is the stored entry, and its checkpoint is the stored one for its size.
        stored_notes = {c.tree_size: c.note for c in checkpoints}
        for r in receipts:
            entry = entries[r["index"]]
            assert entry.leaf_hash.hex() == r["leaf_hash"]
            assert rfc.leaf_hash(leaves[r["index"]]).hex() == r["leaf_hash"]
            logged = ledger.log_store.entry(session, r["index"]).entry
            assert logged is not None
            assert logged["data"]["consent_id"] == r["consent_id"]
            assert stored_notes.get(r["index"] + 1) == r["checkpoint"], r["index"]

        # One checkpoint per write, each signed, each the root of the one leaf sequence (no
        # fork), and each consistent with the next by a proof the log store serves.
        sizes = [c.tree_size for c in checkpoints]
        assert len(sizes) == len(set(sizes))
        assert set(range(initial + 1, total + 1)) <= set(sizes)
        assert sizes[-1] == total
        signed = []
        for c in checkpoints:
            cp = rfc.verify_checkpoint(c.note, vkey)
            assert cp.size == c.tree_size
            assert cp.root_hash == bytes(c.root_hash)
            assert cp.root_hash == rfc.root_from_leaves(leaves[: cp.size])
            signed.append(cp)
        assert signed[-1].root_hash == bytes(head.root_hash)
        for old, new in itertools.pairwise(signed):
            proof = ledger.log_store.consistency_proof(session, old.size, new.size)
            rfc.verify_consistency(old.size, new.size, proof.hashes, old.root_hash, new.root_hash)

        result = verify_log(session, ledger.keyring())
    assert result.ok, result.problem
    assert result.size == total
    assert result.checkpoints == len(checkpoints)

    cli = runner.invoke(args=["verify", "--quiet"])
    assert cli.exit_code == 0, cli.output
    assert f"log verified: {total} entries" in cli.output
