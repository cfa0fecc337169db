"""What a witness answers is checked before anything is stored: a stand-in witness on loopback
(the other side of the protocol, scripted) answers each way a witness can go wrong, and the
answer becomes its last error, is never stored and never served. The same stand-in answering
properly is stored and served, so each failure is for the reason named."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from sqlalchemy import func, select

from app import create_app, get_ledger
from app.ledger.checkpoint import split_note
from app.ledger.cosignature import CosignatureSigner, CosignatureVerifier
from app.models import WitnessCosignature, WitnessStatus
from app.services.log import keys
from app.services.log.log_store import make_entry

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NAME = "witness.test/stand-in"
SIGNER = CosignatureSigner(NAME, Ed25519PrivateKey.generate())
# Another key under the same name: its lines carry another key id.
IMPOSTOR = CosignatureSigner(NAME, Ed25519PrivateKey.generate())

Answer = Callable[[bytes], tuple[int, dict[str, str], bytes]]


def _note_body(request: bytes) -> bytes:
    note = request.split(b"\n\n", 1)[1]
    return split_note(note)[0]


def proper(request: bytes) -> tuple[int, dict[str, str], bytes]:
    return 200, {}, SIGNER.cosign(_note_body(request), int(time.time())).encode()


ANSWERS: list[tuple[str, Answer, str]] = [
    (
        "another key",
        lambda r: (200, {}, IMPOSTOR.cosign(_note_body(r), int(time.time())).encode()),
        "answered with no cosignature that verifies under its key",
    ),
    (
        "its key, other text",
        lambda r: (200, {}, SIGNER.cosign(b"other\n", int(time.time())).encode()),
        "answered with no cosignature that verifies under its key",
    ),
    (
        "not a signature line",
        lambda r: (200, {}, b"cosigned!\n"),
        "answered with no cosignature that verifies under its key",
    ),
    (
        "409 without a size",
        lambda r: (409, {"Content-Type": "text/x.tlog.size"}, b"lots\n"),
        "answered 409 without the size it holds",
    ),
    (
        "409 beyond our tree",
        lambda r: (409, {"Content-Type": "text/x.tlog.size"}, b"99\n"),
        "it holds a larger tree of ours (99 entries) than our newest checkpoint",
    ),
    ("403", lambda r: (403, {}, b"no"), "refused our log's signature (403)"),
    ("422", lambda r: (422, {}, b"no"), "refused the checkpoint as inconsistent"),
    ("redirect", lambda r: (302, {"Location": "http://127.0.0.1:1/"}, b""), "answered 302"),
    ("500", lambda r: (500, {}, b"oops"), "answered 500"),
]


class StandIn:
    def __init__(self) -> None:
        self.answer: Answer = proper
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status, headers, payload = stand_in.answer(body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    witness = StandIn()
    yield witness
    witness.close()


@pytest.fixture
def app(instance_path: Path, database_url: str, stand_in: StandIn) -> Iterator[Flask]:
    listing = instance_path / "witnesses.txt"
    listing.write_text(f"{SIGNER.verifier().verifier_key()} {stand_in.url}\n")
    app = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(instance_path),
            "DATABASE_URL": database_url,
            "WITNESSES": str(listing),
        }
    )
    keys.ensure_keys(get_ledger(app).settings)
    yield app
    get_ledger(app).db.dispose()


def _round(app: Flask, size: int) -> dict[str, object]:
    ledger = get_ledger(app)
    with ledger.db.write() as session:
        have = ledger.log_store.size(session)
        entries = [make_entry("bulk", NOW, {"n": i}) for i in range(have, size)]
        ledger.log_store.append(session, entries, NOW)
    result = app.test_cli_runner().invoke(args=["witnesses", "submit", "--once"])
    assert result.exit_code == 0, result.output
    health = app.test_client().get("/healthz")
    assert health.status_code == 200
    assert health.json["status"] == "ok"
    state: dict[str, object] = health.json["witnesses"]["witnesses"][0]
    return state


@pytest.mark.parametrize(("answer", "error"), [pytest.param(a, e, id=i) for i, a, e in ANSWERS])
def test_a_bad_answer_is_the_witness_s_last_error_and_is_never_stored(
    app: Flask, stand_in: StandIn, answer: Answer, error: str
) -> None:
    stand_in.answer = answer
    state = _round(app, 3)
    assert str(state["last_error"]).startswith(error)
    assert state["cosigned_size"] == 0
    ledger = get_ledger(app)
    with ledger.db.read() as session:
        assert session.execute(select(func.count()).select_from(WitnessCosignature)).scalar() == 0
    served = app.test_client().get("/log/checkpoint").text
    assert len(split_note(served)[1]) == 1  # the log's own signature, nothing else

    # The same witness answering properly afterwards is stored and served.
    stand_in.answer = proper
    with ledger.db.write() as session:  # its backoff over
        status = session.get(WitnessStatus, f"{NAME}+{SIGNER.verifier().key_id.hex()}")
        assert status is not None
        status.next_attempt_at = None
    state = _round(app, 4)
    assert (state["cosigned_size"], state["last_error"]) == (4, None)
    CosignatureVerifier.from_verifier_key(SIGNER.verifier().verifier_key()).verify(
        app.test_client().get("/log/checkpoint").text
    )
