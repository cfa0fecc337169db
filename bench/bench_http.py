"""Benchmark of decisions over HTTP (not a test): ``consent-ledger serve`` against bare Flask.

Both are served by gunicorn with the same settings (``--workers 2``, sync workers) on SQLite,
and driven by the same load generator: 16 concurrent connections, each sending ``POST
/v1/decisions`` with a bearer token and the same JSON body, one request per connection (gunicorn's
sync workers close after each response) for a fixed time after a warm-up. The bare app only
parses the body and answers, so its figures are the ceiling for this stack; consent-ledger's
authenticate the client, lock the log head, read the person's consents and objections, evaluate
the policy, append a signed log entry and record the decision, every time.

Rate limits are switched off for the run (they would be the thing measured otherwise).

Usage: python bench/bench_http.py [--seconds S] [--connections C] [--runs R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NHS = "9434765919"
BODY = {
    "subject": {"nhs_number": NHS},
    "from": "tt-leeds",
    "to": "ea-tt-leeds",
    "purpose": "referral",
    "data_categories": ["identity", "service_status"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=5)  # noqa: S310 (loopback only)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "consent-ledger"), *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def request_bytes(port: int, token: str) -> bytes:
    body = json.dumps(BODY).encode()
    head = (
        f"POST /v1/decisions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def one(port: int, payload: bytes) -> tuple[int, float]:
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    data = await reader.read()
    writer.close()
    status = int(data[9:12]) if data[:5] == b"HTTP/" else 0
    return status, time.perf_counter() - start


async def load(port: int, payload: bytes, connections: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    bad: list[int] = []
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            status, took = await one(port, payload)
            if status == 200:
                latencies.append(took)
            else:
                bad.append(status)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    if bad:
        raise RuntimeError(f"{len(bad)} requests failed, statuses {sorted(set(bad))}")
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000,
        "n": len(latencies),
    }


def server_cpu(master: int) -> float:
    """CPU seconds (user + system) used so far by a gunicorn master's workers (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    for pid in children:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a worker that has just exited
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def measure(
    port: int, master: int, token: str, connections: int, seconds: float
) -> dict[str, float]:
    payload = request_bytes(port, token)
    asyncio.run(load(port, payload, connections, min(2.0, seconds)))  # warm-up
    cpu, own = server_cpu(master), time.process_time()
    out = asyncio.run(load(port, payload, connections, seconds))
    served = out["rps"] * seconds
    # Where the time goes: the workers' CPU per request, and the load generator's (it shares
    # the machine's cores with the server).
    out["cpu_ms"] = (server_cpu(master) - cpu) / served * 1000
    out["client_cpu_ms"] = (time.process_time() - own) / served * 1000
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU, {platform.platform()}, Python {platform.python_version()}")

    instance = Path(tempfile.mkdtemp(prefix="bench-http-"))
    env = {
        **os.environ,
        "CONSENT_LEDGER_INSTANCE_PATH": str(instance),
        "CONSENT_LEDGER_WRITE_RATE_LIMIT": "off",
        "CONSENT_LEDGER_DECISION_RATE_LIMIT": "off",
    }
    cli(env, "init")
    cli(env, "orgs", "import", str(REPO / "policies" / "organisations.example.yaml"))
    token = json.loads(
        cli(env, "clients", "create", "--org", "tt-leeds", "--role", "case_system", "--json")
    )["token"]

    port, bare_port = free_port(), free_port()
    ledger_proc = subprocess.Popen(
        [
            str(BIN / "consent-ledger"),
            "serve",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    bare_proc = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "--workers",
            str(args.workers),
            "--bind",
            f"127.0.0.1:{bare_port}",
            "--no-control-socket",
            "bench.bare_app:app",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", ledger_proc)
        wait_ready(f"http://127.0.0.1:{bare_port}/nowhere-404-is-fine", bare_proc)
    except RuntimeError:
        pass
    try:
        # One consent, so the decisions measured are permits that rely on it.
        consent = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/consents",
            data=json.dumps(
                {
                    "subject": {"nhs_number": NHS},
                    "purpose": "referral",
                    "recipients": ["ea-tt-leeds"],
                    "data_categories": ["identity", "service_status"],
                    "form": "verbal",
                }
            ).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        urllib.request.urlopen(consent, timeout=10)  # noqa: S310
        rows = []
        for run in range(args.runs):
            order = [("bare", bare_port, bare_proc.pid), ("ledger", port, ledger_proc.pid)]
            if run % 2:
                order.reverse()
            got = {
                name: measure(p, pid, token, args.connections, args.seconds)
                for name, p, pid in order
            }
            rows.append(got)
            b, c = got["bare"], got["ledger"]
            print(
                f"run {run}: bare Flask {b['rps']:7.0f}/s p50 {b['p50']:5.1f} ms "
                f"p99 {b['p99']:5.1f} ms | consent-ledger {c['rps']:7.0f}/s "
                f"p50 {c['p50']:5.1f} ms p99 {c['p99']:5.1f} ms | "
                f"throughput ratio {c['rps'] / b['rps']:.2f}\n"
                f"       worker CPU per request: bare {b['cpu_ms']:.2f} ms, consent-ledger "
                f"{c['cpu_ms']:.2f} ms; load generator {b['client_cpu_ms']:.2f} / "
                f"{c['client_cpu_ms']:.2f} ms"
            )
        ratios = [r["ledger"]["rps"] / r["bare"]["rps"] for r in rows]
        print(f"median throughput ratio {statistics.median(ratios):.2f}")
    finally:
        for proc in (ledger_proc, bare_proc):
            proc.terminate()
            proc.wait(timeout=20)


if __name__ == "__main__":
    main()
