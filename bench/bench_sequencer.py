"""Benchmark (not a test): what batching in the sequencer buys, without HTTP in the way.

Threads of one process make decisions through the service layer (``decisions.decide``), as the
request threads of a gthread worker do, on one instance. The baseline, in the same run and
with the same threads, is the sequencer limited to batches of one (``max_batch=1``): one
transaction, one signed checkpoint, one commit and one record write per decision, as the write
path was before batching. Printed per setting: decisions/s, p50/p99 latency, the mean batch,
and the time the log head is held per entry (head locked to commit returned, the published
record's write included), whose inverse is the ceiling of a cluster sharing one database.

Usage: python bench/bench_sequencer.py [--threads 1,4,16] [--seconds 5] [--runs 2]
                                       [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from alembic import command as alembic_command

from app import create_app, get_ledger
from app.cli import alembic_config
from app.services import organisations
from app.services.access import clients
from app.services.consents import consents
from app.services.consents.subjects import SubjectIdentifier
from app.services.container import Ledger
from app.services.decisions import decisions, policies
from app.services.log import keys
from app.services.log.sequencer import SequencerStats

CATEGORIES = ("identity", "service_status")
PEOPLE = 64


def nhs_numbers(count: int, start: int = 943_470_000) -> list[str]:
    out = []
    n = start
    while len(out) < count:
        digits = f"{n:09d}"
        check = 11 - sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            out.append(digits + str(check))
        n += 1
    return out


def set_up(database_url: str | None) -> Ledger:
    tmp = Path(tempfile.mkdtemp(prefix="bench-seq-"))
    config = {"INSTANCE_PATH": str(tmp)}
    if database_url:
        config["DATABASE_URL"] = database_url
    ledger = get_ledger(create_app(config))
    keys.ensure_keys(ledger.settings)
    alembic_command.upgrade(alembic_config(ledger), "head")
    orgs = policies.REPO_POLICIES / "organisations.example.yaml"
    organisations.import_organisations(ledger, organisations.read_organisation_file(orgs), "x")
    policies.publish(ledger, policies.parse_policy_file(policies.DEFAULT_POLICY_FILE))
    return ledger


def run(ledger: Ledger, threads: int, seconds: float, max_batch: int) -> dict[str, float]:
    token = clients.create_client(ledger, "tt-leeds", "case_system", None).token
    principal = clients.authenticate(ledger, f"Bearer {token}")
    people = nhs_numbers(PEOPLE)
    for nhs in people:
        consents.record_consent(
            ledger,
            principal,
            consents.ConsentInput(
                SubjectIdentifier.nhs_number(nhs),
                "referral",
                ("ea-tt-leeds",),
                CATEGORIES,
                "verbal",
            ),
            None,
        )
    sequencer = ledger.sequencer
    sequencer.max_batch = max_batch
    latencies: list[list[float]] = [[] for _ in range(threads)]
    start_line = threading.Barrier(threads + 1)
    stop_at = 0.0

    def worker(n: int) -> None:
        mine = latencies[n]
        inputs = [
            decisions.DecisionInput(
                SubjectIdentifier.nhs_number(people[(n + k * threads) % PEOPLE]),
                "tt-leeds",
                "ea-tt-leeds",
                "referral",
                CATEGORIES,
            )
            for k in range(8)
        ]
        start_line.wait()
        k = 0
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                return
            decisions.decide(ledger, principal, inputs[k % len(inputs)], None)
            mine.append(time.perf_counter() - began)
            k += 1

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    sequencer.stats = SequencerStats()
    stop_at = time.perf_counter() + seconds
    began = time.perf_counter()
    start_line.wait()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - began
    stats = sequencer.stats
    all_latencies = sorted(x for mine in latencies for x in mine)
    done = len(all_latencies)
    return {
        "rate": done / elapsed,
        "p50": statistics.median(all_latencies) * 1e3,
        "p99": all_latencies[int(done * 0.99) - 1] * 1e3,
        "batch": stats.requests / stats.batches if stats.batches else 0.0,
        "held_us": stats.held_s / stats.entries * 1e6 if stats.entries else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    ledger = set_up(args.database_url)
    print(f"database: {ledger.db.dialect}")
    print("threads  batches      decisions/s   p50 ms   p99 ms  mean batch  head held/entry  ratio")
    for threads in (int(t) for t in args.threads.split(",")):
        for _ in range(args.runs):
            one = run(ledger, threads, args.seconds, max_batch=1)
            many = run(ledger, threads, args.seconds, max_batch=64)
            for label, r in (("of 1", one), ("<= 64", many)):
                print(
                    f"{threads:7d}  {label:6s}  {r['rate']:14.0f}  {r['p50']:7.1f}  "
                    f"{r['p99']:7.1f}  {r['batch']:10.1f}  {r['held_us']:12.0f} µs  "
                    f"{r['rate'] / one['rate']:5.2f}"
                )
    ledger.db.dispose()


if __name__ == "__main__":
    main()
