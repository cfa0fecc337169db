"""A database rolled back under a running service: no process signs a fork.

An operator (or an accident) restores an older copy while the service keeps serving: SQLite's
online backup API copying an old file over the live one, or ``pg_restore --clean`` of an older
dump on PostgreSQL. The restored database is internally consistent, so a check against its own
newest checkpoint passes; only the published-checkpoint record, kept outside the database, knows
that a larger tree was already handed out. Every write must check against it before signing, so
the next write is refused (503, nothing recorded), health answers 503, and no tree size ever
has two signed roots.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app import create_app, get_ledger
from app.ledger.checkpoint import Checkpoint, CheckpointVerifier
from app.models import LogCheckpoint, LogEntry
from app.services.container import Ledger
from app.services.log.log_store import PUBLISHED, Publication, RollbackDetected
from tests.conftest import PG_BIN, PostgresServer
from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers

NHS = valid_nhs_numbers(12)


def _consent(client: FlaskClient, token: str, nhs: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    resp = client.post(
        "/v1/consents",
        headers=bearer(token),
        json={
            "subject": {"nhs_number": nhs},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity", "service_status"],
            "form": "verbal",
        },
    )
    return resp.status_code, resp.get_json()


class Snapshot:
    """An older copy of the live database, and a way to put it back while the service runs."""

    def __init__(self, take: Callable[[], None], put_back: Callable[[], None]) -> None:
        self.put_back = put_back
        take()


@pytest.fixture
def snapshot(
    backend: str, database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[[], Snapshot]:
    copy = tmp_path / "older-copy"

    if backend == "sqlite":
        live = make_url(database_url).database
        assert live

        def take() -> None:
            with sqlite3.connect(live) as src, sqlite3.connect(copy) as dest:
                src.backup(dest)
            src.close()
            dest.close()

        def put_back() -> None:
            # SQLite's online backup API, into the live file, with the service's connections
            # open: what `sqlite3 live ".restore copy"` does.
            with sqlite3.connect(copy) as src, sqlite3.connect(live) as dest:
                src.backup(dest)
            src.close()
            dest.close()

    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = make_url(database_url)
        conn = ["-h", str(server.socket_dir), "-p", str(server.port), "-U", "postgres"]

        def take() -> None:
            subprocess.run(
                [str(PG_BIN / "pg_dump"), *conn, "-Fc", "-f", str(copy), str(url.database)],
                check=True,
                capture_output=True,
            )

        def put_back() -> None:
            subprocess.run(
                [
                    str(PG_BIN / "pg_restore"),
                    *conn,
                    "--clean",
                    "--if-exists",
                    "-d",
                    str(url.database),
                    str(copy),
                ],
                check=True,
                capture_output=True,
            )

    return lambda: Snapshot(take, put_back)


def _signed_roots(ledger: Ledger, receipts: list[str]) -> dict[int, set[bytes]]:
    """Every root signed for each size: in receipts handed out, in the database, in the
    published-checkpoint record."""
    verifier = CheckpointVerifier.from_verifier_key(ledger.log_store.signer.verifier_key())
    notes = list(receipts) + ledger.published.notes()
    with ledger.db.read() as session:
        notes += list(session.execute(select(LogCheckpoint.note)).scalars())
    roots: dict[int, set[bytes]] = defaultdict(set)
    for note in notes:
        cp = verifier.verify(note)
        roots[cp.size].add(cp.root_hash)
    return roots


def _second_worker(app: Flask) -> Flask:
    """Another process of the same instance (its own pools, its own memory)."""
    led = get_ledger(app)
    return create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(led.settings.instance_path),
            "DATABASE_URL": led.settings.database_url,
        }
    )


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_database_rolled_back_while_serving_is_never_extended_into_a_fork(
    app: Flask,
    ledger: Ledger,
    make_token: Callable[..., str],
    snapshot: Callable[[], Snapshot],
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = make_token("tt-leeds", "case_system")
    first, second = app.test_client(), _second_worker(app).test_client()
    receipts = []
    for client, nhs in ((first, NHS[0]), (second, NHS[1])):
        status, body = _consent(client, token, nhs)
        assert status == 201, body
        receipts.append(body["ledger"]["checkpoint"])
    older = snapshot()
    # Written after the copy was taken: the service hands these receipts out.
    for client, nhs in ((first, NHS[2]), (second, NHS[3]), (first, NHS[4])):
        status, body = _consent(client, token, nhs)
        assert status == 201, body
        receipts.append(body["ledger"]["checkpoint"])
    published = ledger.keyring().verify(receipts[-1]).size
    with ledger.db.read() as session:
        assert ledger.log_store.size(session) == published

    older.put_back()
    with ledger.db.read() as session:
        restored = ledger.log_store.size(session)
    assert restored < published

    # Each worker's next write is refused before anything is signed; its health says so.
    for client, nhs in ((second, NHS[5]), (first, NHS[6]), (second, NHS[7])):
        with caplog.at_level(logging.ERROR):
            status, body = _consent(client, token, nhs)
        assert status == 503, body
        assert body["type"] == "/problems/log-unavailable"
        assert client.get("/healthz").status_code == 503
    assert f"{restored} entries" in caplog.text
    assert f"size {published}" in caplog.text
    with ledger.db.read() as session:
        assert ledger.log_store.size(session) == restored  # nothing recorded

    roots = _signed_roots(ledger, receipts)
    assert {size: len(r) for size, r in roots.items() if len(r) > 1} == {}
    # The record still holds the newest checkpoint handed out.
    newest = ledger.published.read(ledger.keyring())
    assert newest is not None
    assert newest.checkpoint.size == published


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_worker_that_has_not_written_since_the_rollback_reports_it_in_health(
    app: Flask,
    make_token: Callable[..., str],
    snapshot: Callable[[], Snapshot],
) -> None:
    token = make_token("tt-leeds", "case_system")
    idle = _second_worker(app).test_client()
    assert idle.get("/healthz").status_code == 200
    older = snapshot()
    status, body = _consent(app.test_client(), token, NHS[8])
    assert status == 201, body
    older.put_back()
    health = idle.get("/healthz")
    assert health.status_code == 503
    assert health.get_json()["status"] == "unavailable"


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_after_a_rollback_command_line_writes_are_refused_and_verify_names_the_sizes(
    app: Flask,
    ledger: Ledger,
    make_token: Callable[..., str],
    snapshot: Callable[[], Snapshot],
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = make_token("tt-leeds", "case_system")
    older = snapshot()
    status, body = _consent(app.test_client(), token, NHS[9])
    assert status == 201, body
    published = ledger.keyring().verify(body["ledger"]["checkpoint"]).size
    older.put_back()
    # A command line process is a new process: it knows only the record.
    cli = _second_worker(app).test_cli_runner()
    with caplog.at_level(logging.ERROR, logger="consent_ledger.cli"):
        refused = cli.invoke(args=["clients", "create", "--org", "tt-leeds", "--role", "auditor"])
    assert refused.exit_code == 1
    assert "refused, nothing was recorded" in refused.output
    assert f"published a checkpoint for size {published}" in refused.output
    assert "refuses to write" in caplog.text
    with ledger.db.read() as session:
        assert ledger.log_store.size(session) == published - 1

    verified = cli.invoke(args=["verify"])
    assert verified.exit_code == 1
    assert "log verification FAILED" in verified.output
    assert f"holds {published - 1} entries" in verified.output
    assert f"size {published}" in verified.output


def test_the_record_advances_only_along_a_consistent_extension(
    app: Flask, ledger: Ledger, make_token: Callable[..., str]
) -> None:
    """Defence in depth behind the check before signing: a checkpoint that does not extend
    the recorded one (another history, signed with the instance's own key) is never recorded,
    whichever of the two is larger."""
    make_token()
    recorded = ledger.published.read(ledger.keyring())
    assert recorded is not None
    store, before = ledger.log_store, ledger.published.notes()
    size = recorded.checkpoint.size
    for other_size in (size - 1, size, size + 1):
        other = Checkpoint(store.signer.name, other_size, bytes(32))
        ring = ledger.keyring()
        publication = Publication(store.signer.sign(other), other, (), ring)
        with pytest.raises(RollbackDetected):
            ledger.published.advance(publication, ring, ledger.prove_consistency)
        assert ledger.published.notes() == before


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_rollback_between_a_commit_and_its_record_is_still_refused(
    app: Flask, ledger: Ledger, make_token: Callable[..., str], snapshot: Callable[[], Snapshot]
) -> None:
    """The narrowest window: the database is rolled back after one worker's commit and before
    that worker has recorded the checkpoint it published. The next writer, in another worker,
    must not check against the record as it was before that commit."""
    token = make_token("tt-leeds", "case_system")
    first, second = app.test_client(), _second_worker(app).test_client()
    older = snapshot()
    answers: dict[str, tuple[int, dict]] = {}  # type: ignore[type-arg]
    rolled_back = threading.Event()

    def second_worker_writes() -> None:
        answers["second"] = _consent(second, token, NHS[11])

    writer = threading.Thread(target=second_worker_writes)

    def roll_back_before_the_record(session: Session) -> None:
        if rolled_back.is_set() or PUBLISHED not in session.info:
            return  # not the write that signs
        rolled_back.set()
        older.put_back()
        writer.start()
        # Give the other worker time to lock the head and read the record while this one
        # has committed but not yet recorded what it published.
        time.sleep(0.3)

    event.listen(Session, "after_commit", roll_back_before_the_record)
    try:
        answers["first"] = _consent(first, token, NHS[10])
    finally:
        event.remove(Session, "after_commit", roll_back_before_the_record)
    writer.join(timeout=30)
    assert rolled_back.is_set()
    assert answers["first"][0] == 201, answers["first"]
    assert answers["second"][0] == 503, answers["second"]
    receipts = [answers["first"][1]["ledger"]["checkpoint"]]
    roots = _signed_roots(ledger, receipts)
    assert {size: len(r) for size, r in roots.items() if len(r) > 1} == {}


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_health_checks_against_what_the_worker_saw_even_if_the_record_is_put_back_too(
    app: Flask,
    ledger: Ledger,
    make_token: Callable[..., str],
    snapshot: Callable[[], Snapshot],
    tmp_path: Path,
) -> None:
    token = make_token("tt-leeds", "case_system")
    idle = _second_worker(app).test_client()
    older, record_copy = snapshot(), tmp_path / "record-copy"
    shutil.copyfile(ledger.published.path, record_copy)
    assert _consent(app.test_client(), token, NHS[0])[0] == 201
    assert idle.get("/healthz").status_code == 200  # it has seen the newer checkpoint
    older.put_back()
    shutil.copyfile(record_copy, ledger.published.path)  # the record goes back with it
    assert idle.get("/healthz").status_code == 503
    assert _consent(idle, token, NHS[1])[0] == 503


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_an_interrupted_acceptance_of_a_rollback_can_be_run_again(
    app: Flask, ledger: Ledger, make_token: Callable[..., str], snapshot: Callable[[], Snapshot]
) -> None:
    token = make_token("tt-leeds", "case_system")
    older = snapshot()
    assert _consent(app.test_client(), token, NHS[0])[0] == 201
    published = ledger.published.notes()
    older.put_back()
    operator = _second_worker(app).test_cli_runner()

    def connection_lost(session: Session) -> None:
        raise OSError("connection to the database lost")

    event.listen(Session, "before_commit", connection_lost)
    try:
        failed = operator.invoke(args=["accept-rollback"])
    finally:
        event.remove(Session, "before_commit", connection_lost)
    assert failed.exit_code != 0
    # Nothing was declared, so the record still says what was published, and it is refused.
    assert ledger.published.notes() == published
    assert _second_worker(app).test_client().get("/healthz").status_code == 503

    accepted = operator.invoke(args=["accept-rollback"])
    assert accepted.exit_code == 0, accepted.output
    restarted = _second_worker(app)
    assert restarted.test_client().get("/healthz").status_code == 200
    assert _consent(restarted.test_client(), token, NHS[1])[0] == 201
    with ledger.db.read() as session:
        declared = session.execute(
            select(LogEntry.idx).where(LogEntry.entry_type == "log.rollback_accepted")
        ).all()
    assert len(declared) == 1


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_evidence_of_a_fork_stops_the_instance_until_an_operator_accepts_it(
    app: Flask, ledger: Ledger, make_token: Callable[..., str]
) -> None:
    """Two signed checkpoints that do not extend one another met in the record (what the
    record keeps when it refuses to advance): no process of the instance writes, serves or
    verifies until the operator has accepted the rollback, which the log then records."""
    token = make_token("tt-leeds", "case_system")
    recorded = ledger.published.read(ledger.keyring())
    assert recorded is not None
    store = ledger.log_store
    other = Checkpoint(store.signer.name, recorded.checkpoint.size + 1, bytes(32))
    ring = ledger.keyring()
    with pytest.raises(RollbackDetected):
        ledger.published.advance(
            Publication(store.signer.sign(other), other, (), ring),
            ring,
            ledger.prove_consistency,
        )
    assert ledger.published.fork_path.exists()
    fresh = _second_worker(app)
    assert fresh.test_client().get("/healthz").status_code == 503
    assert _consent(fresh.test_client(), token, NHS[2])[0] == 503
    assert "log verification FAILED" in fresh.test_cli_runner().invoke(args=["verify"]).output

    accepted = fresh.test_cli_runner().invoke(args=["accept-rollback"])
    assert accepted.exit_code == 0, accepted.output
    assert not ledger.published.fork_path.exists()
    restarted = _second_worker(app)
    assert restarted.test_client().get("/healthz").status_code == 200
    assert restarted.test_cli_runner().invoke(args=["verify"]).exit_code == 0
