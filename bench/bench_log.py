"""Benchmarks of the log store (not tests): append, inclusion proofs, offline verification.

Each figure is compared with a baseline measured in the same run on the same database, and the
ratio is what BENCHMARKS.md records, because these machines are noisy:

- append: one signed, Merkle-tree append per transaction vs. inserting the same leaf bytes into
  a plain table, one transaction each (so the ratio is the cost of the tree and the signature);
- proof: an inclusion proof served from stored nodes vs. fetching the entry by primary key;
- verify: `verify_log` over the whole log vs. reading and SHA-256 hashing every leaf.

Usage: python bench/bench_log.py [--entries N] [--database-url URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from alembic import command as alembic_command
from sqlalchemy import Column, Integer, LargeBinary, MetaData, Table, insert, select

from app.cli import alembic_config
from app.config import Settings
from app.ledger import merkle
from app.models import LogEntry
from app.services.container import Ledger
from app.services.log import keys
from app.services.log.log_store import make_entry
from app.services.log.verify import verify_log

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    n = args.entries
    tmp = Path(tempfile.mkdtemp(prefix="bench-log-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.sqlite3'}"
    settings = Settings(instance_path=tmp, database_url=url)
    keys.ensure_keys(settings)
    ledger = Ledger(settings, clock=lambda: NOW)
    alembic_command.upgrade(alembic_config(ledger), "head")
    scratch = Table(
        "bench_plain",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("leaf", LargeBinary, nullable=False),
    )
    scratch.create(ledger.db.write_engine)

    entries = [make_entry("bench.entry", NOW, {"n": i, "pad": "x" * 200}) for i in range(n)]
    from app.ledger.entry import encode_entry

    leaves = [encode_entry(e) for e in entries]

    def plain() -> None:
        for i, leaf in enumerate(leaves):
            with ledger.db.write() as s:
                s.execute(insert(scratch).values(id=i, leaf=leaf))

    def append() -> None:
        for e in entries:
            with ledger.db.write() as s:
                ledger.log_store.append(s, [e], NOW)

    t_plain = timed(plain)
    t_append = timed(append)
    print(
        f"append  entries={n}  plain insert {n / t_plain:8.0f}/s  "
        f"ledger append {n / t_append:8.0f}/s  ratio {t_append / t_plain:5.2f}"
    )

    rng = random.Random(7)
    picks = [rng.randrange(n) for _ in range(500)]
    with ledger.db.read() as s:
        t_get = timed(lambda: [s.get(LogEntry, i) for i in picks]) / len(picks)
        s.expunge_all()
        t_proof = timed(lambda: [ledger.log_store.inclusion_proof(s, i, n) for i in picks])
        t_proof /= len(picks)
    print(
        f"proof   size={n}  get by key {t_get * 1e6:8.1f} us  "
        f"inclusion proof {t_proof * 1e6:8.1f} us  ratio {t_proof / t_get:5.2f}"
    )

    def hash_all() -> None:
        with ledger.db.read() as s:
            for leaf in s.execute(select(LogEntry.leaf).order_by(LogEntry.idx)).scalars():
                merkle.leaf_hash(leaf)

    def verify() -> None:
        with ledger.db.read() as s:
            assert verify_log(s, ledger.keyring()).ok

    t_hash = statistics.median(timed(hash_all) for _ in range(3))
    t_verify = statistics.median(timed(verify) for _ in range(3))
    print(
        f"verify  entries={n}  read+hash {n / t_hash:8.0f}/s  "
        f"verify_log {n / t_verify:8.0f}/s  ratio {t_verify / t_hash:5.2f}"
    )
    ledger.db.dispose()


if __name__ == "__main__":
    main()
