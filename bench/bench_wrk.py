"""Benchmark of writes over HTTP with ``wrk`` (not a test), against baselines in the same run.

The load comes from ``wrk`` (C, Debian's package), so the load generator does not hold the
server down on a small machine as a Python one does. Each request is a ``POST`` with a bearer
token and a JSON body; the bodies rotate over several people (a Lua script). Every server,
consent-ledger's and the baseline's, runs under gunicorn with the options ``consent-ledger
serve`` uses (``bench/serve.py``): the same worker class, workers and threads.

Measured, interleaved in every run (the order alternates between runs):
- ``bare``: ``bench/bare_app.py``, a Flask app that only parses the same JSON and answers, the
  ceiling for this stack (decisions are compared with it);
- ``raw``: one-row commits from one client with the service's durability settings
  (``bench/raw_commits.py``), the floor any durable write pays (consents are compared with it);
- consent-ledger itself, per target: ``decisions`` (``POST /v1/decisions``, permits relying on
  a recorded consent), ``consents`` (``POST /v1/consents``), and ``decisions-list`` (the list
  form of ``POST /v1/decisions``, several shares per request; counted in decisions).

Printed per run and target: requests/s (and decisions/s for the list form), p50 and p99
latency (wrk ``--latency``), the ratio to the baseline, the workers' CPU per request (from
/proc), and the non-2xx count, which must be 0 (the run fails loudly otherwise).

``--instances 2`` runs two instances (separate instance folders with the same keys and the same
database), each its own gunicorn on its own port, and one wrk per instance at the same time
(connections split between them); rates add up, and the worse instance's latencies are shown.
``--database postgresql`` starts a throw-away PostgreSQL 15 (as the tests do, as the
``postgres`` user when run as root) with its durable defaults (fsync on). Rate limits are off.

Usage:
  python bench/bench_wrk.py [--database sqlite|postgresql] [--instances 1|2] [--workers W]
      [--threads T] [--worker-class sync|gthread] [--seconds S] [--runs R] [--connections C]
      [--targets decisions,consents[,decisions-list]] [--sweep 2x1,2x4,4x4]
``--sweep`` runs every WORKERSxTHREADS configuration in turn (threads 1: sync workers unless
``--worker-class gthread``) and ends with a table of them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench_http import free_port, server_cpu
from raw_commits import PostgresCommits, RawCommits, SqliteCommits, rate_for

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_BIN = Path(os.environ.get("CONSENT_LEDGER_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
CATEGORIES = ["identity", "service_status"]


def nhs_numbers(n: int, stem: int = 943_476_000) -> list[str]:
    """``n`` valid NHS numbers (modulus 11 check digit)."""
    out: list[str] = []
    while len(out) < n:
        digits = [int(d) for d in str(stem)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        if check == 11:
            check = 0
        if check != 10:
            out.append(f"{stem}{check}")
        stem += 1
    return out


def decision(nhs: str) -> dict[str, object]:
    return {
        "subject": {"nhs_number": nhs},
        "from": "tt-leeds",
        "to": "ea-tt-leeds",
        "purpose": "referral",
        "data_categories": CATEGORIES,
    }


def consent(nhs: str) -> dict[str, object]:
    return {
        "subject": {"nhs_number": nhs},
        "purpose": "referral",
        "recipients": ["ea-tt-leeds"],
        "data_categories": CATEGORIES,
        "form": "verbal",
    }


@dataclass(frozen=True)
class Target:
    """What wrk sends: ``path`` and one body per person of ``people``; ``per_request``
    writes each."""

    path: str
    body: Callable[[str], object]
    baseline: str  # "bare" or "raw"
    people: list[str]
    per_request: int = 1


# Decisions are about 16 people, each with one consent recorded before the load (so they are
# permits relying on it). Consents are recorded for 1,024 other people: a person's consents are
# loaded by every decision and consent about them, so piling hundreds on 16 people would
# measure that, not the write path.
DECIDED = nhs_numbers(16)
CONSENTING = nhs_numbers(1024, stem=943_500_000)
LIST_SIZE = 4  # shares per request in the list form (a referral to several recipients)

TARGETS = {
    "decisions": Target("/v1/decisions", decision, "bare", DECIDED),
    "consents": Target("/v1/consents", consent, "raw", CONSENTING),
    "decisions-list": Target(
        "/v1/decisions", lambda nhs: [decision(nhs)] * LIST_SIZE, "bare", DECIDED, LIST_SIZE
    ),
}

LUA = """
local bodies = %(bodies)s
local headers = {["Authorization"] = "Bearer %(token)s",
                 ["Content-Type"] = "application/json"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", "%(path)s", headers, bodies[(i %% #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {"requests": %%d, "us": %%d, "p50": %%d, "p99": %%d, "status": %%d, ' ..
    '"connect": %%d, "read": %%d, "write": %%d, "timeout": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
"""


def lua_script(folder: Path, target: Target, token: str) -> Path:
    bodies = [json.dumps(target.body(nhs)) for nhs in target.people]
    # Lua long strings [==[...]==] hold JSON as it is.
    table = "{" + ", ".join(f"[==[{b}]==]" for b in bodies) + "}"
    path = folder / f"{target.path.strip('/').replace('/', '-')}-{target.per_request}.lua"
    path.write_text(LUA % {"bodies": table, "token": token, "path": target.path})
    return path


# -- servers --


@dataclass
class Served:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Config:
    workers: int
    threads: int
    worker_class: str

    def __str__(self) -> str:
        return f"{self.workers} workers x {self.threads} threads ({self.worker_class})"


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Until the server answers anything (the bare app answers 404 to a GET)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=5).close()  # noqa: S310 (loopback only)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def start(app: str, config: Config, env: dict[str, str], log: Path) -> Served:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "bench" / "serve.py"),
            app,
            "--port",
            str(port),
            "--workers",
            str(config.workers),
            "--threads",
            str(config.threads),
            "--worker-class",
            config.worker_class,
        ],
        env=env,
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    served = Served(port, proc)
    wait_ready(served.url + "/healthz", proc)
    return served


def stop(servers: list[Served]) -> None:
    for s in servers:
        s.proc.terminate()
    for s in servers:
        try:
            s.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            s.proc.kill()


# -- instances and databases --


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def throwaway_postgres(base: Path) -> Iterator[tuple[str, str]]:
    """A PostgreSQL 15 server in ``base``, durable (fsync on); yields (SQLAlchemy URL of its
    database ``bench``, psycopg conninfo of its database ``raw``)."""
    home = base / "postgres"  # the server's data, socket and log, owned by its user
    data, sock = home / "data", home / "sock"
    sock.mkdir(parents=True)
    if os.geteuid() == 0:
        os.chmod(base, 0o755)  # noqa: S103 (the postgres user must reach its folder)
        shutil.chown(home, "postgres")
        shutil.chown(sock, "postgres")
    subprocess.run(
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True,
        capture_output=True,
    )
    port = free_port()
    opts = f"-k {sock} -p {port} -c listen_addresses='' -c max_connections=200"
    subprocess.run(
        _as_postgres(
            [
                *(str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts),
                *("-l", str(home / "postgres.log"), "-w", "start"),
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        for db in ("bench", "raw"):
            subprocess.run(
                _as_postgres([str(PG_BIN / "createdb"), "-h", str(sock), "-p", str(port), db]),
                check=True,
                capture_output=True,
            )
        yield (
            f"postgresql+psycopg://postgres@/bench?host={sock}&port={port}",
            f"postgresql://postgres@/raw?host={sock}&port={port}",
        )
    finally:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
            capture_output=True,
            check=False,
        )


def cli(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [str(BIN / "consent-ledger"), *args], env=env, capture_output=True, text=True, check=True
    ).stdout


def make_instances(base: Path, database_url: str | None, count: int) -> list[dict[str, str]]:
    """``count`` instance folders sharing the first one's keys and database; their env."""
    first = base / "instance-1"
    env = {
        **os.environ,
        "CONSENT_LEDGER_INSTANCE_PATH": str(first),
        "CONSENT_LEDGER_WRITE_RATE_LIMIT": "off",
        "CONSENT_LEDGER_DECISION_RATE_LIMIT": "off",
        "CONSENT_LEDGER_DATABASE_URL": database_url
        or f"sqlite:///{first / 'consent-ledger.sqlite3'}",
    }
    cli(env, "init")
    envs = [env]
    for n in range(2, count + 1):
        folder = base / f"instance-{n}"
        folder.mkdir(mode=0o700)
        for key in ("signing-key.pem", "identifier.key"):
            shutil.copy2(first / key, folder / key)
        envs.append({**env, "CONSENT_LEDGER_INSTANCE_PATH": str(folder)})
    return envs


def post(url: str, token: str, body: object) -> None:
    req = urllib.request.Request(  # noqa: S310 (loopback only)
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (loopback only)
        assert resp.status in (200, 201), resp.status


# -- measuring --


def wrk(url: str, script: Path, connections: int, seconds: float) -> dict[str, int]:
    done = subprocess.run(
        [
            *("wrk", "-t", str(min(2, connections)), "-c", str(connections)),
            *("-d", f"{seconds:.0f}s", "--latency", "-s", str(script), url),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return dict(json.loads(line.removeprefix("RESULT ")))


def load(servers: list[Served], script: Path, connections: int, seconds: float) -> dict[str, float]:
    """One wrk per server at the same time, connections split between them."""
    share = max(1, connections // len(servers))
    cpu = sum(server_cpu(s.proc.pid) for s in servers)
    with ThreadPoolExecutor(len(servers)) as pool:
        results = list(pool.map(lambda s: wrk(s.url, script, share, seconds), servers))
    cpu = sum(server_cpu(s.proc.pid) for s in servers) - cpu
    requests = sum(r["requests"] for r in results)
    errors = {k: sum(r[k] for r in results) for k in ("status", "connect", "read", "write")}
    errors["timeout"] = sum(r["timeout"] for r in results)
    if any(errors.values()):
        raise RuntimeError(
            f"wrk saw errors against {script.name} (status: non-2xx answers): {errors}"
        )
    return {
        "rps": sum(r["requests"] / (r["us"] / 1e6) for r in results),
        "p50": max(r["p50"] for r in results) / 1000,
        "p99": max(r["p99"] for r in results) / 1000,
        "cpu_ms": cpu / requests * 1000,
        "non2xx": errors["status"],
    }


def bench_config(
    args: argparse.Namespace,
    config: Config,
    folder: Path,
    database_url: str | None,
    raw: RawCommits,
    raw_next: list[int],
) -> dict[str, list[dict[str, float]]]:
    """Every run of every target for one configuration; prints a line per run."""
    log = folder / "servers.log"
    envs = make_instances(folder, database_url, args.instances)
    cli(envs[0], "orgs", "import", str(REPO / "policies" / "organisations.example.yaml"))
    token = json.loads(
        cli(envs[0], "clients", "create", "--org", "tt-leeds", "--role", "case_system", "--json")
    )["token"]
    ledgers = [start("ledger", config, env, log) for env in envs]
    bares = [start("bare", config, envs[0], log) for _ in envs]
    results: dict[str, list[dict[str, float]]] = {}
    try:
        for nhs in DECIDED:  # the decisions measured are permits relying on these
            post(ledgers[0].url + "/v1/consents", token, consent(nhs))
        # The bare app always answers single decisions: the ceiling per request.
        bare_script = lua_script(folder, TARGETS["decisions"], token)
        scripts = {name: lua_script(folder, TARGETS[name], token) for name in args.targets}

        def over_http(servers: list[Served], script: Path) -> dict[str, float]:
            load(servers, script, args.connections, min(2.0, args.seconds))  # warm-up
            return load(servers, script, args.connections, args.seconds)

        def raw_rate() -> dict[str, float]:
            rate, raw_next[0] = rate_for(raw, args.seconds, raw_next[0])
            return {"rps": rate}

        steps: list[tuple[str, Callable[[], dict[str, float]]]] = [
            ("bare", functools.partial(over_http, bares, bare_script))
        ]
        if any(TARGETS[name].baseline == "raw" for name in args.targets):
            steps.append(("raw", raw_rate))
        steps += [(n, functools.partial(over_http, ledgers, scripts[n])) for n in args.targets]
        for run in range(args.runs):
            measured = {name: measure() for name, measure in (steps[::-1] if run % 2 else steps)}
            for name, got in measured.items():
                results.setdefault(name, []).append(got)
            print_run(run, config, args, measured)
    finally:
        stop(ledgers + bares)
    # Each ledger worker logs, as it exits, how its writes formed batches (app.server).
    for line in log.read_text(errors="replace").splitlines():
        if " batches, " in line:
            print("  " + json.loads(line).get("message", line) if line.startswith("{") else line)
    return results


def print_run(
    run: int, config: Config, args: argparse.Namespace, measured: dict[str, dict[str, float]]
) -> None:
    bare = measured["bare"]
    print(f"run {run}, {config}, {args.instances} instance(s), {args.database}:")
    print(
        f"  bare Flask       {bare['rps']:7.0f} req/s  p50 {bare['p50']:6.1f} ms  "
        f"p99 {bare['p99']:6.1f} ms  CPU {bare['cpu_ms']:.2f} ms/req  non-2xx 0"
    )
    if "raw" in measured:
        print(f"  raw commits      {measured['raw']['rps']:7.0f} /s (one client)")
    for name in args.targets:
        got, target = measured[name], TARGETS[name]
        base = measured[target.baseline]["rps"]
        writes = got["rps"] * target.per_request
        extra = f" = {writes:.0f} decisions/s" if target.per_request > 1 else ""
        print(
            f"  {name:16} {got['rps']:7.0f} req/s{extra}  p50 {got['p50']:6.1f} ms  "
            f"p99 {got['p99']:6.1f} ms  CPU {got['cpu_ms']:.2f} ms/req  non-2xx "
            f"{got['non2xx']:.0f}  ratio to {target.baseline} {writes / base:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--instances", type=int, choices=[1, 2], default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker-class", choices=["sync", "gthread"])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--targets",
        type=lambda s: s.split(","),
        default=["decisions", "consents"],
        help=f"comma-separated, of {', '.join(TARGETS)}",
    )
    parser.add_argument(
        "--sweep", type=lambda s: s.split(","), help="WORKERSxTHREADS,... e.g. 2x1,2x4,4x4"
    )
    args = parser.parse_args()
    if unknown := set(args.targets) - set(TARGETS):
        parser.error(f"unknown targets {sorted(unknown)}")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (apt-get install wrk)")
    shapes = [tuple(int(n) for n in s.split("x")) for s in args.sweep or []]
    shapes = shapes or [(args.workers, args.threads)]
    configs = []
    for workers, threads in shapes:
        worker_class = args.worker_class or ("gthread" if threads > 1 else "sync")
        if worker_class == "sync" and threads > 1:
            parser.error("sync workers have one thread")
        configs.append(Config(workers, threads, worker_class))
    print(f"{os.cpu_count()} CPU, {platform.platform()}, Python {platform.python_version()}")
    print(f"wrk, {args.connections} connections, {args.seconds:.0f} s per measurement")

    base = Path(tempfile.mkdtemp(prefix="bench-wrk-"))
    summary: list[tuple[Config, dict[str, list[dict[str, float]]]]] = []
    try:
        with contextlib.ExitStack() as stack:
            database_url, raw = None, None
            if args.database == "postgresql":
                database_url, raw_conninfo = stack.enter_context(throwaway_postgres(base))
                raw = PostgresCommits(raw_conninfo)
            else:
                raw = SqliteCommits(base / "raw.sqlite3")
            stack.callback(raw.close)
            raw_next = [0]  # the raw table's next index, across runs and configurations
            for n, config in enumerate(configs):
                folder = base / f"config-{n}"
                folder.mkdir()
                if database_url is not None and n:
                    database_url = fresh_database(database_url, n)
                results = bench_config(args, config, folder, database_url, raw, raw_next)
                summary.append((config, results))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if len(summary) > 1:
        print_sweep(args, summary)


def fresh_database(url: str, n: int) -> str:
    """A new empty database on the same throw-away server, so each configuration starts from
    an empty log as on SQLite."""
    name = f"bench{n}"
    host = url.split("host=")[1].split("&")[0]
    port = url.split("port=")[1]
    subprocess.run(
        _as_postgres([str(PG_BIN / "createdb"), "-h", host, "-p", port, name]),
        check=True,
        capture_output=True,
    )
    return url.replace("/bench?", f"/{name}?")


def print_sweep(
    args: argparse.Namespace, summary: list[tuple[Config, dict[str, list[dict[str, float]]]]]
) -> None:
    print("\nmedians over runs:")
    for config, results in summary:
        cells = [f"bare {statistics.median(r['rps'] for r in results['bare']):6.0f}/s"]
        for name in args.targets:
            target = TARGETS[name]
            ratio = statistics.median(
                got["rps"] * target.per_request / base["rps"]
                for got, base in zip(results[name], results[target.baseline], strict=True)
            )
            rps = statistics.median(r["rps"] for r in results[name])
            p99 = statistics.median(r["p99"] for r in results[name])
            cells.append(f"{name} {rps:6.0f}/s p99 {p99:5.1f} ms ({ratio:.2f})")
        print(f"  {config!s:32} " + " | ".join(cells))


if __name__ == "__main__":
    main()
