"""Benchmark (not a test): the two ways to keep the published-checkpoint record durable.

- **replace** (what ``app.services.log.published`` does): write a temporary file, fsync it,
  rename it over the record. The record is never seen torn, and it stays a plain signed note.
- **slot**: overwrite one of two fixed slots of a file kept open, then ``fdatasync``. No new
  inode, no rename, no size change, so only the data is flushed; a torn slot leaves the other.

Run in the folder given (default: a new one under the repository, so on the same disk as an
instance folder). Usage: python bench/bench_record.py [--n N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTE = b"localhost/consent-ledger\n123456\n" + b"A" * 44 + b"\n\n\xe2\x80\x94 " + b"B" * 100 + b"\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-record-", dir=args.dir or REPO / "bench"))
    record, tmp = folder / "newest-checkpoint", folder / "newest-checkpoint.tmp"

    def replace() -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, NOTE)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, record)

    slots = os.open(folder / "slots", os.O_RDWR | os.O_CREAT, 0o600)
    os.pwrite(slots, b"\0" * 8192, 0)
    os.fsync(slots)
    turn = [0]

    def slot() -> None:
        os.pwrite(slots, NOTE, 4096 * (turn[0] % 2))
        turn[0] += 1
        os.fdatasync(slots)

    def per_call(fn: Callable[[], None]) -> float:
        start = time.perf_counter()
        for _ in range(args.n):
            fn()
        return (time.perf_counter() - start) / args.n

    results: dict[str, list[float]] = {"replace": [], "slot": []}
    for _ in range(2):  # alternating, so drift on the host favours neither
        results["replace"].append(per_call(replace))
        results["slot"].append(per_call(slot))
    os.close(slots)
    for name, times in results.items():
        print(f"{name:8} {min(times) * 1e3:.3f}-{max(times) * 1e3:.3f} ms per record")
    print(f"slot / replace {min(results['slot']) / min(results['replace']):.2f}")
    for leftover in folder.iterdir():
        leftover.unlink()
    folder.rmdir()


if __name__ == "__main__":
    main()
