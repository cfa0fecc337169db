"""Backups, restores and the rollback defence: a database restored behind a checkpoint the
service has published is refused at start-up until an operator acts, and the act is logged."""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select
from sqlalchemy.engine import make_url

from app import create_app, get_ledger
from app.models import LogEntry
from app.services.access import clients
from app.services.log.published import RECORD_FILE, SLOT
from tests.conftest import PostgresServer
from tests.helpers import BOTH


def _fresh(instance_path: Path, database_url: str) -> Flask:
    """The service as it starts again on the same instance: a new process would."""
    return create_app(
        {"TESTING": True, "INSTANCE_PATH": str(instance_path), "DATABASE_URL": database_url}
    )


def _live_file(database_url: str) -> Path:
    return Path(database_url.removeprefix("sqlite:///"))


def _put_back(app: Flask, copy: Path, database_url: str) -> None:
    """An operator copying an old file over the live one by hand (the service stopped)."""
    get_ledger(app).db.dispose()
    live = _live_file(database_url)
    for suffix in ("-wal", "-shm"):
        Path(str(live) + suffix).unlink(missing_ok=True)
    shutil.copyfile(copy, live)


def _add_client(app: Flask) -> None:
    clients.create_client(get_ledger(app), "tt-leeds", "auditor", None)


@pytest.fixture
def older_copy(
    app: Flask, runner: FlaskCliRunner, orgs: list[str], tmp_path: Path
) -> Callable[[], Path]:
    def take() -> Path:
        dest = tmp_path / f"backup-{len(list(tmp_path.glob('backup-*')))}.sqlite3"
        result = runner.invoke(args=["backup", str(dest)])
        assert result.exit_code == 0, result.output
        assert f"to {dest}" in result.output
        return dest

    return take


def test_every_write_records_the_checkpoint_it_published(
    app: Flask, orgs: list[str], instance_path: Path
) -> None:
    ledger = get_ledger(app)
    for _ in range(3):
        _add_client(app)
        served = app.test_client().get("/v1/log/checkpoint").get_data(as_text=True)
        record = ledger.published.read(ledger.keyring())
        assert record is not None
        assert record.note == served
    # Two slots, overwritten in turn: the record holds the newest note and the one before it,
    # as plain text, and does not grow.
    assert len(ledger.published.notes()) == 2
    assert served in (instance_path / RECORD_FILE).read_text()
    assert (instance_path / RECORD_FILE).stat().st_size == 2 * SLOT
    assert (instance_path / RECORD_FILE).stat().st_mode & 0o077 == 0


def test_a_write_torn_by_a_crash_costs_the_record_one_write_at_most(
    app: Flask,
    orgs: list[str],
    instance_path: Path,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger = get_ledger(app)
    _add_client(app)
    before = ledger.published.read(ledger.keyring())
    _add_client(app)
    newest = ledger.published.read(ledger.keyring())
    assert before is not None
    assert newest is not None
    assert newest.checkpoint.size > before.checkpoint.size
    # A crash in the middle of writing the newest note: half of its slot is new bytes, the
    # rest whatever was there.
    record = instance_path / RECORD_FILE
    data = bytearray(record.read_bytes())
    start = data.index(newest.note.encode())
    data[start + 60 : start + SLOT] = b"\xff" * (SLOT - 60)
    record.write_bytes(bytes(data))
    # The database contains that older checkpoint, so the service starts. Reading the record
    # says what happened and puts the good note in the spoilt slot, so no later write can
    # overwrite the only good one; the next write records its own checkpoint again.
    with caplog.at_level(logging.WARNING, logger="consent_ledger.published"):
        assert ledger.published.read(ledger.keyring()) == before
    assert "a write cut short?" in caplog.text
    assert ledger.published.notes() == [before.note, before.note]
    restarted = _fresh(instance_path, database_url)
    assert restarted.test_client().get("/healthz").status_code == 200
    _add_client(restarted)
    served = restarted.test_client().get("/v1/log/checkpoint").get_data(as_text=True)
    again = get_ledger(restarted).published.read(ledger.keyring())
    assert again is not None
    assert again.note == served
    get_ledger(restarted).db.dispose()


def test_a_record_of_the_earlier_single_note_form_is_read_and_advanced(
    app: Flask, orgs: list[str], instance_path: Path
) -> None:
    ledger = get_ledger(app)
    _add_client(app)
    record = ledger.published.read(ledger.keyring())
    assert record is not None
    (instance_path / RECORD_FILE).write_text(record.note)  # as the service wrote it before
    assert ledger.published.read(ledger.keyring()) == record
    _add_client(app)
    served = app.test_client().get("/v1/log/checkpoint").get_data(as_text=True)
    newest = ledger.published.read(ledger.keyring())
    assert newest is not None
    assert newest.note == served
    assert ledger.published.notes() == [record.note, served]


def test_an_older_copy_put_back_is_refused_until_the_loss_is_accepted(
    app: Flask,
    runner: FlaskCliRunner,
    older_copy: Callable[[], Path],
    instance_path: Path,
    database_url: str,
) -> None:
    old = older_copy()
    _add_client(app)  # published: the copy lacks this checkpoint
    _put_back(app, old, database_url)

    stale = _fresh(instance_path, database_url)
    health = stale.test_client().get("/healthz")
    assert health.status_code == 503
    refused = stale.test_client().get("/v1/log/checkpoint")
    assert refused.status_code == 503
    assert refused.get_json()["type"] == "/problems/log-unavailable"
    assert "restored from an older copy" in (get_ledger(stale).health().reason or "")

    accepted = stale.test_cli_runner().invoke(args=["accept-rollback"])
    assert accepted.exit_code == 0, accepted.output
    assert "rollback recorded at log index" in accepted.output
    back = _fresh(instance_path, database_url)
    assert back.test_client().get("/healthz").status_code == 200
    with get_ledger(back).db.read() as session:
        last = session.execute(select(LogEntry).order_by(LogEntry.idx.desc())).scalars().first()
    assert last is not None
    assert last.entry_type == "log.rollback_accepted"
    assert back.test_cli_runner().invoke(args=["verify"]).exit_code == 0
    again = back.test_cli_runner().invoke(args=["accept-rollback"])
    assert "nothing to accept" in again.output


def test_restore_checks_the_copy_against_the_newest_published_checkpoint(
    app: Flask,
    runner: FlaskCliRunner,
    older_copy: Callable[[], Path],
    instance_path: Path,
    database_url: str,
) -> None:
    old = older_copy()
    _add_client(app)
    new = older_copy()
    get_ledger(app).db.dispose()

    refused = runner.invoke(args=["restore", str(old)])
    assert refused.exit_code == 1
    assert "refusing to restore" in refused.output
    assert "--accept-rollback" in refused.output
    assert _fresh(instance_path, database_url).test_client().get("/healthz").status_code == 200

    restored = runner.invoke(args=["restore", str(new)])
    assert restored.exit_code == 0, restored.output
    assert _fresh(instance_path, database_url).test_client().get("/healthz").status_code == 200

    forced = runner.invoke(args=["restore", str(old), "--accept-rollback"])
    assert forced.exit_code == 0, forced.output
    assert "recorded at log index" in forced.output
    back = _fresh(instance_path, database_url)
    assert back.test_client().get("/healthz").status_code == 200
    assert back.test_cli_runner().invoke(args=["verify"]).exit_code == 0
    assert back.test_cli_runner().invoke(args=["rebuild", "--check"]).exit_code == 0


def test_another_history_of_the_same_size_is_refused(
    app: Flask, older_copy: Callable[[], Path], instance_path: Path, database_url: str
) -> None:
    old = older_copy()
    _add_client(app)
    _put_back(app, old, database_url)
    # Someone with the signing key writes to the old copy behind the service's back, without
    # its record (the service itself would refuse: tests/services/log/test_online_rollback.py):
    # the same size, another root.
    record = instance_path / RECORD_FILE
    kept = record.rename(record.with_name("kept-aside"))
    forked = _fresh(instance_path, database_url)
    _add_client(forked)
    get_ledger(forked).db.dispose()
    kept.replace(record)
    stale = _fresh(instance_path, database_url)
    assert stale.test_client().get("/healthz").status_code == 503
    assert "another history" in (get_ledger(stale).health().reason or "")


def test_a_record_signed_by_another_key_is_refused(
    app: Flask, orgs: list[str], instance_path: Path, database_url: str
) -> None:
    record = instance_path / RECORD_FILE
    # Every note in the record altered, so none verifies under the instance's key.
    record.write_text(record.read_text().replace("\n\u2014 ", "\n\u2014 x"))
    stale = _fresh(instance_path, database_url)
    assert stale.test_client().get("/healthz").status_code == 503
    assert "signed by this instance's key" in (get_ledger(stale).health().reason or "")


def test_a_missing_record_is_started_from_the_database_with_a_warning(
    app: Flask,
    orgs: list[str],
    instance_path: Path,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (instance_path / RECORD_FILE).unlink()
    with caplog.at_level(logging.WARNING, logger="consent_ledger.published"):
        fresh = _fresh(instance_path, database_url)
        assert fresh.test_client().get("/healthz").status_code == 200
    assert "no record of a published checkpoint" in caplog.text
    served = fresh.test_client().get("/v1/log/checkpoint").get_data(as_text=True)
    assert get_ledger(fresh).published.notes() == [served]


def test_backup_never_overwrites_and_refuses_what_is_not_a_log(
    runner: FlaskCliRunner, orgs: list[str], tmp_path: Path
) -> None:
    taken = tmp_path / "taken.sqlite3"
    taken.write_text("keep me")
    refused = runner.invoke(args=["backup", str(taken)])
    assert refused.exit_code == 1
    assert "never overwrites" in refused.output
    assert taken.read_text() == "keep me"
    junk = runner.invoke(args=["restore", str(taken)])
    assert junk.exit_code == 1
    assert "not a consent-ledger database" in junk.output


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_backup_names_pg_dump_for_postgresql(
    runner: FlaskCliRunner, backend: str, orgs: list[str], tmp_path: Path
) -> None:
    result = runner.invoke(args=["backup", str(tmp_path / "copy.sqlite3")])
    if backend == "sqlite":
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 1
    assert "pg_dump" in result.output


@pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_a_postgresql_database_restored_from_an_older_dump_is_refused_until_accepted(
    app: Flask,
    orgs: list[str],
    instance_path: Path,
    database_url: str,
    postgres_server: PostgresServer,
) -> None:
    live = make_url(database_url).database
    snapshot = live + "_old"
    get_ledger(app).db.dispose()
    postgres_server.admin(f'CREATE DATABASE "{snapshot}" TEMPLATE "{live}"')
    _add_client(app)  # published after the snapshot
    get_ledger(app).db.dispose()
    # What pg_restore of the older dump into a fresh database amounts to.
    postgres_server.admin(f'DROP DATABASE "{live}"')
    postgres_server.admin(f'CREATE DATABASE "{live}" TEMPLATE "{snapshot}"')

    stale = _fresh(instance_path, database_url)
    assert stale.test_client().get("/healthz").status_code == 503
    assert "restored from an older copy" in (get_ledger(stale).health().reason or "")
    accepted = stale.test_cli_runner().invoke(args=["accept-rollback"])
    assert accepted.exit_code == 0, accepted.output
    get_ledger(stale).db.dispose()
    back = _fresh(instance_path, database_url)
    assert back.test_client().get("/healthz").status_code == 200
    assert back.test_cli_runner().invoke(args=["verify"]).exit_code == 0
    get_ledger(back).db.dispose()


def test_an_unusable_record_is_refused_with_a_reason_not_a_500(
    app: Flask, orgs: list[str], instance_path: Path, database_url: str
) -> None:
    record = instance_path / RECORD_FILE
    record.unlink()
    record.mkdir()  # what a read of a file owned by another user amounts to, even for root
    stale = _fresh(instance_path, database_url)
    resp = stale.test_client().get("/v1/log/checkpoint")
    assert resp.status_code == 503
    assert resp.get_json()["type"] == "/problems/log-unavailable"
    assert "instance folder is not usable" in (get_ledger(stale).health().reason or "")


def test_workers_starting_while_others_write_never_see_a_false_rollback(
    app: Flask, orgs: list[str], instance_path: Path, database_url: str
) -> None:
    """A starting worker's snapshot may be older than the record other workers advance after
    each commit; the record is read before the snapshot, so this is never taken for a
    rollback."""
    stop = threading.Event()
    writer = _fresh(instance_path, database_url)

    def write() -> None:
        while not stop.is_set():
            _add_client(writer)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        checker = get_ledger(_fresh(instance_path, database_url))
        states = [checker.recheck_health() for _ in range(150)]
    finally:
        stop.set()
        thread.join()
    assert [s.reason for s in states if not s.ok] == []
    assert states[-1].log_size > states[0].log_size  # the writer really ran alongside
