"""Serve consent-ledger or the bare Flask baseline under gunicorn with the options
``consent-ledger serve`` uses (``app.server.gunicorn_options``), so a benchmark compares the
applications and nothing else. ``--worker-class`` can also pick gthread with one thread,
which ``serve`` itself does not offer.

Usage: python bench/serve.py {ledger,bare} --port P --workers W --threads T
       [--worker-class sync|gthread]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.server import WORKER_CLASSES, gunicorn_options, run, served_app


def bare() -> object:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bare_app

    return bare_app.app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("app", choices=["ledger", "bare"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker-class", choices=sorted(WORKER_CLASSES))
    args = parser.parse_args()
    worker_class = args.worker_class or ("gthread" if args.threads > 1 else "sync")
    if worker_class == "sync" and args.threads > 1:
        parser.error("sync workers have one thread")
    options = gunicorn_options("127.0.0.1", args.port, args.workers, args.threads, 30, worker_class)
    run(options, served_app if args.app == "ledger" else bare)


if __name__ == "__main__":
    main()
