"""Benchmarks of decisions (not tests): the pure engine, and the whole POST /v1/decisions.

- engine: ``evaluate`` for a therapy-to-adviser referral with 1 relevant consent vs. the same
  with 50 consents on record (the ratio shows how facts scale);
- HTTP: a recorded decision (lock, facts, evaluate, signed log append) vs. an authenticated
  read of /v1/organisations through the same test client (the ratio is the decision's cost
  over the framework's).

Usage: python bench/bench_decisions.py [--n N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command as alembic_command

from app import create_app, get_ledger
from app.cli import alembic_config
from app.policy import ConsentFact, Facts, Party, Request, evaluate
from app.services import organisations
from app.services.access import clients
from app.services.decisions import policies
from app.services.log import keys

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def per_call(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    n = parser.parse_args().n
    policy = policies.parse_policy_file(policies.DEFAULT_POLICY_FILE)
    request = Request(
        Party("tt-leeds", "health"),
        Party("ea-tt-leeds", "employment_nhs"),
        "referral",
        ("identity", "service_status", "outcome_measures"),
    )

    def fact(i: int, recipient: str) -> ConsentFact:
        return ConsentFact(
            f"c{i}",
            "referral",
            frozenset({recipient}),
            frozenset({"identity", "service_status"}),
            "verbal",
            "active",
            NOW - timedelta(days=1),
            "health",
        )

    one = Facts((fact(0, "ea-tt-leeds"),))
    many = Facts(tuple(fact(i, "ea-tt-leeds" if i == 0 else "whp-leeds") for i in range(50)))
    t_one = per_call(lambda: evaluate(policy, request, one, NOW), n * 10)
    t_many = per_call(lambda: evaluate(policy, request, many, NOW), n * 10)
    print(
        f"engine  1 consent {t_one * 1e6:7.1f} us  50 consents {t_many * 1e6:7.1f} us  "
        f"ratio {t_many / t_one:5.2f}"
    )

    tmp = Path(tempfile.mkdtemp(prefix="bench-dec-"))
    app = create_app({"INSTANCE_PATH": str(tmp)})
    ledger = get_ledger(app)
    keys.ensure_keys(ledger.settings)
    alembic_command.upgrade(alembic_config(ledger), "head")
    orgs = policies.REPO_POLICIES / "organisations.example.yaml"
    organisations.import_organisations(ledger, organisations.read_organisation_file(orgs), "x")
    policies.publish(ledger, policy)
    token = clients.create_client(ledger, "tt-leeds", "case_system", None).token
    auth = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    client.post(
        "/v1/consents",
        headers=auth,
        json={
            "subject": {"nhs_number": "9434765919"},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity", "service_status"],
            "form": "verbal",
        },
    )
    body = {
        "subject": {"nhs_number": "9434765919"},
        "from": "tt-leeds",
        "to": "ea-tt-leeds",
        "purpose": "referral",
        "data_categories": ["identity", "service_status"],
    }
    t_read = per_call(lambda: client.get("/v1/organisations", headers=auth), n)
    t_decide = per_call(lambda: client.post("/v1/decisions", json=body, headers=auth), n)
    print(
        f"http    read {t_read * 1e3:6.2f} ms  decision {t_decide * 1e3:6.2f} ms "
        f"({1 / t_decide:5.0f}/s)  ratio {t_decide / t_read:5.2f}"
    )
    ledger.db.dispose()


if __name__ == "__main__":
    main()
