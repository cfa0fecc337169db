"""Re-derive the projection tables from the log and compare (``consent-ledger rebuild``).

The log is the source of truth; ``organisations``, ``api_clients``, ``consents``,
``consent_events``, ``objections``, ``policy_versions``, ``decisions``, ``disclosures`` and
``disclosure_consents`` are projections kept for fast queries, updated in the same transaction
as each entry. This module replays every entry, in index order, into the rows
the projections should hold, and reports each difference. ``--check`` only reports; without it
the consent-side projections are rewritten from the log in one transaction. Subjects (the
identifier mapping) and token hashes are not in the log by design, and are not touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.ledger.entry import decode_entry, encode_entry
from app.models import (
    ApiClient,
    Consent,
    ConsentEvent,
    DecisionRecord,
    Disclosure,
    DisclosureConsent,
    LogEntry,
    Objection,
    Organisation,
    PolicyVersion,
)
from app.services.consents.consents import ACTIVE, WITHDRAWN, iso

Row = dict[str, Any]
Progress = Callable[[int, int], None]


@dataclass
class Expected:
    organisations: dict[str, Row] = field(default_factory=dict)
    clients: dict[str, Row] = field(default_factory=dict)
    consents: dict[str, Row] = field(default_factory=dict)
    consent_events: dict[int, Row] = field(default_factory=dict)
    objections: dict[str, Row] = field(default_factory=dict)
    policy_versions: dict[str, Row] = field(default_factory=dict)
    decisions: dict[str, Row] = field(default_factory=dict)
    disclosures: dict[str, Row] = field(default_factory=dict)
    disclosure_consents: dict[tuple[str, str], Row] = field(default_factory=dict)


def _entries(
    session: Session, decode: Callable[[bytes], dict[str, Any]]
) -> Iterator[tuple[int, dict[str, Any]]]:
    rows = session.execute(
        select(LogEntry.idx, LogEntry.leaf).order_by(LogEntry.idx).execution_options(yield_per=2000)
    )
    for idx, leaf in rows:
        yield idx, decode(leaf)


class Unreplayable(Exception):
    """An entry refers to a row the log before it does not hold, or lacks a field."""

    def __init__(self, index: int, exc: Exception) -> None:
        self.index = index
        self.reason = f"cannot be replayed: {type(exc).__name__} {exc}"
        super().__init__(f"entry {index} {self.reason}")


def replay(
    session: Session,
    total: int,
    progress: Progress | None = None,
    also: Callable[[int, dict[str, Any]], None] | None = None,
    decode: Callable[[bytes], dict[str, Any]] = decode_entry,
) -> Expected:
    """The rows the projections should hold. ``also`` is shown each decoded entry in the same
    pass (``verify`` re-evaluates the logged decisions with it); ``decode`` may skip the
    canonical-form check where the caller has just made it in the same snapshot."""
    exp = Expected()
    for n, (idx, entry) in enumerate(_entries(session, decode), start=1):
        if also is not None:
            also(idx, entry)
        try:
            _apply(exp, idx, entry)
        except (LookupError, TypeError, ValueError, AttributeError) as exc:
            raise Unreplayable(idx, exc) from None
        if progress and (n % 5000 == 0 or n == total):
            progress(n, total)
    return exp


def _apply(exp: Expected, idx: int, entry: dict[str, Any]) -> None:
    # An entry of another type is in no projection (and need not have these fields).
    kind = entry.get("type")
    time: Any = entry.get("time")
    d: Any = entry.get("data")
    if kind == "organisation.registered":
        exp.organisations[d["id"]] = {
            "name": d["name"],
            "kind": d["kind"],
            "funder": d["funder"],
            "ods_code": d["ods_code"],
            "registered_at": time,
            "ledger_index": idx,
        }
    elif kind == "client.created":
        exp.clients[d["client_id"]] = {
            "name": d["name"],
            "organisation_id": d["organisation"],
            "role": d["role"],
            "created_at": time,
            "ledger_index": idx,
            "revoked_at": None,
            "revoked_index": None,
            "rotated_at": None,
            "rotated_index": None,
        }
    elif kind == "client.revoked":
        exp.clients[d["client_id"]].update(revoked_at=time, revoked_index=idx)
    elif kind == "client.token_rotated":
        exp.clients[d["client_id"]].update(rotated_at=time, rotated_index=idx)
    elif kind == "consent.granted":
        exp.consents[d["consent_id"]] = {
            "subject_ref": d["subject_ref"],
            "purpose": d["purpose"],
            "recipients": d["recipients"],
            "data_categories": d["data_categories"],
            "form": d["form"],
            "evidence_sha256": d["evidence_sha256"],
            "valid_from": d["valid_from"],
            "expires_at": d["expires_at"],
            "recorded_by": d["recorded_by"],
            "recorded_by_client": d["client_id"],
            "recorded_at": time,
            "status": ACTIVE,
            "confirmed_by": None,
            "confirmed_at": None,
            "withdrawn_at": None,
            "ledger_index": idx,
        }
        _event(exp, idx, d, "granted", time, d["recorded_by"])
    elif kind == "consent.confirmed":
        exp.consents[d["consent_id"]].update(confirmed_by=d["by"], confirmed_at=time)
        _event(exp, idx, d, "confirmed", time, d["by"])
    elif kind == "consent.withdrawn":
        exp.consents[d["consent_id"]].update(status=WITHDRAWN, withdrawn_at=time)
        _event(exp, idx, d, "withdrawn", time, d["by"], d.get("reason"))
    elif kind == "objection.recorded":
        exp.objections[d["objection_id"]] = {
            "subject_ref": d["subject_ref"],
            "scope": d["scope"],
            "status": ACTIVE,
            "recorded_by": d["recorded_by"],
            "recorded_by_client": d["client_id"],
            "recorded_at": time,
            "ledger_index": idx,
            "withdrawn_at": None,
            "withdrawn_by": None,
            "withdrawn_index": None,
        }
    elif kind == "policy.published":
        # Re-publishing a version moves it to its newest entry (one row per version).
        exp.policy_versions[d["version"]] = {
            "name": d["name"],
            "document": encode_entry(d["policy"]).decode("utf-8"),
            "published_at": time,
            "ledger_index": idx,
        }
    elif kind == "decision.made":
        basis = d.get("legal_basis") or {}
        exp.decisions[d["decision_id"]] = {
            "subject_ref": d["subject_ref"],
            "from_org": d["from"],
            "to_org": d["to"],
            "purpose": d["purpose"],
            "data_categories": d["data_categories"],
            "legal_basis_type": basis.get("type"),
            "legal_basis_reference": basis.get("reference"),
            "decision": d["decision"],
            "basis": d["basis"],
            "result": {k: d[k] for k in RESULT_KEYS},
            "policy_version": d["policy_version"],
            "client_id": d["client_id"],
            "made_at": time,
            "ledger_index": idx,
        }
    elif kind == "disclosure.recorded":
        exp.disclosures[d["disclosure_id"]] = {
            "decision_id": d["decision_id"],
            "subject_ref": d["subject_ref"],
            "from_org": d["from"],
            "to_org": d["to"],
            "purpose": d["purpose"],
            "data_categories": d["data_categories"],
            "basis": d["basis"],
            "legal_basis_type": d["legal_basis"],
            "client_id": d["client_id"],
            "disclosed_at": time,
            "ledger_index": idx,
        }
        for consent_id in d["consents"]:
            exp.disclosure_consents[(d["disclosure_id"], consent_id)] = {}
    elif kind == "objection.withdrawn":
        exp.objections[d["objection_id"]].update(
            status=WITHDRAWN, withdrawn_at=time, withdrawn_by=d["by"], withdrawn_index=idx
        )


def _event(
    exp: Expected,
    idx: int,
    d: dict[str, Any],
    event: str,
    time: str,
    org: str,
    reason: str | None = None,
) -> None:
    exp.consent_events[idx] = {
        "consent_id": d["consent_id"],
        "event": event,
        "at": time,
        "organisation_id": org,
        "client_id": d["client_id"],
        "reason": reason,
    }


def _stored(
    session: Session, model: type[Any], key: str | tuple[str, ...], columns: list[str]
) -> dict[Any, Row]:
    out: dict[Any, Row] = {}
    for obj in session.execute(select(model)).scalars():
        row = {}
        for c in columns:
            value = getattr(obj, c)
            row[c] = iso(value) if hasattr(value, "isoformat") else value
        out[
            tuple(getattr(obj, k) for k in key) if isinstance(key, tuple) else getattr(obj, key)
        ] = row
    return out


TABLES: list[tuple[str, type[Any], str | tuple[str, ...]]] = [
    ("organisations", Organisation, "id"),
    ("clients", ApiClient, "id"),
    ("consents", Consent, "id"),
    ("consent_events", ConsentEvent, "ledger_index"),
    ("objections", Objection, "id"),
    ("policy_versions", PolicyVersion, "version"),
    ("decisions", DecisionRecord, "id"),
    ("disclosures", Disclosure, "id"),
    ("disclosure_consents", DisclosureConsent, ("disclosure_id", "consent_id")),
]
# The decision fields the policy engine returns, stored together in decisions.result.
RESULT_KEYS = (
    "decision",
    "permitted_categories",
    "denied_categories",
    "reasons",
    "consents",
    "obligations",
    "policy_version",
    "basis",
)


def differences(session: Session, exp: Expected) -> list[str]:
    found: list[str] = []
    for name, model, key in TABLES:
        expected: dict[Any, Row] = getattr(exp, name)
        columns = sorted({c for row in expected.values() for c in row})
        stored = _stored(session, model, key, columns)
        for k in sorted(set(expected) | set(stored), key=str):
            if k not in stored:
                found.append(f"{name} {k}: in the log but missing from the table")
            elif k not in expected:
                found.append(f"{name} {k}: in the table but not in the log")
            else:
                for c in columns:
                    if expected[k].get(c) != stored[k].get(c):
                        found.append(
                            f"{name} {k}: {c} is {stored[k].get(c)!r} in the table but "
                            f"{expected[k].get(c)!r} in the log"
                        )
    return found


@dataclass(frozen=True)
class RebuildReport:
    entries: int
    differences: list[str]


def check(session: Session, total: int, progress: Progress | None = None) -> RebuildReport:
    exp = replay(session, total, progress)
    return RebuildReport(total, differences(session, exp))


def rewrite_consent_projections(session: Session, exp: Expected) -> None:
    """Replace consents, consent events and objections with what the log says (one
    transaction; the caller holds the log-head lock so no write interleaves)."""

    def dt(value: str | None) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)

    # disclosure_consents refers to consents: take it out and put it back from the log too.
    session.execute(delete(DisclosureConsent))
    session.execute(delete(ConsentEvent))
    session.execute(delete(Consent))
    session.execute(delete(Objection))
    session.flush()
    times = ("valid_from", "expires_at", "recorded_at", "confirmed_at", "withdrawn_at", "at")
    for cid, row in exp.consents.items():
        session.add(Consent(id=cid, **{k: dt(v) if k in times else v for k, v in row.items()}))
    session.flush()
    for idx, row in exp.consent_events.items():
        session.add(
            ConsentEvent(
                ledger_index=idx, **{k: dt(v) if k in times else v for k, v in row.items()}
            )
        )
    for oid, row in exp.objections.items():
        session.add(Objection(id=oid, **{k: dt(v) if k in times else v for k, v in row.items()}))
    session.flush()
    for disclosure_id, consent_id in exp.disclosure_consents:
        session.add(DisclosureConsent(disclosure_id=disclosure_id, consent_id=consent_id))
