"""Benchmark of ``consent-ledger verify`` on a log of real flows (not a test).

Builds a log through the services (consents, decisions, disclosures, withdrawals, objections
and their withdrawals, as the case systems make them), then times, each in its own read
transaction, median of ``--runs``:

- ``verify_log``: the integrity pass (leaves re-hashed, tree rebuilt, checkpoints checked);
  until issue 12 item 4 this was all of ``verify``;
- ``verify_answers``: the second pass, every logged decision and disclosure re-evaluated from
  the log and the projections rebuilt and compared;
- the second pass without the answers (projections rebuilt and compared only), its baseline:
  the difference is the cost of re-evaluating the answers; and ``rebuild.check`` (what
  ``rebuild --check`` runs, which also re-checks each leaf's canonical form).

Usage: python bench/bench_verify.py [--people 1000] [--runs 3] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alembic import command as alembic_command
from sqlalchemy.orm import Session

from app import create_app, get_ledger
from app.cli import alembic_config
from app.services import organisations
from app.services.access import clients
from app.services.consents import consents
from app.services.consents.subjects import SubjectIdentifier
from app.services.container import Ledger
from app.services.decisions import decisions, policies
from app.services.log import keys, rebuild
from app.services.log.verify import verify_answers, verify_log

REFERRAL = ("identity", "service_status")
T = TypeVar("T")


def build(ledger: Ledger, people: int) -> None:
    orgs = policies.REPO_POLICIES / "organisations.example.yaml"
    organisations.import_organisations(ledger, organisations.read_organisation_file(orgs), "x")
    policies.publish(ledger, policies.parse_policy_file(policies.DEFAULT_POLICY_FILE))
    tt = clients.authenticate(
        ledger, "Bearer " + clients.create_client(ledger, "tt-leeds", "case_system", None).token
    )
    for n in range(people):
        subject = SubjectIdentifier.local_id("tt-leeds", f"bench-{n}")
        consent = consents.record_consent(
            ledger,
            tt,
            consents.ConsentInput(subject, "referral", ("ea-tt-leeds",), REFERRAL, "verbal"),
            None,
        ).body["id"]

        def decide(to: str, subject: SubjectIdentifier = subject) -> dict[str, object]:
            inp = decisions.DecisionInput(subject, "tt-leeds", to, "referral", REFERRAL)
            return decisions.decide(ledger, tt, inp, None).body

        made = decide("ea-tt-leeds")
        decisions.record_disclosure(ledger, tt, str(made["id"]), REFERRAL, None)
        if n % 3 == 0:
            consents.withdraw_consent(ledger, tt, consent, None, None)
            decide("ea-tt-leeds")  # a deny
        if n % 5 == 0:
            objection = consents.record_objection(ledger, tt, subject, "direct_care", None)
            decide("cmht-leeds-west")  # a deny
            consents.withdraw_objection(ledger, tt, objection.body["id"], None)
            decide("cmht-leeds-west")  # implied consent


def timed(ledger: Ledger, fn: Callable[[Session], T], runs: int) -> tuple[float, T]:
    times = []
    for _ in range(runs):
        with ledger.db.read() as session:
            start = time.perf_counter()
            out = fn(session)
            times.append(time.perf_counter() - start)
    return statistics.median(times), out


def projections_only(session: Session, size: int) -> list[str]:
    """The second pass without the answers re-evaluated: its baseline."""
    return rebuild.differences(session, rebuild.replay(session, size, decode=json.loads))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    config = {"INSTANCE_PATH": str(tmp)}
    if args.database_url:
        config["DATABASE_URL"] = args.database_url
    ledger = get_ledger(create_app(config))
    keys.ensure_keys(ledger.settings)
    alembic_command.upgrade(alembic_config(ledger), "head")
    start = time.perf_counter()
    build(ledger, args.people)
    built = time.perf_counter() - start
    with ledger.db.read() as session:
        size = ledger.log_store.size(session)
    print(f"log: {size} entries from {args.people} people, built in {built:.1f} s")

    verifier = ledger.keyring()
    t_log, result = timed(ledger, lambda s: verify_log(s, verifier), args.runs)
    t_answers, answers = timed(ledger, lambda s: verify_answers(s, size), args.runs)
    t_projections, _ = timed(ledger, lambda s: projections_only(s, size), args.runs)
    t_rebuild, _ = timed(ledger, lambda s: rebuild.check(s, size), args.runs)
    assert result.ok, result
    assert answers.ok, answers
    n_answers = answers.decisions + answers.disclosures
    print(
        f"verify before: verify_log            {t_log:7.3f} s  {t_log / size * 1e6:6.1f} us/entry\n"
        f"second pass: verify_answers          {t_answers:7.3f} s  "
        f"{t_answers / size * 1e6:6.1f} us/entry "
        f"({answers.decisions} decisions, {answers.disclosures} disclosures)\n"
        f"  of which projections rebuilt, compared {t_projections:7.3f} s\n"
        f"  of which answers re-evaluated          {t_answers - t_projections:7.3f} s  "
        f"{(t_answers - t_projections) / n_answers * 1e6:6.1f} us/answer\n"
        f"rebuild --check (rebuild.check)      {t_rebuild:7.3f} s\n"
        f"verify after: both passes            {t_log + t_answers:7.3f} s  "
        f"x{(t_log + t_answers) / t_log:.2f} of before"
    )
    ledger.db.dispose()


if __name__ == "__main__":
    main()
