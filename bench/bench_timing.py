"""Benchmark of the "is this person known?" timing side channel (not a test; issue 12, item 3).

An organisation with no record of a person probes three endpoints with the person's NHS number:

- ``GET /v1/consents`` (a case system),
- ``GET /v1/disclosures`` (an IG lead),
- ``POST /v1/subjects/access-links`` (a case system; refused, it has no relationship).

"Known" people have another organisation's records (``--consents`` consents each, a permit and
one disclosure); "unknown" ones were never seen. Probes are interleaved (each round times a known
and an unknown number in random order, a different pair per round) through the Flask test client
in one process, so drift and caches hit both alike. The figures are the medians of each kind and
their ratio; a ratio near 1.00, and a difference near 0 against the spread, is the goal. Timing
over a network (where jitter is larger but a patient attacker averages it away) is not covered.

Usage: python bench/bench_timing.py [--people N] [--rounds R] [--consents C]
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy
from alembic import command as alembic_command

from app import create_app, get_ledger
from app.cli import alembic_config
from app.services import organisations
from app.services.access import clients
from app.services.consents.subjects import InvalidNhsNumber, normalise_nhs_number
from app.services.decisions import policies
from app.services.log import keys

OWNER = "tt-leeds"  # holds the known people's records
RECIPIENT = "ea-tt-leeds"
PROBER = "cmht-leeds-west"  # has no record of anyone


def nhs_numbers(count: int, start: int) -> list[str]:
    found: list[str] = []
    n = start
    while len(found) < count:
        for digit in range(10):
            try:
                found.append(normalise_nhs_number(f"{n}{digit}"))
                break
            except InvalidNhsNumber:
                continue
        n += 1
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=50, help="known and unknown people each")
    parser.add_argument("--rounds", type=int, default=2000, help="probe pairs per endpoint")
    parser.add_argument("--consents", type=int, default=3, help="consents per known person")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-timing-"))
    app = create_app(
        {"INSTANCE_PATH": str(tmp), "WRITE_RATE_LIMIT": "off", "DECISION_RATE_LIMIT": "off"}
    )
    ledger = get_ledger(app)
    keys.ensure_keys(ledger.settings)
    alembic_command.upgrade(alembic_config(ledger), "head")
    orgs = policies.REPO_POLICIES / "organisations.example.yaml"
    organisations.import_organisations(ledger, organisations.read_organisation_file(orgs), "x")
    policies.publish(ledger, policies.parse_policy_file(policies.DEFAULT_POLICY_FILE))

    def auth(org: str, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {clients.create_client(ledger, org, role, None).token}"}

    owner = auth(OWNER, "case_system")
    client = app.test_client()
    known = nhs_numbers(args.people, 943_478_000)
    unknown = nhs_numbers(args.people, 943_488_000)
    for nhs in known:
        subject = {"nhs_number": nhs}
        for purpose in ("referral", "case_conferencing", "evaluation")[: args.consents]:
            consent = {
                "subject": subject,
                "purpose": purpose,
                "recipients": [RECIPIENT],
                "data_categories": ["identity", "service_status"],
                "form": "verbal",
            }
            assert client.post("/v1/consents", headers=owner, json=consent).status_code == 201
        decision = client.post(
            "/v1/decisions",
            headers=owner,
            json={
                "subject": subject,
                "from": OWNER,
                "to": RECIPIENT,
                "purpose": "referral",
                "data_categories": ["identity"],
            },
        ).get_json()
        shared = client.post(
            "/v1/disclosures",
            headers=owner,
            json={"decision_id": decision["id"], "data_categories": ["identity"]},
        )
        assert shared.status_code == 201, shared.text

    case_system, ig_lead = auth(PROBER, "case_system"), auth(PROBER, "ig_lead")
    probes: dict[str, Callable[[str], Any]] = {
        "GET /v1/consents": lambda nhs: client.get(
            "/v1/consents", query_string={"nhs_number": nhs}, headers=case_system
        ),
        "GET /v1/disclosures": lambda nhs: client.get(
            "/v1/disclosures", query_string={"nhs_number": nhs}, headers=ig_lead
        ),
        "POST /v1/subjects/access-links": lambda nhs: client.post(
            "/v1/subjects/access-links", json={"subject": {"nhs_number": nhs}}, headers=case_system
        ),
    }
    print(
        f"python {platform.python_version()}, sqlalchemy {sqlalchemy.__version__}, "
        f"SQLite, {args.people} known and {args.people} unknown people, "
        f"{args.consents} consents + 1 disclosure each, {args.rounds} interleaved pairs"
    )
    print(f"{'endpoint':32} {'known':>9} {'unknown':>9} {'diff':>8} {'ratio':>6}  statuses")
    rng = random.Random(12)
    for name, probe in probes.items():
        for nhs in known[:5] + unknown[:5]:  # warm caches and the JIT-free interpreter alike
            probe(nhs)
        times: dict[str, list[float]] = {"known": [], "unknown": []}
        statuses: dict[str, set[int]] = {"known": set(), "unknown": set()}
        for i in range(args.rounds):
            pair = [("known", known[i % len(known)]), ("unknown", unknown[i % len(unknown)])]
            rng.shuffle(pair)
            for kind, nhs in pair:
                start = time.perf_counter()
                resp = probe(nhs)
                times[kind].append(time.perf_counter() - start)
                statuses[kind].add(resp.status_code)
        k, u = statistics.median(times["known"]), statistics.median(times["unknown"])
        print(
            f"{name:32} {k * 1e6:7.0f}us {u * 1e6:7.0f}us {(k - u) * 1e6:6.0f}us {k / u:6.3f}"
            f"  known {sorted(statuses['known'])} unknown {sorted(statuses['unknown'])}"
        )
    ledger.db.dispose()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
