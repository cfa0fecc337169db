"""Reading single log entries: an auditor reads any; an IG lead reads those about its own
organisation, and the leaf (not the opening) of any committed entry.

An entry's payload says who recorded a consent, who received a disclosure, which person (by
``subject_ref``) it concerns. Every history the API returns carries ``ledger_index`` values, so
without this rule an IG lead could follow them into another organisation's entries and learn
what ``GET /v1/disclosures`` and ``GET /v1/consents`` deliberately hide from it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Forbidden
from app.models import Organisation
from app.services.access.clients import Principal
from app.services.container import Ledger

# Entries about the service itself: every IG lead may read them.
SERVICE_ENTRY_TYPES = frozenset(
    {
        "organisation.registered",
        "policy.published",
        "log.rollback_accepted",
        "log.key_added",
        "log.key_retired",
    }
)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _concerns(session: Session, entry: dict[str, Any] | None, organisation_id: str) -> bool:
    if entry is None:
        return False
    if entry.get("type") in SERVICE_ENTRY_TYPES:
        return True
    org_ids = set(session.execute(select(Organisation.id)).scalars())
    return organisation_id in org_ids & set(_strings(entry.get("data")))


def read_entry(ledger: Ledger, principal: Principal, index: int) -> dict[str, Any]:
    """One entry: its leaf for every reader, and what the leaf is or commits to for a reader
    entitled to it (an auditor; an IG lead for entries naming its organisation).

    A committed leaf (log format 2) holds nothing personal, so it is served to any reader,
    with its opening withheld unless the reader is entitled; a leaf in the clear is the entry
    itself, so it is refused to a reader not entitled to the entry, as before."""
    with ledger.db.read() as session:
        read = ledger.log_store.entry(session, index)
        entitled = principal.role == "auditor" or _concerns(
            session, read.entry, principal.organisation_id
        )
    if not entitled and not (read.committed and read.state != "unreadable"):
        raise Forbidden(
            f"entry {index} does not concern {principal.organisation_id}; "
            "an IG lead reads the entries about its own organisation (an auditor "
            "reads all)"
        )
    opening = read.opening if entitled else None
    return {
        "index": read.index,
        "leaf_hash": read.leaf_hash.hex(),
        "leaf": base64.b64encode(read.leaf).decode("ascii"),
        "state": "withheld" if read.state == "opened" and not entitled else read.state,
        "entry": read.entry if entitled else None,
        "opening": None
        if opening is None
        else {
            "salt": opening.salt.hex(),
            "entry": base64.b64encode(opening.entry).decode("ascii"),
        },
        "erased_by": read.erased_by,
    }
