"""Requests gunicorn refuses before the application runs, over raw sockets to the real server.

A request line or headers too large, a broken chunked body: each answer is problem+json with
the security headers and an ``X-Request-Id`` every other answer has, and leaves one JSON log
line with that id. A chunked body over 1 MiB is 413, as a Content-Length one is. No NHS
number sent in a request reaches the server's log. Every test runs on both worker classes
(sync, and gthread with keep-alive).
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator

import pytest

from app.headers import DATA_CSP
from tests.nhs import valid_nhs_numbers
from tests.server.conftest import WORKER_THREADS, Server, _run
from tests.support.fhir_check import check_resource

pytestmark = pytest.mark.server

NHS = valid_nhs_numbers(1, start=943_476_700)[0]
MIB = 1024 * 1024


@pytest.fixture(scope="module", params=WORKER_THREADS)
def live(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Server, str]]:
    instance = tmp_path_factory.mktemp("malformed") / "instance"
    _run(instance, "init")
    _run(instance, "demo")
    tokens = json.loads((instance / "demo-tokens.json").read_text())
    (token,) = [
        t["token"] for t in tokens if t["role"] == "case_system" and t["organisation"] == "tt-leeds"
    ]
    srv = Server(instance, workers=2, threads=request.param)
    yield srv, token
    srv.stop()


def _send(srv: Server, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; read the answer until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
        # The server may answer and close before it has read everything.
        with contextlib.suppress(OSError):
            s.sendall(data)
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def _chunked(size: int) -> bytes:
    piece = b" " * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(size // len(piece)))
    return chunks + b"0\r\n\r\n"


def _log_lines(srv: Server, request_id: str) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    while True:
        lines = []
        for line in srv.log.read_text().splitlines():
            if line.startswith("{") and request_id in line:
                lines.append(json.loads(line))
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def _post(path: str, token: str, extra: bytes) -> bytes:
    # Connection: close, so that the thread worker, which keeps connections alive, closes
    # after answering and _send can read to the end.
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nConnection: close\r\n"
    ).encode() + extra


# (name, request given the token, status, problem type)
CASES = [
    (
        "request line too long",
        lambda t: f"GET /v1/consents?nhs_number={NHS}&x={'a' * 5000} HTTP/1.1\r\n\r\n".encode(),
        414,
        "/problems/uri-too-long",
    ),
    (
        "too many header fields",
        lambda t: (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: 1\r\n" % i for i in range(150))
            + b"\r\n"
        ),
        431,
        "/problems/header-fields-too-large",
    ),
    (
        "a header field too large",
        lambda t: f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 9000}\r\n\r\n".encode(),
        431,
        "/problems/header-fields-too-large",
    ),
    (
        "a broken chunked body",
        lambda t: _post("/v1/consents", t, b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n"),
        400,
        "/problems/malformed-request",
    ),
    (
        "a chunked body over 1 MiB",
        lambda t: _post(
            "/v1/consents", t, b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(2 * MIB)
        ),
        413,
        "/problems/payload-too-large",
    ),
    (
        "a Content-Length body over 1 MiB",
        lambda t: (
            _post("/v1/consents", t, b"Content-Length: %d\r\n\r\n" % (2 * MIB)) + b" " * (2 * MIB)
        ),
        413,
        "/problems/payload-too-large",
    ),
]


@pytest.mark.parametrize(("request_bytes", "status", "type_"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_a_refused_request_is_a_problem_with_our_headers_an_id_and_a_log_line(
    live: tuple[Server, str], request_bytes: object, status: int, type_: str
) -> None:
    srv, token = live
    assert callable(request_bytes)
    got, headers, body = _send(srv, request_bytes(token))
    assert got == status
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert (problem["type"], problem["status"]) == (type_, status)
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["content-security-policy"] == DATA_CSP
    assert headers["cache-control"] == "no-store"
    request_id = headers["x-request-id"]
    (line,) = _log_lines(srv, request_id)
    assert line["status"] == status
    assert line["logger"] == "consent_ledger.access"
    assert NHS not in srv.log.read_text()


def test_an_nhs_number_in_a_path_is_redacted_in_the_servers_log(live: tuple[Server, str]) -> None:
    srv, token = live
    for form in (NHS, f"{NHS[:3]}%20{NHS[3:6]}%20{NHS[6:]}"):
        got, headers, body = _send(
            srv, _post(f"/v1/consents/{form}/withdraw", token, b"Content-Length: 0\r\n\r\n")
        )
        assert got == 404
        assert b"[redacted]" in body
        (line,) = _log_lines(srv, headers["x-request-id"])
        assert line["path"] == "/v1/consents/[redacted]/withdraw"
    # A request the server refuses itself (a bad Content-Length) is logged by ProblemWorker,
    # from gunicorn's undecoded path: redacted all the same, as is a patient link's token.
    for path in (f"/v1/consents/{NHS[:3]}%20{NHS[3:6]}%20{NHS[6:]}/withdraw", "/%70/secrettoken"):
        got, headers, _ = _send(
            srv, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".encode()
        )
        assert got == 400
        (line,) = _log_lines(srv, headers["x-request-id"])
        assert line["path"] in ("/v1/consents/[redacted]/withdraw", "/p/[link]")
    log = srv.log.read_text()
    assert NHS not in log
    assert f"{NHS[:3]} {NHS[3:6]} {NHS[6:]}" not in log
    assert f"{NHS[:3]}%20{NHS[3:6]}" not in log
    assert "secrettoken" not in log


def test_a_chunked_body_within_the_limit_is_read_whole(live: tuple[Server, str]) -> None:
    srv, token = live
    body = json.dumps({"subject": {"nhs_number": NHS}, "scope": "direct_care"}).encode()
    got, _, answer = _send(
        srv,
        _post(
            "/v1/objections",
            token,
            b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body),
        ),
    )
    assert got == 201, answer
    assert NHS not in answer.decode()


# (name, request given the token, status, OperationOutcome issue code). Where gunicorn refuses
# a request before it has read the path (a request line or headers too large), the answer is
# problem+json whatever the path: nothing tells it the request was for the FHIR face.
FHIR_CASES = [
    (
        "a broken chunked body",
        lambda t: _post("/fhir/r4/Consent", t, b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n"),
        400,
        "invalid",
    ),
    (
        "a bad Content-Length on a path holding an NHS number",
        lambda t: (
            f"GET /fhir/r4/Consent/{NHS} HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
        ).encode(),
        400,
        "invalid",
    ),
]


@pytest.mark.parametrize(("request_bytes", "status", "code"), [c[1:] for c in FHIR_CASES],
                         ids=[c[0] for c in FHIR_CASES])  # fmt: skip
def test_a_fhir_request_the_server_refuses_is_an_operation_outcome(
    live: tuple[Server, str], request_bytes: object, status: int, code: str
) -> None:
    srv, token = live
    assert callable(request_bytes)
    got, headers, body = _send(srv, request_bytes(token))
    assert got == status
    assert headers["content-type"] == "application/fhir+json"
    outcome = check_resource(json.loads(body))
    assert [i["code"] for i in outcome["issue"]] == [code]
    assert NHS.encode() not in body
    assert headers["x-request-id"]
