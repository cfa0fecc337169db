"""Fixtures: ``app -> client -> runner`` (flask tutorial style), on SQLite by default and on a
real PostgreSQL 15 for tests parametrised with :data:`BOTH`.

PostgreSQL is started once per session in a temporary folder (``initdb`` refuses root, so it
runs as the ``postgres`` user). Each test gets its own database cloned from a migrated template;
each SQLite test gets a copy of a migrated file. With ``REQUIRE_POSTGRES=1`` a missing server
fails the run instead of skipping, and a run in which no PostgreSQL test passed fails too.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic import command as alembic_command
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, text

from app import create_app, get_ledger
from app.cli import alembic_config
from app.config import Settings
from app.policy import Policy
from app.services import organisations
from app.services.access import clients
from app.services.container import Ledger
from app.services.decisions import policies
from app.services.log import keys

REPO = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("CONSENT_LEDGER_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES") == "1"
ORGS_FILE = REPO / "policies" / "organisations.example.yaml"


def migrate(url: str) -> None:
    settings = Settings(instance_path=Path(tempfile.gettempdir()), database_url=url)
    alembic_command.upgrade(alembic_config(Ledger(settings)), "head")


# -- PostgreSQL --


@dataclass
class PostgresServer:
    socket_dir: Path
    port: int
    template: str = "consent_ledger_template"

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@/{dbname}?host={self.socket_dir}&port={self.port}"

    def admin(self, sql: str) -> None:
        engine = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(sql))
        engine.dispose()

    _counter = itertools.count()

    def create_database(self, *, migrated: bool = True) -> str:
        name = f"t_{os.getpid()}_{next(self._counter)}"
        template = self.template if migrated else "template0"
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _start_postgres(base: Path) -> tuple[PostgresServer, Path]:
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
    )
    port = 55432 + os.getpid() % 1000
    opts = f"-k {sock} -p {port} -c listen_addresses='' -c fsync=off -c max_connections=200"
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                opts,
                "-l",
                str(base / "postgres.log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    return PostgresServer(sock, port), data


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    reason = None
    if not (PG_BIN / "initdb").exists():
        reason = f"PostgreSQL server binaries not found in {PG_BIN}"
    elif os.geteuid() == 0 and shutil.which("runuser") is None:
        reason = "runuser is needed to run initdb as the postgres user"
    if reason:
        if REQUIRE_POSTGRES:
            pytest.fail(f"REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="consent-ledger-pg-"))
    os.chmod(base, 0o755)
    server, data = _start_postgres(base)
    try:
        server.admin(f'CREATE DATABASE "{server.template}"')
        migrate(server.url(server.template))
        yield server
    finally:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


# -- SQLite --


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    migrate(f"sqlite:///{path}")
    return path


# -- the app chain --


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CONSENT_LEDGER_") and name != "CONSENT_LEDGER_TEST_PG_BIN":
            monkeypatch.delenv(name)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """Overridden to ``BOTH`` by ``@pytest.mark.parametrize("backend", BOTH, indirect=True)``."""
    return str(request.param)


@pytest.fixture
def instance_path(tmp_path: Path) -> Path:
    path = tmp_path / "instance"
    path.mkdir()
    return path


@pytest.fixture
def database_url(backend: str, instance_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return server.create_database()
    template: Path = request.getfixturevalue("sqlite_template")
    target = instance_path / "consent-ledger.sqlite3"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def app(instance_path: Path, database_url: str) -> Iterator[Flask]:
    app = create_app(
        {"TESTING": True, "INSTANCE_PATH": str(instance_path), "DATABASE_URL": database_url}
    )
    keys.ensure_keys(get_ledger(app).settings)
    yield app
    get_ledger(app).db.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def ledger(app: Flask) -> Ledger:
    return get_ledger(app)


@pytest.fixture
def orgs(ledger: Ledger) -> list[str]:
    """The example organisations, registered."""
    data = organisations.read_organisation_file(ORGS_FILE)
    organisations.import_organisations(ledger, data, str(ORGS_FILE))
    return [r["id"] for r in data]


@pytest.fixture
def policy(ledger: Ledger, orgs: list[str]) -> Policy:
    """The shipped policy, published (as ``consent-ledger init`` does)."""
    shipped = policies.parse_policy_file(policies.DEFAULT_POLICY_FILE)
    policies.publish(ledger, shipped)
    return shipped


@pytest.fixture
def make_token(ledger: Ledger, orgs: list[str]) -> Any:
    def make(org: str = "tt-leeds", role: str = "auditor") -> str:
        return clients.create_client(ledger, org, role, None).token

    return make


# -- required suites --

# Suites CI requires: marker -> environment variable that makes a skip a failure.
REQUIRED_SUITES = {
    "postgres": "REQUIRE_POSTGRES",
    "browser": "REQUIRE_BROWSER",
    "witness": "REQUIRE_WITNESS",
}
_passed: dict[str, list[str]] = {m: [] for m in REQUIRED_SUITES}
_skipped: dict[str, list[str]] = {m: [] for m in REQUIRED_SUITES}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in item.nodeid:
            item.add_marker(pytest.mark.browser)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for marker in REQUIRED_SUITES:
        if marker not in report.keywords:
            continue
        if report.when == "call" and report.passed:
            _passed[marker].append(report.nodeid)
        elif report.skipped:
            _skipped[marker].append(report.nodeid)


def _incomplete() -> list[str]:
    return [
        marker
        for marker, variable in REQUIRED_SUITES.items()
        if os.environ.get(variable) == "1" and (not _passed[marker] or _skipped[marker])
    ]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _incomplete() and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for marker, variable in REQUIRED_SUITES.items():
        if os.environ.get(variable) == "1":
            terminalreporter.write_line(
                f"{variable}=1: {len(_passed[marker])} {marker} tests passed, "
                f"{len(_skipped[marker])} skipped"
            )
    for marker in _incomplete():
        terminalreporter.write_line(
            f"FAILED: the {marker} suite is required and did not run in full", red=True
        )
