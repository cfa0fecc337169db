"""Benchmark (not a test): one benchmark of this tree against the same benchmark of an earlier
revision, interleaved in one run, so the ratio says what a change costs on a noisy machine.

The earlier revision is checked out with ``git worktree add --detach`` into a temporary folder
and run with ``PYTHONPATH`` pointing at it (its ``app`` package is imported instead of this
tree's); each round runs the benchmark once for each revision, alternating which goes first.
Every figure the benchmark prints that matches ``--figure`` (a regular expression whose first
group is a number) is collected; the ratio printed is this tree's median over the earlier
revision's.

Usage: python bench/bench_revisions.py BASE [--rounds 4] [--figure REGEX] -- COMMAND...
   e.g. python bench/bench_revisions.py 86298a7 --figure 'consent-ledger .*median (\\d+)' \\
            -- bench/bench_appends.py --n 1000 --runs 1
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_once(tree: Path, command: list[str], figure: re.Pattern[str]) -> float:
    env = {**os.environ, "PYTHONPATH": f"{tree}:{tree / 'bench'}"}
    # The benchmark script is always this tree's, so both revisions run the same measurement.
    done = subprocess.run(
        [sys.executable, *command], cwd=tree, env=env, capture_output=True, text=True, check=True
    )
    found = figure.search(done.stdout)
    if found is None:
        raise SystemExit(f"no figure matching {figure.pattern!r} in:\n{done.stdout}")
    return float(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base", help="the earlier revision (a commit, tag or branch)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--figure", required=True, help="regex; its first group is the figure")
    parser.add_argument("command", nargs="+", help="the benchmark, after --")
    args = parser.parse_args()
    figure = re.compile(args.figure)
    script = Path(args.command[0])
    command = [str((REPO / script).resolve()), *args.command[1:]]

    with tempfile.TemporaryDirectory(prefix="bench-base-") as tmp:
        base = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(base), args.base],
            check=True,
            capture_output=True,
        )
        try:
            figures: dict[str, list[float]] = {"base": [], "this": []}
            for round_ in range(args.rounds):
                order = [("base", base), ("this", REPO)]
                if round_ % 2:
                    order.reverse()
                for name, tree in order:
                    figures[name].append(run_once(tree, command, figure))
                print(
                    f"round {round_ + 1}/{args.rounds}: base {figures['base'][-1]:.4g}, "
                    f"this {figures['this'][-1]:.4g}",
                    file=sys.stderr,
                )
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], check=True
            )
    base_median = statistics.median(figures["base"])
    this_median = statistics.median(figures["this"])
    print(f"base {args.base}: {', '.join(f'{v:.4g}' for v in figures['base'])}")
    print(f"this tree:  {', '.join(f'{v:.4g}' for v in figures['this'])}")
    print(f"ratio of medians (this / base): {this_median / base_median:.3f}")


if __name__ == "__main__":
    main()
