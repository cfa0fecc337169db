"""Reading single log entries: an auditor reads any; an IG lead reads those about its own
organisation.

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

from app.errors import Forbidden
from app.models import Organisation
from app.services.access.clients import Principal
from app.services.container import Ledger

# Entries about the service itself: every IG lead may read them.
SERVICE_ENTRY_TYPES = frozenset(
    {"organisation.registered", "policy.published", "log.rollback_accepted"}
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


def read_entry(ledger: Ledger, principal: Principal, index: int) -> dict[str, Any]:
    with ledger.db.read() as session:
        row, decoded = ledger.log_store.entry(session, index)
        if principal.role != "auditor":
            named: set[str] = set()
            if decoded is not None and decoded.get("type") not in SERVICE_ENTRY_TYPES:
                org_ids = set(session.execute(select(Organisation.id)).scalars())
                named = org_ids & set(_strings(decoded.get("data")))
            public = decoded is not None and decoded.get("type") in SERVICE_ENTRY_TYPES
            if not public and principal.organisation_id not in named:
                raise Forbidden(
                    f"entry {index} does not concern {principal.organisation_id}; "
                    "an IG lead reads the entries about its own organisation (an auditor "
                    "reads all)"
                )
    return {
        "index": row.idx,
        "leaf_hash": row.leaf_hash.hex(),
        "leaf": base64.b64encode(row.leaf).decode("ascii"),
        "entry": decoded,
    }
