"""Safe retries: a POST with an ``Idempotency-Key`` header returns its first response again.

The record is written in the same transaction (batch) as the change, after the log head is
locked, so a retry racing the original waits for it and then finds its record, or, in the same
batch, the original's response. Only successful responses are
kept: a refused request changed nothing, so repeating it is already safe. The request is
remembered as HMAC-SHA-256 under the identifier key, because a body may hold an NHS number and a
plain hash of ten digits is easily reversed. It is stored under the newest identifier key and
recognised under any key held, so a retry of a request recorded before a key rotation is still
the same request; once that key is retired, such a retry is refused as a reused key (422),
never recorded twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from app.errors import DomainError, FieldError, Gone, InvalidArgument
from app.models import IdempotencyRecord, IdempotencySubject, table
from app.services.container import Ledger
from app.services.log.log_store import Receipt, appended_count, subjects_appended_since
from app.services.log.sequencer import Batch

HEADER = "Idempotency-Key"
_KEY = re.compile(r"[\x21-\x7e]{1,200}")


class IdempotencyKeyReused(DomainError):
    status = 422
    slug = "idempotency-key-reused"


@dataclass(frozen=True)
class IdempotencyKey:
    client_id: str
    key: str
    # The request's fingerprint under the newest identifier key (the one stored), and under
    # each older key held (recognised, never stored).
    fingerprint: bytes
    older: tuple[bytes, ...] = ()

    def same_request(self, recorded: bytes) -> bool:
        # Every candidate compared, so the answer's timing does not depend on which matched.
        matches = [hmac.compare_digest(recorded, f) for f in (self.fingerprint, *self.older)]
        return any(matches)


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
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":")).encode()
    newest, *older = (
        hmac.new(k.secret, canonical, hashlib.sha256).digest() for k in ledger.identifier_keys.all
    )
    return IdempotencyKey(client_id, header, newest, tuple(older))


def run_write(
    ledger: Ledger,
    idem: IdempotencyKey | None,
    use_case: Callable[[Session], tuple[int, dict[str, Any]]],
    check_replay: Callable[[Session, dict[str, Any]], None] | None = None,
    prepare: Callable[[Batch], None] | None = None,
) -> WriteResult:
    """Run one write use case in the sequencer's next batch, replaying a recorded response if
    there is one; answered once the batch has committed.

    ``check_replay`` may refuse to replay a response that is no longer true (a permit whose
    consent has since been withdrawn) by raising; nothing is written either way. A body may
    hold the use case's :class:`Receipt` as is: its checkpoint is signed when the batch is
    sealed, and the body is rendered (and recorded for retries) after that. ``prepare`` is
    the sequencer's (:meth:`Sequencer.run`).
    """

    def in_batch(batch: Batch) -> WriteResult:
        session = batch.session
        responses = _responses(batch, ledger)
        if idem is not None:
            staged = responses.get((idem.client_id, idem.key))
            recorded = staged[:3] if staged is not None else _recorded(session, idem)
            if recorded is not None:
                fingerprint, status, body = recorded
                # Before the fingerprint, which the erasure replaced: nothing of the request
                # is kept to compare with, and the key stays used.
                if status == ERASED_RESPONSE:
                    raise Gone(
                        f"the response recorded for this {HEADER} described a person who has "
                        "since been erased: it is no longer kept, and the request is not run "
                        "again; use a new key for a new request"
                    )
                if not idem.same_request(fingerprint):
                    raise IdempotencyKeyReused(
                        f"this {HEADER} was used for a different request; "
                        "use a new key for a new request",
                        errors=[FieldError(HEADER, "already used with another body", "headers")],
                    )
                if check_replay is not None:
                    check_replay(session, body)
                return WriteResult(status, body, replayed=True)
        appended = appended_count(session)
        status, body = use_case(session)
        if idem is not None:
            # Last, so a use case that fails leaves nothing staged for its key.
            about = subjects_appended_since(session, appended)
            responses[(idem.client_id, idem.key)] = (idem.fingerprint, status, body, about)
        return WriteResult(status, body)

    result = ledger.sequencer.run(in_batch, prepare)
    return WriteResult(result.status, _rendered(result.body), result.replayed)


# The status an erasure leaves on a recorded response that described the person (its body
# blanked): a retry is answered 410, not run again.
ERASED_RESPONSE = 410

# A recorded response: the request's fingerprint, the status and the body (and, while it is
# staged, the people its request logged entries about).
_Response = tuple[bytes, int, dict[str, Any]]
_Staged = tuple[bytes, int, dict[str, Any], set[str]]
_RESPONSES = "idempotency_responses"
_INSERT_RECORDS = insert(table(IdempotencyRecord))
_INSERT_SUBJECTS = insert(table(IdempotencySubject))


def _recorded(session: Session, idem: IdempotencyKey) -> _Response | None:
    record = session.get(IdempotencyRecord, (idem.client_id, idem.key))
    if record is None:
        return None
    return record.fingerprint, record.status_code, json.loads(record.body)


def _responses(batch: Batch, ledger: Ledger) -> dict[tuple[str, str], _Staged]:
    """The responses this batch has made under an Idempotency-Key, stored together once the
    batch is sealed (their bodies carry its checkpoint). A retry in the same batch as its
    original finds the original's response here."""
    responses: dict[tuple[str, str], _Staged] | None = batch.state.get(_RESPONSES)
    if responses is None:
        responses = batch.state[_RESPONSES] = {}

        def store(session: Session) -> None:
            if not responses:
                return
            now = ledger.clock()
            session.connection().execute(
                _INSERT_RECORDS,
                [
                    {
                        "client_id": client_id,
                        "key": key,
                        "fingerprint": fingerprint,
                        "status_code": status,
                        "body": json.dumps(_rendered(body)),
                        "created_at": now,
                    }
                    for (client_id, key), (fingerprint, status, body, _) in responses.items()
                ],
            )
            about = [
                {"subject_ref": ref, "client_id": client_id, "key": key}
                for (client_id, key), (*_, subjects) in responses.items()
                for ref in subjects
            ]
            if about:
                session.connection().execute(_INSERT_SUBJECTS, about)

        batch.when_sealed.append(store)
    return responses


def _rendered(body: dict[str, Any]) -> dict[str, Any]:
    """The body with its receipt, if it holds one, in its JSON form."""
    if not any(isinstance(value, Receipt) for value in body.values()):
        return body
    return {k: v.as_json() if isinstance(v, Receipt) else v for k, v in body.items()}
