"""Safe retries: a POST with an ``Idempotency-Key`` header returns its first response again.

The record is written in the same transaction as the change, after the log head is locked, so a
retry racing the original waits for it and then finds its record. Only successful responses are
kept: a refused request changed nothing, so repeating it is already safe. The request is
remembered as HMAC-SHA-256 under the identifier key, because a body may hold an NHS number and a
plain hash of ten digits is easily reversed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.errors import DomainError, FieldError, InvalidArgument
from app.models import IdempotencyRecord
from app.services.container import Ledger

HEADER = "Idempotency-Key"
_KEY = re.compile(r"[\x21-\x7e]{1,200}")


class IdempotencyKeyReused(DomainError):
    status = 422
    slug = "idempotency-key-reused"


@dataclass(frozen=True)
class IdempotencyKey:
    client_id: str
    key: str
    fingerprint: bytes


@dataclass(frozen=True)
class WriteResult:
    status: int
    body: dict[str, Any]
    replayed: bool = False


def idempotency_key(
    ledger: Ledger, client_id: str, header: str | None, method: str, path: str, body: Any
) -> IdempotencyKey | None:
    if header is None:
        return None
    if not _KEY.fullmatch(header):
        raise InvalidArgument(
            f"{HEADER} must be 1-200 visible ASCII characters",
            errors=[FieldError(HEADER, "1-200 visible ASCII characters", "headers")],
        )
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
    digest = hmac.new(ledger.identifier_key, canonical.encode(), hashlib.sha256).digest()
    return IdempotencyKey(client_id, header, digest)


def run_write(
    ledger: Ledger,
    idem: IdempotencyKey | None,
    use_case: Callable[[Session], tuple[int, dict[str, Any]]],
    check_replay: Callable[[Session, dict[str, Any]], None] | None = None,
) -> WriteResult:
    """Run one write use case in one transaction, replaying a recorded response if any.

    ``check_replay`` may refuse to replay a response that is no longer true (a permit whose
    consent has since been withdrawn) by raising; nothing is written either way.
    """
    with ledger.db.write() as session:
        ledger.log_store.lock_head(session)
        if idem is not None:
            record = session.get(IdempotencyRecord, (idem.client_id, idem.key))
            if record is not None:
                if not hmac.compare_digest(record.fingerprint, idem.fingerprint):
                    raise IdempotencyKeyReused(
                        f"this {HEADER} was used for a different request; "
                        "use a new key for a new request",
                        errors=[FieldError(HEADER, "already used with another body", "headers")],
                    )
                body = json.loads(record.body)
                if check_replay is not None:
                    check_replay(session, body)
                return WriteResult(record.status_code, body, replayed=True)
        status, body = use_case(session)
        if idem is not None:
            session.add(
                IdempotencyRecord(
                    client_id=idem.client_id,
                    key=idem.key,
                    fingerprint=idem.fingerprint,
                    status_code=status,
                    body=json.dumps(body),
                    created_at=ledger.clock(),
                )
            )
        return WriteResult(status, body)
