"""What the IG dashboard shows: the log's health, decisions and disclosures over time, denials
by reason, decisions that rested on a legal basis rather than consent, and the obligations
organisations still have to act on."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import func, or_, select

from app.models import DecisionRecord, Disclosure, LogCheckpoint, Organisation, VerificationRun
from app.services.access.clients import Principal
from app.services.container import Ledger
from app.services.log import signing_keys
from app.services.notifications import obligations

DAYS = 14
Q = TypeVar("Q", bound=Any)


@dataclass(frozen=True)
class LogHealth:
    size: int
    newest_checkpoint_at: datetime | None
    verifier_key: str
    last_verification: VerificationRun | None


@dataclass(frozen=True)
class Dashboard:
    health: LogHealth
    days: list[date]
    by_day_and_purpose: dict[date, dict[str, int]]
    purposes: list[str]
    by_recipient_kind: list[tuple[str, int]]
    denials_by_reason: list[tuple[str, int]]
    legal_basis_decisions: list[DecisionRecord]
    decisions_by_outcome: dict[str, int]
    # What organisations must still do after withdrawals, objections and erasures, oldest
    # first: the IG lead's own organisation's, or every organisation's for an auditor.
    open_obligations: list[obligations.OpenObligation]
    open_obligations_total: int


def _scope(principal: Principal, q: Q, from_col: Any, to_col: Any) -> Q:
    if principal.role == "auditor":
        return q
    org = principal.organisation_id
    return q.where(or_(from_col == org, to_col == org))  # type: ignore[no-any-return]


def build(ledger: Ledger, principal: Principal) -> Dashboard:
    now = ledger.clock()
    start_day = (now - timedelta(days=DAYS - 1)).date()
    days = [start_day + timedelta(days=i) for i in range(DAYS)]
    since = datetime.combine(start_day, datetime.min.time(), tzinfo=now.tzinfo)
    with ledger.db.read() as session:
        newest = session.execute(
            select(LogCheckpoint.created_at).order_by(LogCheckpoint.tree_size.desc()).limit(1)
        ).scalar_one_or_none()
        last_run = session.execute(
            select(VerificationRun).order_by(VerificationRun.id.desc()).limit(1)
        ).scalar_one_or_none()
        health = LogHealth(
            size=ledger.log_store.size(session),
            newest_checkpoint_at=newest,
            verifier_key=signing_keys.newest_vkey(ledger, session),
            last_verification=last_run,
        )
        rows = session.execute(
            _scope(
                principal,
                select(Disclosure.disclosed_at, Disclosure.purpose, Organisation.kind)
                .join(Organisation, Organisation.id == Disclosure.to_org)
                .where(Disclosure.disclosed_at >= since),
                Disclosure.from_org,
                Disclosure.to_org,
            )
        ).all()
        by_day: dict[date, dict[str, int]] = {d: defaultdict(int) for d in days}
        kinds: Counter[str] = Counter()
        purposes: set[str] = set()
        for at, purpose, kind in rows:
            day = at.date()
            if day in by_day:
                by_day[day][purpose] += 1
            purposes.add(purpose)
            kinds[kind] += 1
        denials: Counter[str] = Counter()
        for (result,) in session.execute(
            _scope(
                principal,
                select(DecisionRecord.result).where(
                    DecisionRecord.decision == "deny", DecisionRecord.made_at >= since
                ),
                DecisionRecord.from_org,
                DecisionRecord.to_org,
            )
        ):
            for reason in {d["reason"] for d in result.get("denied_categories", [])}:
                denials[reason] += 1
        legal = list(
            session.execute(
                _scope(
                    principal,
                    select(DecisionRecord).where(DecisionRecord.legal_basis_type.is_not(None)),
                    DecisionRecord.from_org,
                    DecisionRecord.to_org,
                )
                .order_by(DecisionRecord.ledger_index.desc())
                .limit(20)
            ).scalars()
        )
        outcomes: Counter[str] = Counter()
        for outcome, count in session.execute(
            _scope(
                principal,
                select(DecisionRecord.decision, func.count()).where(
                    DecisionRecord.made_at >= since
                ),
                DecisionRecord.from_org,
                DecisionRecord.to_org,
            ).group_by(DecisionRecord.decision)
        ):
            outcomes[outcome] = count
        owing, owing_total = obligations.open_obligations(
            session, None if principal.role == "auditor" else principal.organisation_id
        )
    return Dashboard(
        health=health,
        days=days,
        by_day_and_purpose={d: dict(v) for d, v in by_day.items()},
        purposes=sorted(purposes),
        by_recipient_kind=kinds.most_common(),
        denials_by_reason=denials.most_common(),
        legal_basis_decisions=legal,
        decisions_by_outcome={k: outcomes.get(k, 0) for k in ("permit", "deny")},
        open_obligations=owing,
        open_obligations_total=owing_total,
    )


def record_verification(
    ledger: Ledger, ok: bool, size: int, checkpoints: int, problem: str | None
) -> None:
    with ledger.db.write() as session:
        session.add(
            VerificationRun(
                ran_at=ledger.clock(),
                ok=ok,
                log_size=size,
                checkpoints=checkpoints,
                problem=problem,
            )
        )
