"""The thread worker (``serve --threads N``, N > 1) against slow and idle clients, over raw
sockets to the real server.

A client that stops sending in the middle of a request holds one thread, not the worker, and
only until ``--timeout``: it is then answered 408 as problem+json, with our headers, an id and
one JSON log line, while the worker's other threads go on serving. Kept-alive connections are
reused, and closed once idle for the keep-alive limit.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app.headers import DATA_CSP
from tests.nhs import valid_nhs_numbers
from tests.server.conftest import Server, _run

pytestmark = pytest.mark.server

NHS = valid_nhs_numbers(1, start=943_476_700)[0]
TIMEOUT = 2  # the server's --timeout, short so that the tests are
KEEPALIVE = 5  # app.server.KEEPALIVE_SECONDS, stated here as a user sees it


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    instance = tmp_path_factory.mktemp("threads") / "instance"
    _run(instance, "init")
    _run(instance, "demo")
    # One worker with two threads: while a stalled client holds one, the other must serve.
    srv = Server(instance, workers=1, threads=2, options=("--timeout", str(TIMEOUT)))
    yield srv
    srv.stop()


def _read_answer(s: socket.socket) -> tuple[int, dict[str, str], bytes]:
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = s.recv(65536)
        assert chunk, f"the server closed without answering: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = s.recv(65536)
        assert chunk, "the server closed in the middle of its answer"
        body += chunk
    return int(status_line.split()[1]), headers, body


def _log_lines(srv: Server, request_id: str) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    while True:
        lines = [
            json.loads(line)
            for line in srv.log.read_text().splitlines()
            if line.startswith("{") and request_id in line
        ]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


# (name, the bytes sent before the client stalls)
STALLS = [
    ("in the request line", b"GET /v1/consents?nhs_num"),
    ("in the headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Half: "),
    (
        "in a Content-Length body",
        f"POST /v1/consents/{NHS}/withdraw HTTP/1.1\r\nHost: x\r\n"
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a": '.encode(),
    ),
    (
        "in a chunked body",
        b"POST /v1/objections HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Transfer-Encoding: chunked\r\n\r\n20\r\n{"subject": ',
    ),
]


@pytest.mark.parametrize("sent", [s[1] for s in STALLS], ids=[s[0] for s in STALLS])
def test_a_client_that_stalls_mid_request_gets_a_408_and_holds_no_worker(
    live: Server, sent: bytes
) -> None:
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as s:
        s.sendall(sent)
        stalled_at = time.monotonic()
        time.sleep(0.3)  # the stalled request now holds one of the worker's two threads
        # The worker's other thread answers meanwhile, promptly.
        health = requests.get(live.url + "/healthz", timeout=TIMEOUT / 2)
        assert health.status_code == 200
        status, headers, body = _read_answer(s)
        waited = time.monotonic() - stalled_at
        assert s.recv(1) == b"", "the connection stays open after the 408"
    assert TIMEOUT - 0.5 <= waited <= TIMEOUT + 5, waited
    assert status == 408
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    problem = json.loads(body)
    assert (problem["type"], problem["status"]) == ("/problems/request-timeout", 408)
    assert headers["x-frame-options"] == "DENY"
    assert headers["content-security-policy"] == DATA_CSP
    assert headers["cache-control"] == "no-store"
    (line,) = _log_lines(live, headers["x-request-id"])
    assert line["status"] == 408
    assert line["logger"] == "consent_ledger.access"
    log = live.log.read_text()
    assert NHS not in log
    assert "Traceback" not in log


def test_connections_are_kept_alive_and_closed_once_idle(live: Server) -> None:
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as s:
        for _ in range(3):  # three requests, one connection
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, _ = _read_answer(s)
            assert status == 200
            assert headers.get("connection", "keep-alive").lower() == "keep-alive"
        idle_from = time.monotonic()
        assert s.recv(1) == b"", "an idle kept-alive connection is closed by the server"
        idle = time.monotonic() - idle_from
    assert KEEPALIVE - 1 <= idle <= KEEPALIVE + 3, idle


def test_the_sync_worker_closes_after_each_answer(demo_instance: Path) -> None:
    srv = Server(demo_instance, workers=1, threads=1)
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, _ = _read_answer(s)
            assert (status, headers["connection"]) == (200, "close")
            assert s.recv(1) == b""
    finally:
        srv.stop()
