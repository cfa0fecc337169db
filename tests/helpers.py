"""Small helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, text

from app.services.container import Ledger
from app.services.log import openings

# Parametrise a test with ``@pytest.mark.parametrize("backend", BOTH, indirect=True)`` to run it
# on SQLite and on the real PostgreSQL server.
BOTH = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tamper(ledger: Ledger, sql: str, **params: Any) -> None:
    """Edit a log table behind the append-only triggers' back, as a hostile DBA could."""
    engine = ledger.db.write_engine
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            tables = ("log_entries", "log_nodes", "log_checkpoints", "log_openings")
            for t in tables:
                conn.execute(text(f"ALTER TABLE {t} DISABLE TRIGGER USER"))
            conn.execute(text(sql), params)
            for t in tables:
                conn.execute(text(f"ALTER TABLE {t} ENABLE TRIGGER USER"))
            return
        saved = conn.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
        ).all()
        for name, _ in saved:
            conn.execute(text(f"DROP TRIGGER {name}"))
        conn.execute(text(sql), params)
        for _, ddl in saved:
            conn.execute(text(ddl))


def logged_entry(ledger: Ledger, index: int) -> dict[str, Any]:
    """The entry at ``index`` as the service reads it: the leaf decoded, or, for a committed
    leaf (log format 2), the entry its opening holds (checked against the commitment)."""
    with ledger.db.read() as session:
        entry = ledger.log_store.entry(session, index).entry
    assert entry is not None, f"entry {index} cannot be read"
    return entry


def logged_entries(ledger: Ledger) -> list[dict[str, Any]]:
    """Every readable entry in index order (erased ones are left out)."""
    with ledger.db.read() as session:
        return [entry for _, entry in openings.entries(session)]


@contextmanager
def recorded_statements(ledger: Ledger) -> Iterator[list[str]]:
    """The SQL statements run inside the block, in order (for SQLite, whose read and write
    engines are separate)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    # PostgreSQL's read engine is the write engine's execution_options(): it shares that
    # engine's events, so listening on both would record each statement twice.
    bases = [getattr(e, "_proxied", e) for e in (ledger.db.read_engine, ledger.db.write_engine)]
    engines = {id(e): e for e in bases}.values()
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def form_token(html: str) -> str:
    """The CSRF token a page's form carries."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no form token"
    return found.group(1)


def ig_sign_in(client: FlaskClient, token: str) -> Any:
    """Sign in to the IG pages as a person would: the sign-in form, then its POST."""
    csrf = form_token(client.get("/ig/").text)
    return client.post("/ig/sign-in", data={"csrf_token": csrf, "token": token})
