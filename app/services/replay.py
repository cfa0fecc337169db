"""What-if for IG leads: re-evaluate logged decisions under a candidate policy.

Walks the log in order, rebuilding each person's consents and objections exactly as they stood
when each ``decision.made`` entry was written, and evaluates the candidate policy at that
instant. Decisions whose outcome would change are reported with both answers, before anyone
publishes the candidate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.ledger.entry import decode_entry
from app.models import LogEntry
from app.policy import (
    ConsentFact,
    Facts,
    LegalBasis,
    ObjectionFact,
    Party,
    Policy,
    Request,
    evaluate,
)


@dataclass(frozen=True)
class Change:
    index: int
    decision_id: str
    request: str
    was: dict[str, Any]
    would_be: dict[str, Any]


@dataclass(frozen=True)
class ReplayReport:
    decisions: int
    changes: list[Change]


def _t(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def replay_decisions(
    session: Session, candidate: Policy, progress: Callable[[int], None] | None = None
) -> ReplayReport:
    kinds: dict[str, str] = {}
    # Facts per person, so each decision reads only its own person's (not every fact so far).
    consents: dict[str, dict[str, ConsentFact]] = {}
    objections: dict[str, dict[str, ObjectionFact]] = {}
    changes: list[Change] = []
    count = 0
    rows = session.execute(
        select(LogEntry.idx, LogEntry.leaf).order_by(LogEntry.idx).execution_options(yield_per=2000)
    )
    for idx, leaf in rows:
        entry = decode_entry(leaf)
        kind, d = entry["type"], entry["data"]
        time = datetime.fromisoformat(entry["time"])
        if kind == "organisation.registered":
            kinds[d["id"]] = d["kind"]
        elif kind == "consent.granted":
            consents.setdefault(d["subject_ref"], {})[d["consent_id"]] = ConsentFact(
                id=d["consent_id"],
                purpose=d["purpose"],
                recipients=frozenset(d["recipients"]),
                categories=frozenset(d["data_categories"]),
                form=d["form"],
                status="active",
                recorded_at=time,
                recorded_by_kind=kinds[d["recorded_by"]],
                recorded_by=d["recorded_by"],
                sequence=idx,
                valid_from=_t(d["valid_from"]),
                expires_at=_t(d["expires_at"]),
            )
        elif kind in ("consent.confirmed", "consent.withdrawn"):
            person = consents[d["subject_ref"]]
            change = {"confirmed": True} if kind == "consent.confirmed" else {"status": "withdrawn"}
            person[d["consent_id"]] = dataclasses.replace(person[d["consent_id"]], **change)
        elif kind == "objection.recorded":
            objections.setdefault(d["subject_ref"], {})[d["objection_id"]] = ObjectionFact(
                d["objection_id"], d["scope"], "active", time, idx
            )
        elif kind == "objection.withdrawn":
            held = objections[d["subject_ref"]]
            held[d["objection_id"]] = dataclasses.replace(
                held[d["objection_id"]], status="withdrawn"
            )
        elif kind == "decision.made":
            count += 1
            ref = d["subject_ref"]
            facts = Facts(
                tuple(consents.get(ref, {}).values()), tuple(objections.get(ref, {}).values())
            )
            basis = d.get("legal_basis")
            request = Request(
                Party(d["from"], kinds[d["from"]]),
                Party(d["to"], kinds[d["to"]]),
                d["purpose"],
                tuple(d["data_categories"]),
                LegalBasis(basis["type"], basis["reference"]) if basis else None,
            )
            candidate_decision = evaluate(candidate, request, facts, time)
            was = _outcome(d)
            would_be = _outcome(candidate_decision.as_json())
            if was != would_be:
                changes.append(
                    Change(
                        idx,
                        d["decision_id"],
                        f"{d['from']} -> {d['to']} {d['purpose']} {','.join(d['data_categories'])}",
                        was,
                        {
                            **would_be,
                            "reasons": [
                                f"{r['code']} ({r['rule']})"
                                for r in candidate_decision.as_json()["reasons"]
                            ],
                        },
                    )
                )
            if progress and count % 1000 == 0:
                progress(count)
    return ReplayReport(count, changes)


def _outcome(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "decision": d["decision"],
        "permitted": sorted(d["permitted_categories"]),
        "denied": {x["category"]: x["reason"] for x in d["denied_categories"]},
    }
