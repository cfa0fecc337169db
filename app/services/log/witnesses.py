"""Witness cosigning (c2sp.org/tlog-witness, tlog-cosignature): the defence against a split view.

A witness keeps the newest checkpoint of ours it cosigned, and cosigns a newer one only with a
consistency proof from that one: so a checkpoint it cosigned is one no other checkpoint it
cosigned contradicts, and two histories shown to different people cannot both be cosigned.

The submitter (:func:`run`; ``serve`` starts it in one gunicorn worker at a time, behind the
instance's ``witnesses.lock``, and ``consent-ledger witnesses submit`` runs it in the
foreground) looks about once a second for a checkpoint newer than a witness has cosigned, and
POSTs ``add-checkpoint`` to it (``old <size>``, the proof, a blank line, the signed note). Never
on a request's path: a write is answered when its own checkpoint is signed, as without
witnesses. A 409 names the size the witness holds: the checkpoint is sent again once, with a
proof from that size. Every line a witness answers is checked under its configured key before
it is stored; anything else (a refusal, a line that does not verify, no answer) is that
witness's last error, and it is tried again after a backoff.

Served (:func:`served_checkpoint`, ``/log/checkpoint`` and ``/v1/log/checkpoint``): with
witnesses configured, the newest checkpoint the quorum has cosigned, with every stored
cosignature on it as more signature lines of the signed note, as Tessera publishes; until a
checkpoint reaches the quorum, the one the submitter last showed the witnesses (before its
first round, the newest signed), with the lines it has. Never one older than was served
before (``witness_published``): a monitor that saw it would call that a rollback.
"""

from __future__ import annotations

import base64
import http.client
import logging
import random
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.ledger.cosignature import with_cosignatures
from app.ledger.errors import VerificationError
from app.models import LogCheckpoint, WitnessCosignature, WitnessPublished, WitnessStatus
from app.services.container import Ledger
from app.services.instance_lock import instance_lock
from app.services.log.witness_config import Witness, WitnessPolicy

logger = logging.getLogger("consent_ledger.witnesses")

POLL_SECONDS = 1.0
# Short: a witness that does not answer must not hold up the others for long.
SUBMIT_TIMEOUT_SECONDS = 5.0
FIRST_RETRY = timedelta(seconds=1)
LONGEST_WAIT = timedelta(minutes=1)
LOCK_FILE = "witnesses.lock"
MAX_ANSWER_BYTES = 64 * 1024
_SIZE_RE = re.compile(rb"(0|[1-9][0-9]{0,18})\n?")

# What each refusal means (c2sp.org/tlog-witness, "add-checkpoint"); the error text never
# quotes the answer's body, which is the witness's to word.
_MEANINGS = {
    400: "refused the request as malformed (400)",
    403: "refused our log's signature (403): is our verifier key in its configuration?",
    404: "does not know our log's origin (404): add the log to the witness",
    422: (
        "refused the checkpoint as inconsistent with one it cosigned (422): it saw a history "
        "this log does not extend"
    ),
}


# -- submitting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One witness's answer to one round: the line stored, or why not."""

    witness: str
    size: int
    line: str | None = None
    cosigned_at: datetime | None = None
    error: str | None = None
    # The size the witness says it holds (409), for the resubmission.
    witness_size: int | None = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # The protocol has no redirects; following one would send our checkpoint elsewhere.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def request_body(old_size: int, proof: list[bytes], note: str) -> bytes:
    """The add-checkpoint body: ``old <size>``, one base64 proof hash a line, a blank line,
    then the signed note."""
    lines = [f"old {old_size}"] + [base64.b64encode(h).decode("ascii") for h in proof]
    return ("\n".join(lines) + "\n\n" + note).encode("utf-8")


def _post(witness: Witness, body: bytes) -> tuple[int | None, bytes, str | None]:
    """(status, body, error): the status and body of the answer, or why there was none. The
    error names the kind of failure only."""
    # The scheme was checked when the configuration was read: http or https only.
    request = urllib.request.Request(  # noqa: S310
        witness.add_checkpoint_url,
        data=body,
        method="POST",
        headers={"Content-Type": "text/plain; charset=utf-8", "User-Agent": "consent-ledger"},
    )
    try:
        with _OPENER.open(request, timeout=SUBMIT_TIMEOUT_SECONDS) as response:
            return int(response.status), response.read(MAX_ANSWER_BYTES), None
    except urllib.error.HTTPError as exc:
        try:
            answer = exc.read(MAX_ANSWER_BYTES)
        except (OSError, http.client.HTTPException):
            answer = b""
        return int(exc.code), answer, None
    except TimeoutError:
        return None, b"", f"no answer within {SUBMIT_TIMEOUT_SECONDS:g} s"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            return None, b"", f"no answer within {SUBMIT_TIMEOUT_SECONDS:g} s"
        return None, b"", f"could not connect: {type(reason).__name__}"
    except (http.client.HTTPException, ValueError) as exc:
        return None, b"", f"no usable answer: {type(exc).__name__}"


def _proof(ledger: Ledger, old_size: int, size: int) -> list[bytes]:
    # None from size 0 (nothing to prove) or to the same size (the witness compares roots).
    if old_size in (0, size):
        return []
    with ledger.db.read() as session:
        return ledger.log_store.consistency_proof(session, old_size, size).hashes


def _cosignature(witness: Witness, note: str, answer: bytes) -> tuple[str, datetime] | None:
    """The witness's line in ``answer``, checked under its key over ``note``; None if there is
    none that verifies."""
    try:
        text = answer.decode("utf-8")
        lines = [line + "\n" for line in text.split("\n") if line]
        cosigned = witness.verifier.verify(with_cosignatures(note, lines))
    except (UnicodeDecodeError, VerificationError):
        return None
    try:
        at = datetime.fromtimestamp(cosigned.timestamp, UTC)
    except (OverflowError, OSError, ValueError):
        return None  # a time no calendar holds: not a cosignature we can date or serve
    return cosigned.line.rstrip("\n"), at


def submit(ledger: Ledger, witness: Witness, note: str, size: int, old_size: int) -> Outcome:
    """Show the signed checkpoint ``note`` (tree ``size``) to ``witness``, which last cosigned
    ``old_size``; on a 409, once more from the size the witness names."""
    outcome = _attempt(ledger, witness, note, size, old_size)
    if outcome.witness_size is None:
        return outcome
    held = outcome.witness_size
    if held > size:
        logger.error(
            "witness %s holds a checkpoint of ours for %d entries, beyond our newest (%d): "
            "this log was rolled back, or its key signed another history",
            witness.name,
            held,
            size,
        )
        return Outcome(
            witness.id,
            size,
            error=f"it holds a larger tree of ours ({held} entries) than our newest checkpoint",
        )
    second = _attempt(ledger, witness, note, size, held)
    if second.witness_size is not None:
        return Outcome(
            witness.id, size, error=f"answered 409 twice (it holds size {second.witness_size})"
        )
    return second


def _attempt(ledger: Ledger, witness: Witness, note: str, size: int, old_size: int) -> Outcome:
    body = request_body(old_size, _proof(ledger, old_size, size), note)
    status, answer, error = _post(witness, body)
    if status is None:
        return Outcome(witness.id, size, error=error)
    if status == 200:
        found = _cosignature(witness, note, answer)
        if found is None:
            return Outcome(
                witness.id, size, error="answered with no cosignature that verifies under its key"
            )
        return Outcome(witness.id, size, line=found[0], cosigned_at=found[1])
    if status == 409:
        held = _SIZE_RE.fullmatch(answer)
        if held is None:
            return Outcome(witness.id, size, error="answered 409 without the size it holds")
        return Outcome(witness.id, size, witness_size=int(held.group(1)))
    if status == 422:
        logger.error(
            "witness %s refused our checkpoint for %d entries as inconsistent with one it "
            "cosigned: it saw a history of this log that this one does not extend (a split "
            "view, or a rollback)",
            witness.name,
            size,
        )
    return Outcome(witness.id, size, error=_MEANINGS.get(status, f"answered {status}"))


def retry_wait(failures: int, rng: Callable[[], float] = random.random) -> timedelta:
    """Doubling from FIRST_RETRY up to LONGEST_WAIT, each drawn between half and all of it."""
    ceiling = min(FIRST_RETRY * (1 << min(failures - 1, 20)), LONGEST_WAIT)
    return ceiling * (0.5 + rng() / 2)


def _record(ledger: Ledger, outcome: Outcome) -> None:
    now = ledger.clock()
    with ledger.db.write() as session:
        status = session.get(WitnessStatus, outcome.witness)
        if status is None:
            status = WitnessStatus(witness=outcome.witness, cosigned_size=0, failures=0)
            session.add(status)
        status.last_attempt_at = now
        if outcome.line is None:
            status.failures += 1
            status.last_error = (outcome.error or "failed")[:300]
            status.next_attempt_at = now + retry_wait(status.failures)
            return
        assert outcome.cosigned_at is not None
        if session.get(WitnessCosignature, (outcome.size, outcome.witness)) is None:
            session.add(
                WitnessCosignature(
                    tree_size=outcome.size,
                    witness=outcome.witness,
                    line=outcome.line,
                    cosigned_at=outcome.cosigned_at,
                    created_at=now,
                )
            )
        status.cosigned_size = max(status.cosigned_size, outcome.size)
        status.last_success_at = now
        status.last_error = None
        status.failures = 0
        status.next_attempt_at = None


def submit_due(ledger: Ledger) -> list[Outcome]:
    """Show the newest checkpoint to each witness behind it whose backoff has passed, record
    each answer; what each answered."""
    policy = ledger.witnesses
    if not policy.configured:
        return []
    with ledger.db.read() as session:
        latest = ledger.log_store.latest_checkpoint(session)
        ids = [w.id for w in policy.witnesses]
        rows = session.execute(select(WitnessStatus).where(WitnessStatus.witness.in_(ids)))
        statuses = {s.witness: s for s in rows.scalars()}
        if latest is None:
            return []
        size, note = latest.tree_size, latest.note
        witnessed = _witnessed_size(session, policy)
        floor = _floor(session)
    now = ledger.clock()
    # What is served from now on: the newest the quorum cosigned, or while none has, the
    # checkpoint this round shows the witnesses; never less than what was served before.
    target = size if witnessed is None else witnessed
    if floor is None or target > floor:
        _raise_floor(ledger, target)
    due = []
    for witness in policy.witnesses:
        status = statuses.get(witness.id)
        old_size = 0 if status is None else status.cosigned_size
        if old_size == size:
            continue
        if status is not None and status.next_attempt_at and status.next_attempt_at > now:
            continue
        due.append((witness, old_size))
    if not due:
        return []
    # Each witness in a thread of its own: a round takes as long as the slowest answer (at
    # most the timeout), not the sum, so a witness that does not answer delays the others
    # by at most one timeout per backoff.
    with ThreadPoolExecutor(max_workers=len(due), thread_name_prefix="witness") as pool:
        done = list(
            pool.map(lambda job: _submit_and_record(ledger, job[0], job[1], note, size), due)
        )
    # Served from the moment the cosignatures were stored: the floor follows at once, so a
    # restart with other witnesses does not go back below it.
    with ledger.db.read() as session:
        witnessed = _witnessed_size(session, policy)
    if witnessed is not None and witnessed > target:
        _raise_floor(ledger, witnessed)
    return done


def _submit_and_record(
    ledger: Ledger, witness: Witness, old_size: int, note: str, size: int
) -> Outcome:
    if old_size > size:
        outcome = Outcome(
            witness.id,
            size,
            error=f"it cosigned {old_size} entries of ours, more than our newest checkpoint",
        )
    else:
        try:
            outcome = submit(ledger, witness, note, size, old_size)
        except Exception as exc:  # recorded like any failure, so it backs off
            logger.exception("submitting to witness %s failed", witness.name)
            outcome = Outcome(witness.id, size, error=f"failed: {type(exc).__name__}")
    _record(ledger, outcome)
    return outcome


def run(
    ledger: Ledger, stop: threading.Event, *, once: bool = False, poll_seconds: float = POLL_SECONDS
) -> bool:
    """Submit until ``stop`` is set (``once``: one pass). One submitter per instance at a time,
    the holder of ``witnesses.lock`` (``once`` returns False at once if another holds it)."""
    while not stop.is_set():
        with instance_lock(ledger.settings.instance_path, LOCK_FILE) as mine:
            if mine:
                while not stop.is_set():
                    try:
                        submit_due(ledger)
                    except Exception:
                        # A database hiccup must not end the submitter: it tries again.
                        logger.exception("witness submission pass failed; trying again")
                    if once:
                        break
                    stop.wait(poll_seconds)
                return True
        if once:
            return False
        stop.wait(poll_seconds)
    return False


def start_in_background(ledger: Ledger) -> threading.Event | None:
    """Start :func:`run` in a daemon thread when witnesses are configured (one per gunicorn
    worker; the lock lets one submit at a time); set the event to stop it."""
    if not ledger.witnesses.configured:
        return None
    stop = threading.Event()
    threading.Thread(target=run, args=(ledger, stop), name="witnesses", daemon=True).start()
    return stop


# -- serving ------------------------------------------------------------------------------------


def _witnessed_size(session: Session, policy: WitnessPolicy) -> int | None:
    """The newest tree size the quorum cosigned.

    No size beyond the quorum-th largest size the witnesses last cosigned can have enough
    cosignatures, so the walk backwards along the table's key starts there: as the submitter
    shows each checkpoint to every witness in one round, it usually stops at once (and with a
    witness down, at the last size it cosigned)."""
    ids = [w.id for w in policy.witnesses]
    cosigned = sorted(
        session.execute(
            select(WitnessStatus.cosigned_size).where(
                WitnessStatus.witness.in_(ids), WitnessStatus.cosigned_size > 0
            )
        ).scalars(),
        reverse=True,
    )
    if len(cosigned) < policy.quorum:
        return None
    found = session.execute(
        select(WitnessCosignature.tree_size)
        .where(
            WitnessCosignature.witness.in_(ids),
            WitnessCosignature.tree_size <= cosigned[policy.quorum - 1],
        )
        .group_by(WitnessCosignature.tree_size)
        .having(func.count() >= policy.quorum)
        .order_by(WitnessCosignature.tree_size.desc())
        .limit(1)
    ).scalar()
    return None if found is None else int(found)


def cosigned_note(session: Session, policy: WitnessPolicy, checkpoint: LogCheckpoint) -> str:
    """``checkpoint``'s signed note with every stored cosignature on it by a configured
    witness appended (c2sp.org/signed-note: one note, several signature lines)."""
    if not policy.configured:
        return checkpoint.note
    lines = session.execute(
        select(WitnessCosignature.line)
        .where(
            WitnessCosignature.tree_size == checkpoint.tree_size,
            WitnessCosignature.witness.in_([w.id for w in policy.witnesses]),
        )
        .order_by(WitnessCosignature.witness)
    ).scalars()
    try:
        return with_cosignatures(checkpoint.note, [line + "\n" for line in lines])
    except VerificationError:
        # Every line was checked before it was stored: only a change to the database behind
        # the service's back gets here. Serve the log's own note rather than fail.
        logger.error(
            "a stored cosignature on the checkpoint for %d entries is not a signature line",
            checkpoint.tree_size,
        )
        return checkpoint.note


def _floor(session: Session) -> int | None:
    row = session.get(WitnessPublished, 1)
    return None if row is None else row.tree_size


def _raise_floor(ledger: Ledger, size: int) -> None:
    """Raise the floor to ``size``, never lower it. Several hosts of one database each run a
    submitter: a read then a write would let one lower what another raised (a lost update at
    PostgreSQL's default isolation), so the raise is one conditional UPDATE, and the first row
    one INSERT whose loser (the same INSERT by another host) falls back to that UPDATE."""
    now = ledger.clock()
    raise_it = (
        update(WitnessPublished)
        .where(WitnessPublished.id == 1, WitnessPublished.tree_size < size)
        .values(tree_size=size, updated_at=now)
    )
    with ledger.db.write() as session:
        raised = session.connection().execute(raise_it).rowcount
        if raised or session.get(WitnessPublished, 1) is not None:
            return
        try:
            with session.begin_nested():
                session.add(WitnessPublished(id=1, tree_size=size, updated_at=now))
        except IntegrityError:
            session.execute(raise_it)


def _served_size(session: Session, policy: WitnessPolicy) -> int | None:
    """The newest the quorum cosigned, or the floor the submitter raised if that is newer (the
    witnesses or quorum changed, or no checkpoint has reached the quorum yet); None before the
    submitter's first round."""
    found = [s for s in (_witnessed_size(session, policy), _floor(session)) if s is not None]
    return max(found) if found else None


def served_checkpoint(ledger: Ledger) -> str:
    """The checkpoint the log publishes: without witnesses the newest signed one; with them
    the newest the quorum cosigned (never older than one served before: :func:`_served_size`),
    or before the submitter's first round, the newest signed one; each with its stored
    cosignatures. NotFound while the log is empty."""
    policy = ledger.witnesses
    with ledger.db.read() as session:
        chosen = None
        if policy.configured:
            size = _served_size(session, policy)
            if size is not None:
                # None if the database holds fewer entries now (restored): the newest, then.
                chosen = session.get(LogCheckpoint, size)
        if chosen is None:
            chosen = ledger.log_store.latest_checkpoint(session)
        if chosen is None:
            raise NotFound("the log is empty: no checkpoint has been signed yet")
        return cosigned_note(session, policy, chosen)


# -- for healthz, the dashboard and ``witnesses status`` ----------------------------------------


@dataclass(frozen=True)
class WitnessState:
    name: str
    id: str
    cosigned_size: int
    # Entries our newest checkpoint holds beyond what it cosigned, and for how long the
    # oldest checkpoint it has not cosigned has waited (0 when it is up to date).
    behind: int
    lag_seconds: int
    last_cosigned_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class WitnessReport:
    quorum: int
    log_size: int
    # The newest size the quorum cosigned (None if none has), and the size served.
    witnessed_size: int | None
    served_size: int
    witnesses: list[WitnessState]


def report(ledger: Ledger) -> WitnessReport | None:
    """Where each configured witness stands; None without witnesses."""
    policy = ledger.witnesses
    if not policy.configured:
        return None
    now = ledger.clock()
    states = []
    with ledger.db.read() as session:
        latest = ledger.log_store.latest_checkpoint(session)
        size = 0 if latest is None else latest.tree_size
        for witness in policy.witnesses:
            status = session.get(WitnessStatus, witness.id)
            cosigned = 0 if status is None else status.cosigned_size
            last_cosigned = session.execute(
                select(WitnessCosignature.cosigned_at).where(
                    WitnessCosignature.witness == witness.id,
                    WitnessCosignature.tree_size == cosigned,
                )
            ).scalar()
            waiting = session.execute(
                select(LogCheckpoint.created_at)
                .where(LogCheckpoint.tree_size > cosigned)
                .order_by(LogCheckpoint.tree_size)
                .limit(1)
            ).scalar()
            lag = 0 if waiting is None else max(0, int((now - waiting).total_seconds()))
            states.append(
                WitnessState(
                    name=witness.name,
                    id=witness.id,
                    cosigned_size=cosigned,
                    behind=max(0, size - cosigned),
                    lag_seconds=lag,
                    last_cosigned_at=last_cosigned,
                    last_attempt_at=None if status is None else status.last_attempt_at,
                    last_error=None if status is None else status.last_error,
                )
            )
        witnessed = _witnessed_size(session, policy)
        served = _served_size(session, policy)
        if served is None or served > size:
            served = size
    return WitnessReport(policy.quorum, size, witnessed, served, states)
