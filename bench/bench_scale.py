"""Benchmarks of the log at scale (not tests): proofs, verification and worker memory.

For each log size (default 10k, 100k and 1M entries):

- proofs: inclusion proofs (random index, at the head, as the API serves them) and consistency
  proofs (between two random sizes), timed one by one, median and p99, against the baseline of
  fetching one entry by primary key, interleaved with them in the same session;
- verify: ``verify_log`` over the whole log (what ``consent-ledger verify`` runs) against the
  hashing floor: reading every leaf from the database through the driver and SHA-256-ing it
  (``SHA-256(0x00 || leaf)``, as verification must). The checkpoints checked are counted,
  and the cost of one Ed25519 checkpoint verification is measured on its own, because a log
  written one entry per transaction stores one checkpoint per entry. The ``consent-ledger
  verify`` command is also run once, as a subprocess (its wall time includes start-up);
- memory (``--memory``): the real server (``consent-ledger serve --workers 1``) started on
  each log, a few hundred proof requests made to it over 127.0.0.1, then the gunicorn
  worker's VmRSS and VmHWM read from /proc, against a worker on a log holding only the
  set-up entries (organisations and one client), started in the same run.

Logs are built once and cached as instance folders (keys, SQLite database, published-checkpoint
record and an auditor token) under ``--workdir``; re-runs reuse them. A log is built through
``LogStore.append`` in batches (``--batch`` entries per transaction, one signed checkpoint per
batch), with consent.granted-shaped entries (leaves of about 540 bytes). An interrupted build
resumes. SQLite only (the cache is files). The proofs' baselines are a primary-key read through
the ORM (as BENCHMARKS.md uses) and through the bare sqlite3 driver; the database file is read
once before timing, so figures are for a warm OS page cache.

Usage: python bench/bench_scale.py [--sizes 10000,100000,1000000] [--workdir bench/.cache]
       [--batch 2000] [--proofs 1000] [--verify-runs 3] [--memory] [--requests 300]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from alembic import command as alembic_command
from sqlalchemy import select

from app.cli import alembic_config
from app.config import Settings, default_database_url
from app.ledger import merkle
from app.models import LogCheckpoint, LogEntry, LogHead
from app.services import organisations
from app.services.access import clients
from app.services.container import Ledger
from app.services.log import keys
from app.services.log.log_store import make_entry
from app.services.log.verify import verify_log
from app.vocabulary import CONSENT_FORMS, DATA_CATEGORIES, PURPOSES, SIGNED_FORMS

REPO = Path(__file__).resolve().parent.parent
ORGS_FILE = REPO / "policies" / "organisations.example.yaml"
CLI = str(Path(sys.executable).with_name("consent-ledger"))
NOW = datetime(2026, 11, 25, tzinfo=UTC)
CLIENT_FILE = "bench-client.json"
BUILT_FILE = "bench-built.json"
DB_FILE = "consent-ledger.sqlite3"  # default_database_url's file name
GENERATOR = 1  # bump when the entries a build writes change, so old caches are not reused


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- building ---------------------------------------------------------------------------------


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def consent_entry(rng: random.Random, i: int, org_ids: Sequence[str]) -> dict[str, Any]:
    """An entry shaped like the one ``record_consent`` writes (consent.granted)."""
    t = NOW + timedelta(seconds=i)
    form = rng.choice(CONSENT_FORMS)
    return make_entry(
        "consent.granted",
        t,
        {
            "consent_id": "cns_" + rng.randbytes(16).hex(),
            "subject_ref": "sub_" + rng.randbytes(16).hex(),
            "purpose": rng.choice(PURPOSES),
            "recipients": rng.sample(list(org_ids), k=rng.randint(1, 2)),
            "data_categories": rng.sample(DATA_CATEGORIES, k=rng.randint(1, 4)),
            "form": form,
            "evidence_sha256": rng.randbytes(32).hex() if form in SIGNED_FORMS else None,
            "valid_from": _iso(t),
            "expires_at": _iso(t + timedelta(days=365)),
            "recorded_by": rng.choice(list(org_ids)),
            "client_id": "cl_" + rng.randbytes(8).hex(),
        },
    )


def instance_settings(instance: Path) -> Settings:
    return Settings(instance_path=instance, database_url=default_database_url(instance))


@dataclass
class BuiltLog:
    size: int
    instance: Path
    token: str
    checkpoints: int


def build_log(workdir: Path, size: int, batch: int) -> BuiltLog:
    """The instance folder holding a log of exactly ``size`` entries, built or resumed.

    Size 0 is the set-up alone (organisations and the auditor client).
    """
    instance = (workdir / f"log-{size}-b{batch}-g{GENERATOR}").resolve()
    built = instance / BUILT_FILE
    if built.exists():
        meta = json.loads(built.read_text())
        token = json.loads((instance / CLIENT_FILE).read_text())["token"]
        return BuiltLog(meta["size"], instance, token, meta["checkpoints"])
    settings = instance_settings(instance)
    keys.ensure_instance_folder(settings)
    keys.ensure_keys(settings)
    ledger = Ledger(settings, clock=lambda: NOW)
    alembic_command.upgrade(alembic_config(ledger), "head")
    try:
        # Set-up, as an operator would: organisations, then an auditor client for the proofs.
        data = organisations.read_organisation_file(ORGS_FILE)
        organisations.import_organisations(ledger, data, str(ORGS_FILE))
        token_path = instance / CLIENT_FILE
        if not token_path.exists():
            created = clients.create_client(ledger, "tt-leeds", "auditor", "bench auditor")
            fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"client_id": created.client_id, "token": created.token}, f)
        token = json.loads(token_path.read_text())["token"]
        org_ids = [o.id for o in organisations.list_organisations(ledger)]
        with ledger.db.read() as s:
            have = s.execute(select(LogHead.size)).scalar_one()
        size = size or have
        if have > size:
            raise SystemExit(f"{instance}: the set-up alone writes {have} entries (> {size})")
        rng = random.Random(f"bench-scale-{size}-{have}")
        start = time.perf_counter()
        last_report = 0.0
        done = have
        while done < size:
            n = min(batch, size - done)
            entries = [consent_entry(rng, done + k, org_ids) for k in range(n)]
            with ledger.db.write() as s:
                ledger.log_store.append(s, entries, NOW + timedelta(seconds=done))
            done += n
            elapsed = time.perf_counter() - start
            if elapsed - last_report >= 5 or done == size:
                last_report = elapsed
                rate = (done - have) / elapsed
                eta = (size - done) / rate if rate else 0
                log(
                    f"  building {instance.name}: {done:,}/{size:,} entries "
                    f"({100 * done // size}%), {rate:,.0f}/s, about {eta:,.0f} s left"
                )
        with ledger.db.read() as s:
            checkpoints = len(s.execute(select(LogCheckpoint.tree_size)).all())
            mean_leaf = s.execute(
                select(LogEntry.leaf).where(LogEntry.idx >= max(0, size - 1000))
            ).scalars()
            leaf_bytes = statistics.mean(len(leaf) for leaf in mean_leaf)
    finally:
        ledger.db.dispose()
    built.write_text(
        json.dumps(
            {
                "size": size,
                "batch": batch,
                "checkpoints": checkpoints,
                "mean_leaf_bytes": leaf_bytes,
                "built_at": datetime.now(UTC).isoformat(),
            }
        )
    )
    return BuiltLog(size, instance, token, checkpoints)


# -- statistics -------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs" if seconds >= 1e-4 else f"{seconds * 1e6:,.1f} µs"


# -- proofs -----------------------------------------------------------------------------------


@dataclass
class ProofFigures:
    size: int
    get: list[float]
    raw_get: list[float]
    inclusion: list[float]
    consistency: list[float]


def warm_page_cache(db_file: Path) -> None:
    """Read the database file once, so timings are of a warm OS page cache (this host's
    proactive reclaim evicts pages left cold for a few minutes)."""
    with db_file.open("rb") as f:
        while f.read(1 << 20):
            pass


def bench_proofs(ledger: Ledger, db_file: Path, size: int, count: int, seed: int) -> ProofFigures:
    """Proofs one at a time against two primary-key reads of one entry: through the ORM, as
    the service reads an entry (``session.get``), and through the bare sqlite3 driver."""
    store = ledger.log_store
    rng = random.Random(seed)
    picks = [rng.randrange(size) for _ in range(count)]
    pairs = []
    for _ in range(count):
        a, b = sorted((rng.randint(1, size), rng.randint(1, size)))
        pairs.append((a, b))
    times: list[list[float]] = [[], [], [], []]
    clock = time.perf_counter
    warm_page_cache(db_file)
    raw = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    by_key = "SELECT idx, leaf, leaf_hash, entry_type, created_at FROM log_entries WHERE idx = ?"
    with ledger.db.read() as s:

        def orm_get(i: int) -> None:
            row = s.get(LogEntry, i)
            assert row is not None
            s.expunge(row)  # no identity-map hits when an index repeats

        def raw_get(i: int) -> None:
            assert raw.execute(by_key, (i,)).fetchone() is not None

        # Warm-up (statement caches, SQLite's page cache), then the four interleaved, in a
        # different order each round, so drift and caching favour none of them.
        for k in range(200):
            orm_get(picks[k % count])
            raw_get(picks[k % count])
            store.inclusion_proof(s, picks[k % count], None)
            store.consistency_proof(s, *pairs[k % count])
        order = [0, 1, 2, 3]
        for k in range(count):
            i = picks[k]
            a, b = pairs[k]
            rng.shuffle(order)
            for which in order:
                t0 = clock()
                if which == 0:
                    orm_get(i)
                elif which == 1:
                    raw_get(i)
                elif which == 2:
                    store.inclusion_proof(s, i, None)
                else:
                    store.consistency_proof(s, a, b)
                times[which].append(clock() - t0)
        # The proofs timed are real: check a sample against the newest signed checkpoint.
        latest = store.latest_checkpoint(s)
        assert latest is not None
        signed = store.keys(s).ring.verify(latest.note)
        assert signed.size == size
        for k in range(0, count, max(1, count // 20)):
            p = store.inclusion_proof(s, picks[k], None)
            merkle.verify_inclusion(p.leaf_hash, p.index, p.size, p.hashes, signed.root_hash)
            a, b = pairs[k]
            c = store.consistency_proof(s, a, b)
            merkle.verify_consistency(a, b, c.hashes, c.old_root, c.new_root)
            c = store.consistency_proof(s, a, None)
            merkle.verify_consistency(a, size, c.hashes, c.old_root, signed.root_hash)
    raw.close()
    return ProofFigures(size, *times)


# -- verification -----------------------------------------------------------------------------


def hash_floor(db_file: Path, size: int) -> float:
    """Read every leaf through the sqlite3 driver, in index order, and SHA-256 it."""
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        start = time.perf_counter()
        cur = conn.execute("SELECT leaf FROM log_entries WHERE idx < ? ORDER BY idx", (size,))
        sha = hashlib.sha256
        n = 0
        while rows := cur.fetchmany(10_000):
            for (leaf,) in rows:
                sha(b"\x00" + leaf).digest()
            n += len(rows)
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    assert n == size, (n, size)
    return elapsed


@dataclass
class VerifyFigures:
    size: int
    checkpoints: int
    floor: list[float]
    verify: list[float]
    signature: float
    cli: float | None


def signature_cost(ledger: Ledger, count: int = 300) -> float:
    """One stored checkpoint verified as ``verify_log`` does: parse, Ed25519, body checks."""
    with ledger.db.read() as s:
        notes = list(
            s.execute(select(LogCheckpoint.note).order_by(LogCheckpoint.tree_size).limit(count))
            .scalars()
            .all()
        )
    verifier = ledger.keyring()
    start = time.perf_counter()
    for note in notes:
        verifier.verify(note)
    return (time.perf_counter() - start) / len(notes)


def bench_verify(ledger: Ledger, built: BuiltLog, runs: int, cli: bool) -> VerifyFigures:
    db_file = built.instance / DB_FILE
    floor: list[float] = []
    verify: list[float] = []
    checked = 0
    warm_page_cache(db_file)
    for run in range(runs):
        floor.append(hash_floor(db_file, built.size))
        with ledger.db.read() as s:
            start = time.perf_counter()
            result = verify_log(s, ledger.keyring())
            verify.append(time.perf_counter() - start)
        assert result.ok, result.problem
        checked = result.checkpoints
        log(
            f"  verify run {run + 1}/{runs} at {built.size:,}: floor {floor[-1]:.2f} s, "
            f"verify_log {verify[-1]:.2f} s"
        )
    cli_time = None
    if cli:
        env = {**os.environ, "CONSENT_LEDGER_INSTANCE_PATH": str(built.instance)}
        start = time.perf_counter()
        done = subprocess.run(
            [CLI, "verify", "--quiet"], env=env, capture_output=True, text=True, timeout=3600
        )
        cli_time = time.perf_counter() - start
        assert done.returncode == 0, done.stderr
        assert f"log verified: {built.size} entries" in done.stdout, done.stdout
    return VerifyFigures(built.size, checked, floor, verify, signature_cost(ledger), cli_time)


# -- worker memory ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state not in ("Z", "X"):
            kids.append(int(entry.name))
    return kids


def _status_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0])
    return out


@dataclass
class MemoryFigures:
    size: int
    idle: dict[str, int]
    after: dict[str, int]
    master: dict[str, int]
    requests: int
    latency: list[float]


def bench_memory(built: BuiltLog, n_requests: int, seed: int) -> MemoryFigures:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CONSENT_LEDGER_INSTANCE_PATH": str(built.instance)}
    server_log = built.instance / "bench-server.log"
    with server_log.open("w") as out:
        proc = subprocess.Popen(
            [CLI, "serve", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        http = requests.Session()
        deadline = time.monotonic() + 120
        while True:
            try:
                if http.get(url + "/healthz", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start:\n" + server_log.read_text())
            time.sleep(0.1)
        workers = _children(proc.pid)
        assert len(workers) == 1, workers
        worker = workers[0]
        checkpoint = http.get(url + "/v1/log/checkpoint", timeout=10)
        checkpoint.raise_for_status()
        idle = _status_kib(worker)
        auth = {"Authorization": f"Bearer {built.token}"}
        rng = random.Random(seed)
        latency = []
        for k in range(n_requests):
            if k % 2 == 0:
                path = f"/v1/log/proof/inclusion?index={rng.randrange(built.size)}"
            else:
                path = f"/v1/log/proof/consistency?from={rng.randint(1, built.size)}"
            t0 = time.perf_counter()
            r = http.get(url + path, headers=auth, timeout=30)
            latency.append(time.perf_counter() - t0)
            r.raise_for_status()
        after = _status_kib(worker)
        master = _status_kib(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # our own server's session, nothing else
            proc.wait(timeout=20)
    return MemoryFigures(built.size, idle, after, master, n_requests, latency)


# -- reporting --------------------------------------------------------------------------------


def ratio_range(num: Sequence[float], den: Sequence[float]) -> str:
    ratios = [a / b for a, b in zip(num, den, strict=True)]
    lo, hi = min(ratios), max(ratios)
    return f"{statistics.median(ratios):.2f}" + (f" ({lo:.2f}-{hi:.2f})" if len(ratios) > 1 else "")


def report(
    proofs: list[ProofFigures], verifies: list[VerifyFigures], mems: list[MemoryFigures]
) -> None:
    print()
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")
    print(f"Date: {datetime.now(UTC):%Y-%m-%d}")
    if proofs:
        print("\n### Proofs (per call; baseline: one entry by primary key, same session)\n")
        print(
            "| size | PK read (ORM) median / p99 | PK read (driver) median / p99 "
            "| inclusion median / p99 | ratio to ORM read (median / p99) "
            "| consistency median / p99 | ratio to ORM read (median / p99) |"
        )
        print("|---|---|---|---|---|---|---|")
        for p in proofs:
            g50, g99 = statistics.median(p.get), quantile(p.get, 0.99)
            r50, r99 = statistics.median(p.raw_get), quantile(p.raw_get, 0.99)
            i50, i99 = statistics.median(p.inclusion), quantile(p.inclusion, 0.99)
            c50, c99 = statistics.median(p.consistency), quantile(p.consistency, 0.99)
            print(
                f"| {p.size:,} | {us(g50)} / {us(g99)} | {us(r50)} / {us(r99)} "
                f"| {us(i50)} / {us(i99)} | {i50 / g50:.2f} / {i99 / g99:.2f} "
                f"| {us(c50)} / {us(c99)} | {c50 / g50:.2f} / {c99 / g99:.2f} |"
            )
    if verifies:
        print("\n### verify_log (baseline: read every leaf through the driver and SHA-256 it)\n")
        print(
            "| size | floor (median) | verify_log (median) | ratio (median, range) | µs/entry |"
            " checkpoints | Ed25519 checkpoint check | CLI wall time |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for v in verifies:
            f50, v50 = statistics.median(v.floor), statistics.median(v.verify)
            cli = f"{v.cli:.2f} s ({v.cli / f50:.1f}x floor)" if v.cli is not None else "-"
            print(
                f"| {v.size:,} | {f50:.3f} s ({v.size / f50:,.0f}/s) | {v50:.3f} s "
                f"({v.size / v50:,.0f}/s) | {ratio_range(v.verify, v.floor)} "
                f"| {v50 / v.size * 1e6:.2f} | {v.checkpoints:,} "
                f"| {us(v.signature)} each, {v.checkpoints * v.signature:.3f} s in all | {cli} |"
            )
        v = verifies[-1]
        f50 = statistics.median(v.floor)
        print(
            f"\nOne checkpoint per entry (a log written by single appends) would add about "
            f"{v.size * v.signature:,.0f} s of signature checks at {v.size:,} entries, "
            f"{v.size * v.signature / f50:,.0f}x this floor."
        )
    if len(proofs) > 1 or len(verifies) > 1:
        print("\n### Growth (largest size against smallest)\n")
        if len(proofs) > 1:
            a, b = proofs[0], proofs[-1]
            depth = (b.size - 1).bit_length() / (a.size - 1).bit_length()
            for name, xa, xb in (
                ("PK read (ORM)", a.get, b.get),
                ("PK read (driver)", a.raw_get, b.raw_get),
                ("inclusion proof", a.inclusion, b.inclusion),
                ("consistency proof", a.consistency, b.consistency),
            ):
                print(
                    f"- {name}: median x{statistics.median(xb) / statistics.median(xa):.2f} "
                    f"for x{b.size / a.size:,.0f} entries (tree depth x{depth:.2f})"
                )
        if len(verifies) > 1:
            a2, b2 = verifies[0], verifies[-1]
            pa = statistics.median(a2.verify) / a2.size
            pb = statistics.median(b2.verify) / b2.size
            fa = statistics.median(a2.floor) / a2.size
            fb = statistics.median(b2.floor) / b2.size
            print(
                f"- verify_log per entry: x{pb / pa:.2f}; floor per entry: x{fb / fa:.2f} "
                f"for x{b2.size / a2.size:,.0f} entries (linear when both stay near x1)"
            )
    if mems:
        base = mems[0]
        print(f"\n### Worker memory (baseline: a worker on a log of {base.size:,} entries)\n")
        print(
            "| log size | worker VmRSS idle | VmRSS after requests | VmHWM | ratio (VmHWM) |"
            " RssAnon / RssFile | master VmRSS | request median / p99 |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for m in mems:
            print(
                f"| {m.size:,} | {m.idle['VmRSS'] / 1024:.1f} MiB "
                f"| {m.after['VmRSS'] / 1024:.1f} MiB | {m.after['VmHWM'] / 1024:.1f} MiB "
                f"| {m.after['VmHWM'] / base.after['VmHWM']:.2f} "
                f"| {m.after['RssAnon'] / 1024:.1f} / {m.after['RssFile'] / 1024:.1f} MiB "
                f"| {m.master['VmRSS'] / 1024:.1f} MiB "
                f"| {statistics.median(m.latency) * 1e3:.2f} / "
                f"{quantile(m.latency, 0.99) * 1e3:.2f} ms ({m.requests} requests) |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / ".cache")
    parser.add_argument("--batch", type=int, default=2000, help="entries per append (checkpoint)")
    parser.add_argument("--proofs", type=int, default=1000, help="proofs of each kind per size")
    parser.add_argument("--verify-runs", type=int, default=3)
    parser.add_argument("--no-cli", action="store_true", help="skip the `verify` CLI run")
    parser.add_argument("--memory", action="store_true", help="measure server worker memory")
    parser.add_argument("--requests", type=int, default=300, help="proof requests per server")
    parser.add_argument("--only", choices=("build", "proofs", "verify", "memory"), default=None)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(","))
    args.workdir.mkdir(parents=True, exist_ok=True)

    built = []
    for size in sizes:
        start = time.perf_counter()
        b = build_log(args.workdir, size, args.batch)
        elapsed = time.perf_counter() - start
        log(
            f"log of {b.size:,} entries: {b.instance} "
            f"({b.checkpoints:,} checkpoints, {elapsed:.1f} s)"
        )
        built.append(b)
    if args.only == "build":
        return

    proofs: list[ProofFigures] = []
    verifies: list[VerifyFigures] = []
    mems: list[MemoryFigures] = []
    for b in built:
        if args.only in (None, "proofs", "verify"):
            ledger = Ledger(instance_settings(b.instance), clock=lambda: NOW)
            try:
                if args.only in (None, "proofs"):
                    log(f"proofs at {b.size:,}...")
                    db_file = b.instance / DB_FILE
                    proofs.append(bench_proofs(ledger, db_file, b.size, args.proofs, args.seed))
                if args.only in (None, "verify"):
                    log(f"verify at {b.size:,}...")
                    verifies.append(bench_verify(ledger, b, args.verify_runs, not args.no_cli))
            finally:
                ledger.db.dispose()
    if args.memory or args.only == "memory":
        empty = build_log(args.workdir, 0, args.batch)
        for b in [empty, *built]:
            log(f"server memory at {b.size:,}...")
            mems.append(bench_memory(b, args.requests, args.seed))
    report(proofs, verifies, mems)


if __name__ == "__main__":
    main()
