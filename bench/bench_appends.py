"""Benchmark of appends (not a test): consents recorded per second, each a signed log append.

Three rates, measured in the same run, in the same folder, one write per transaction:

- **raw**: one-row SQLite transactions through the ``sqlite3`` module with the service's
  settings (WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE``): the floor any durable write pays;
- **pymerkle**: ``pymerkle.SqliteTree.append_entry`` of the same leaf bytes, its connection set
  to the same WAL / ``synchronous=FULL``: a Merkle log that stores leaves only (no nodes, no
  signed checkpoint; its roots are computed when asked for);
- **consent-ledger**: ``consents.record_consent``, the whole ``POST /v1/consents`` use case
  after parsing: log-head lock, subject mapping, validation against the registry, the signed
  RFC 9162 append (nodes, checkpoint), the projection rows, and the published-checkpoint record.

Usage: python bench/bench_appends.py [--n N] [--runs R]
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from alembic import command as alembic_command
from pymerkle import SqliteTree
from raw_commits import SqliteCommits

from app.cli import alembic_config
from app.config import Settings
from app.ledger.entry import encode_entry
from app.services import organisations
from app.services.access import clients
from app.services.consents.consents import ConsentInput, record_consent
from app.services.consents.subjects import InvalidNhsNumber, SubjectIdentifier, normalise_nhs_number
from app.services.container import Ledger
from app.services.log import keys
from app.services.log.log_store import make_entry

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPU ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


def rate(n: int, fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def nhs_numbers(n: int) -> list[str]:
    """``n`` valid NHS numbers: for each nine-digit stem, the check digit the service accepts."""
    out: list[str] = []
    stem = 943_476_000
    while len(out) < n:
        for digit in range(10):
            try:
                out.append(normalise_nhs_number(f"{stem}{digit}"))
                break
            except InvalidNhsNumber:
                continue
        stem += 1
    return out


def one_run(run: int, leaves: list[bytes], people: list[str]) -> dict[str, float]:
    n = len(leaves)
    tmp = Path(tempfile.mkdtemp(prefix="bench-appends-"))

    raw_db = SqliteCommits(tmp / "raw.sqlite3")

    def raw() -> None:
        for i, leaf in enumerate(leaves):
            raw_db.commit(i, leaf)

    tree = SqliteTree(str(tmp / "pymerkle.sqlite3"))
    tree.con.execute("PRAGMA journal_mode=WAL")
    tree.con.execute("PRAGMA synchronous=FULL")

    def merkle() -> None:
        for leaf in leaves:
            tree.append_entry(leaf)

    settings = Settings(instance_path=tmp, database_url=f"sqlite:///{tmp / 'ledger.sqlite3'}")
    keys.ensure_keys(settings)
    ledger = Ledger(settings)
    alembic_command.upgrade(alembic_config(ledger), "head")
    orgs_file = REPO / "policies" / "organisations.example.yaml"
    organisations.import_organisations(
        ledger, organisations.read_organisation_file(orgs_file), str(orgs_file)
    )
    client = clients.create_client(ledger, "tt-leeds", "case_system", None)
    principal = clients.authenticate(ledger, f"Bearer {client.token}")

    def ledger_appends() -> None:
        for nhs in people:
            record_consent(
                ledger,
                principal,
                ConsentInput(
                    subject=SubjectIdentifier.nhs_number(nhs),
                    purpose="referral",
                    recipients=("ea-tt-leeds",),
                    data_categories=("identity", "service_status"),
                    form="verbal",
                ),
                None,
            )

    # Alternate the order between runs so drift on a noisy machine favours none of them.
    order = [("raw", raw), ("pymerkle", merkle), ("consent-ledger", ledger_appends)]
    if run % 2:
        order.reverse()
    out = {name: rate(n, fn) for name, fn in order}
    raw_db.close()
    tree.close()
    ledger.db.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    n = args.n
    print(machine(), file=sys.stderr)
    leaves = [
        encode_entry(make_entry("consent.granted", NOW, {"n": i, "pad": "x" * 250}))
        for i in range(n)
    ]
    people = nhs_numbers(n)

    results: dict[str, list[float]] = {"raw": [], "pymerkle": [], "consent-ledger": []}
    for run in range(args.runs):
        for name, value in one_run(run, leaves, people).items():
            results[name].append(value)

    def spread(values: list[float]) -> str:
        return f"{min(values):7.0f}-{max(values):7.0f}/s (median {statistics.median(values):.0f})"

    raws = results["raw"]
    for name in ("raw", "pymerkle", "consent-ledger"):
        ratios = [v / r for v, r in zip(results[name], raws, strict=True)]
        print(
            f"{name:15} {spread(results[name])}  of raw: "
            f"{min(ratios) * 100:5.1f}-{max(ratios) * 100:5.1f}%"
        )


if __name__ == "__main__":
    main()
