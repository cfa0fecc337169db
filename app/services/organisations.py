"""Registering organisations: each registration is a log entry, so the log is auditable from
its first change."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.errors import DomainError
from app.ledger.events import OrganisationRegistered
from app.models import Organisation, table
from app.services.container import Ledger
from app.services.log.projections import append_events
from app.text import line_problem
from app.vocabulary import FUNDERS, ORGANISATION_KINDS

ORG_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,62}[a-z0-9]")
ODS_CODE = re.compile(r"[A-Z0-9]{3,10}")
REQUIRED = ("id", "name", "kind", "funder")
ALLOWED = (*REQUIRED, "ods_code")


class OrganisationImportRefused(DomainError):
    """A file of organisations failed validation; nothing from it was imported."""

    status = 422
    slug = "invalid-request"

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        super().__init__(f"{source}: nothing imported; " + "; ".join(problems))
        self.source = source
        self.problems = tuple(problems)


@dataclass(frozen=True)
class OrganisationRecord:
    id: str
    name: str
    kind: str
    funder: str
    ods_code: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "funder": self.funder,
            "ods_code": self.ods_code,
        }


@dataclass(frozen=True)
class ImportResult:
    registered: list[tuple[OrganisationRecord, int]]
    unchanged: list[str]


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"field '{key}' appears twice in one record")
        out[key] = value
    return out


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping key given twice (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise _DuplicateKey(f"field '{key}' appears twice in one record (line {line})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_organisation_file(path: Path) -> Any:
    """YAML or JSON by extension (YAML also reads JSON, so anything else is parsed as YAML)."""
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        text = path.read_text(encoding="utf-8")
        if kind == "JSON":
            return json.loads(text, object_pairs_hook=_no_duplicate_pairs)
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except UnicodeDecodeError:
        raise OrganisationImportRefused(str(path), ["the file is not UTF-8 text"]) from None
    except _DuplicateKey as exc:
        raise OrganisationImportRefused(str(path), [str(exc)]) from None
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise OrganisationImportRefused(str(path), [f"not valid {kind}: {exc}"]) from None


def validate_records(data: Any, source: str) -> list[OrganisationRecord]:
    if not isinstance(data, list):
        raise OrganisationImportRefused(source, ["the file must hold a list of organisations"])
    problems: list[str] = []
    records: list[OrganisationRecord] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(data, start=1):
        where = f"record {n}"
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be a mapping of id, name, kind, funder, ods_code")
            continue
        if isinstance(raw.get("id"), str):
            where += f" (id {raw['id']!r})"
        bad = len(problems)
        for key in REQUIRED:
            if key not in raw or raw[key] in (None, ""):
                problems.append(f"{where}: field '{key}' is missing")
            elif not isinstance(raw[key], str):
                problems.append(f"{where}: field '{key}' must be a string")
        for key in raw:
            if key not in ALLOWED:
                problems.append(
                    f"{where}: field '{key}' is not known (allowed: {', '.join(ALLOWED)})"
                )
        if len(problems) > bad:
            continue
        org_id, name, kind, funder = (raw[k].strip() for k in REQUIRED)
        ods = raw.get("ods_code")
        if not name:
            problems.append(f"{where}: field 'name' must be a non-empty line of text")
        elif (problem := line_problem(name)) is not None:
            problems.append(f"{where}: field 'name' {problem}")
        if not ORG_ID.fullmatch(org_id):
            problems.append(
                f"{where}: field 'id': {org_id!r} must be 3-64 lower-case letters, digits or "
                "hyphens, starting and ending with a letter or digit"
            )
        if len(name) > 200:
            problems.append(f"{where}: field 'name' is longer than 200 characters")
        if kind not in ORGANISATION_KINDS:
            problems.append(
                f"{where}: field 'kind': {kind!r} is not one of {', '.join(ORGANISATION_KINDS)}"
            )
        if funder not in FUNDERS:
            problems.append(
                f"{where}: field 'funder': {funder!r} is not one of {', '.join(FUNDERS)}"
            )
        if ods is not None and (not isinstance(ods, str) or not ODS_CODE.fullmatch(ods)):
            problems.append(
                f"{where}: field 'ods_code': {ods!r} must be 3-10 upper-case letters or digits"
            )
        if org_id in seen:
            problems.append(f"{where}: field 'id': {org_id!r} duplicates record {seen[org_id]}")
        seen.setdefault(org_id, n)
        records.append(OrganisationRecord(org_id, name, kind, funder, ods))
    if problems:
        raise OrganisationImportRefused(source, problems)
    if not records:
        raise OrganisationImportRefused(source, ["the file lists no organisations"])
    return records


def import_organisations(ledger: Ledger, data: Any, source: str) -> ImportResult:
    """Validate every record, then register the new ones in one transaction, one entry each.

    Re-importing an identical record is a no-op (so the demo and deployments can re-run the
    same file); a record that differs from the registered one is refused, because changing an
    organisation's kind changes what the policy lets it receive.
    """
    records = validate_records(data, source)
    now = ledger.clock()

    def register(session: Session) -> ImportResult:
        # Read under the log-head lock (the sequencer's): two imports of the same new id must
        # not both see it absent.
        session.info.pop(_KNOWN_KINDS, None)
        existing = _existing(session, [r.id for r in records])
        problems: list[str] = []
        new: list[OrganisationRecord] = []
        unchanged: list[str] = []
        for n, rec in enumerate(records, start=1):
            have = existing.get(rec.id)
            if have is None:
                new.append(rec)
            elif have == rec:
                unchanged.append(rec.id)
            else:
                problems.append(
                    f"record {n} (id {rec.id!r}): already registered with different fields "
                    f"(registered: {have.as_json()}); changing an organisation is not supported"
                )
        if problems:
            raise OrganisationImportRefused(source, problems)
        if not new:
            return ImportResult([], unchanged)
        receipts = append_events(
            ledger.log_store,
            session,
            now,
            [OrganisationRegistered(**rec.as_json()) for rec in new],
        )
        return ImportResult([(r, rc.index) for r, rc in zip(new, receipts, strict=True)], unchanged)

    return ledger.write(register)


def _existing(session: Session, ids: list[str]) -> dict[str, OrganisationRecord]:
    rows = session.execute(select(Organisation).where(Organisation.id.in_(ids))).scalars()
    return {o.id: OrganisationRecord(o.id, o.name, o.kind, o.funder, o.ods_code) for o in rows}


# Every write that names organisations asks this, so the statement is built once.
_KINDS = select(table(Organisation).c.id, table(Organisation).c.kind).where(
    table(Organisation).c.id.in_(bindparam("ids", expanding=True))
)


# Kinds already read in this transaction (None: not registered), kept for the rest of it: a batch
# of writes asks for the same few organisations over and over, and only an import changes them
# (and drops this).
_KNOWN_KINDS = "organisation_kinds"


def registered_kinds(session: Session, ids: Sequence[str]) -> dict[str, str]:
    """The kind of each of ``ids`` that is a registered organisation (the rest are absent)."""
    known: dict[str, str | None] = session.info.setdefault(_KNOWN_KINDS, {})
    missing = [org_id for org_id in ids if org_id not in known]
    if missing:
        found = {org_id: kind for org_id, kind in session.execute(_KINDS, {"ids": missing})}
        known.update({org_id: found.get(org_id) for org_id in missing})
    return {org_id: kind for org_id in ids if (kind := known[org_id]) is not None}


def list_organisations(ledger: Ledger) -> list[Organisation]:
    with ledger.db.read() as session:
        return list(session.execute(select(Organisation).order_by(Organisation.id)).scalars())
