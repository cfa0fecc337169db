"""Webhooks: notifications pushed as well as pulled (issue 15, item 2).

An organisation may register one URL (``consent-ledger webhooks set``). Every obligation made
for it from then on gets a row in the outbox (``webhook_deliveries``), inserted by
``obligations.create`` in the transaction that made the obligation, so a committed
notification always has its delivery and a rolled-back one never does.

The deliverer (:func:`run`; ``consent-ledger serve`` starts it in one gunicorn worker,
``consent-ledger webhooks deliver`` in the foreground) takes the due rows, POSTs each
notification signed per Standard Webhooks (the ``standardwebhooks`` library) and records the
outcome. Delivery is at least once: a row is marked delivered only after a 2xx answer, so a
crash between the answer and the mark sends it again, with the same ``webhook-id`` (the
obligation id), by which the receiver de-duplicates. A failed attempt is retried with
exponential backoff and jitter until a day after the notification was made, then given up;
the IG dashboard shows deliveries failing and given up.

The signing secret is shown once, when it is made. It is stored sealed (AES-GCM, bound to the
organisation) under the webhook seal key (``webhook-seal.key``, which never rotates): a copy of
the database alone does not yield it. There is one seal key per database, however many hosts
serve it: the database records its id (``webhook_seal_key``) when the first host makes or
claims it, and a host holding no copy of that key, or another one, refuses to seal or open a
secret with a message naming the file to copy; it never makes a key of its own. Instances from
before that key sealed under a key derived with HKDF from the signing key, which rotates;
:func:`reseal_secrets` (run by ``init`` and by ``keys rotate-signing`` before it adds a key)
moves every secret under the seal key once, in the transaction that records it, and until then
both keys open them.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import random
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook as Signer

from app.errors import FieldError, InvalidRequest, NotFound
from app.ledger.checkpoint import load_private_key_pem
from app.ledger.events import time_text
from app.models import (
    LogHead,
    Obligation,
    Organisation,
    Webhook,
    WebhookDelivery,
    WebhookSealKey,
    table,
)
from app.services.container import Ledger
from app.services.instance_lock import instance_lock
from app.services.log import keys

logger = logging.getLogger("consent_ledger.webhooks")

EVENT_TYPE = "notification.created"
# Retried until this long after the notification was made, then given up (issue 15).
RETRY_FOR = timedelta(days=1)
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=1)
# A claimed row is not due again for this long (longer than a send can take), so two
# deliverers never send one row at once; a deliverer that takes over from a dead one frees
# the dead one's leases at once (release_leases).
LEASE = timedelta(minutes=5)
SEND_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 1.0
LOCK_FILE = "webhooks.lock"

_SEAL_INFO = b"consent-ledger webhook secret seal v1"
_NONCE_BYTES = 12
_SECRET_BYTES = 32
# Plain http only to this machine, for tests and demos; anything else must be https.
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


# -- the secret ---------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _legacy_cipher(signing_key_pem: bytes) -> AESGCM:
    """The key secrets were sealed under before the seal key: derived from the signing key."""
    raw = load_private_key_pem(signing_key_pem).private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    # Its own key under its own label: the Ed25519 seed is never used as an AES key itself.
    derived = HKDF(hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO).derive(raw)
    return AESGCM(derived)


def _aad(organisation_id: str) -> bytes:
    # Bound to its organisation: copied onto another organisation's row, it does not open.
    return b"consent-ledger webhook\x00" + organisation_id.encode()


def _legacy(ledger: Ledger) -> AESGCM | None:
    """The key of secrets sealed before the seal key, while ``signing-key.pem`` is held (a
    rotation re-seals everything before it can be retired)."""
    try:
        return _legacy_cipher(ledger.settings.signing_key_path.read_bytes())
    except FileNotFoundError:
        return None


def _recorded_key_id(session: Session) -> str | None:
    return session.execute(select(WebhookSealKey.key_id)).scalar_one_or_none()


def _lock_recorded_key_id(session: Session) -> str | None:
    """The recorded key id; while there is none, read under the log-head lock, so two hosts
    choosing the database's seal key at once (or one sealing the old way while another
    re-seals) take turns: exactly one key is recorded and no secret is left behind (SQLite:
    BEGIN IMMEDIATE already serialises writers). Once recorded it never changes."""
    recorded = _recorded_key_id(session)
    if recorded is not None:
        return recorded
    session.execute(select(LogHead.size).with_for_update())
    return _recorded_key_id(session)


def _held_seal_key(ledger: Ledger, recorded: str) -> AESGCM:
    """This host's copy of the database's seal key; refused, naming the file to copy, if this
    host lacks it or holds another one."""
    path = keys.webhook_seal_key_path(ledger.settings)
    local = keys.load_webhook_seal_key(ledger.settings)
    if local is not None and keys.webhook_seal_key_id(local) == recorded:
        return AESGCM(local)
    held = (
        "is missing" if local is None else f"holds another key ({keys.webhook_seal_key_id(local)})"
    )
    raise keys.WebhookSealKeyError(
        f"this database's webhook secrets are sealed under the webhook seal key {recorded}, "
        f"and {path} {held}: copy {keys.WEBHOOK_SEAL_KEY_FILE} (mode 0600) to {path} from a "
        f"host that serves this database (`consent-ledger keys list` there shows seal key "
        f"{recorded})"
    )


def _claim(ledger: Ledger, session: Session, local: bytes) -> tuple[AESGCM, int]:
    """Record ``local`` as the database's seal key and move every secret sealed the old way
    under it, in the caller's transaction (the caller holds the lock and found none recorded);
    the key, and how many secrets moved."""
    session.add(
        WebhookSealKey(id=1, key_id=keys.webhook_seal_key_id(local), created_at=ledger.clock())
    )
    seal = AESGCM(local)
    return seal, _reseal_the_old_way(ledger, session, seal)


def _reseal_the_old_way(ledger: Ledger, session: Session, seal: AESGCM) -> int:
    legacy = _legacy(ledger)
    if legacy is None:
        return 0  # the original signing key is gone: nothing can be sealed under it
    moved = 0
    for row in session.execute(select(Webhook).with_for_update()).scalars():
        nonce, body = row.secret_sealed[:_NONCE_BYTES], row.secret_sealed[_NONCE_BYTES:]
        aad = _aad(row.organisation_id)
        try:
            seal.decrypt(nonce, body, aad)
            continue  # already under the seal key
        except InvalidTag:
            pass
        try:
            secret = legacy.decrypt(nonce, body, aad)
        except InvalidTag:
            # Under neither (another host's stray seal key): left as it is; delivering it
            # names what to do.
            continue
        fresh = os.urandom(_NONCE_BYTES)
        row.secret_sealed = fresh + seal.encrypt(fresh, secret, aad)
        moved += 1
    return moved


def _sealing_key(ledger: Ledger, session: Session) -> AESGCM:
    """The key a new secret is sealed under, in the caller's write transaction: the database's
    seal key; before it has one, this host's ``webhook-seal.key`` (made by an earlier version,
    now recorded), or else the old way, which every host shares."""
    recorded = _lock_recorded_key_id(session)
    if recorded is not None:
        return _held_seal_key(ledger, recorded)
    local = keys.load_webhook_seal_key(ledger.settings)
    if local is not None:
        return _claim(ledger, session, local)[0]
    legacy = _legacy(ledger)
    if legacy is None:
        raise keys.WebhookSealKeyError(
            f"no webhook seal key at {keys.webhook_seal_key_path(ledger.settings)}: "
            "run `consent-ledger init`"
        )
    return legacy


def _unseal(ledger: Ledger, session: Session, organisation_id: str, sealed: bytes) -> bytes:
    """Open a secret, or refuse with what to do (never an InvalidTag)."""
    recorded = _recorded_key_id(session)
    if recorded is not None:
        ciphers = [_held_seal_key(ledger, recorded)]
    else:  # a key made by an earlier version, before the database recorded one
        local = keys.load_webhook_seal_key(ledger.settings)
        ciphers = [] if local is None else [AESGCM(local)]
    legacy = _legacy(ledger)
    if legacy is not None:
        ciphers.append(legacy)  # sealed the old way, not yet re-sealed
    nonce, body, aad = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _aad(organisation_id)
    for cipher in ciphers:
        try:
            return cipher.decrypt(nonce, body, aad)
        except InvalidTag:
            continue
    raise keys.WebhookSealKeyError(
        f"the webhook secret of {organisation_id} opens under no key this host holds: it was "
        "sealed under another webhook-seal.key. Copy that file here, or make a new secret with "
        f"`consent-ledger webhooks set {organisation_id} URL`"
    )


def seal_key_ids(ledger: Ledger) -> tuple[str | None, str | None]:
    """The id of the database's seal key (None: not chosen yet) and of this host's
    ``webhook-seal.key`` (None: no file), for ``keys list``."""
    with ledger.db.read() as session:
        recorded = _recorded_key_id(session)
    local = keys.load_webhook_seal_key(ledger.settings)
    return recorded, None if local is None else keys.webhook_seal_key_id(local)


def reseal_secrets(ledger: Ledger) -> int:
    """Make sure this host holds the database's webhook seal key, and move every secret sealed
    the old way (under the signing key) under it, in one transaction; how many were moved.
    Only when the database has no seal key yet is one made here (and recorded); a host lacking
    the recorded one is refused, naming the file to copy, and makes none of its own. Run
    before the signing key can change, so no secret is lost with it; running it again moves
    none."""
    with ledger.db.write() as session:
        recorded = _lock_recorded_key_id(session)
        if recorded is not None:
            return _reseal_the_old_way(ledger, session, _held_seal_key(ledger, recorded))
        keys.ensure_webhook_seal_key(ledger.settings)
        local = keys.load_webhook_seal_key(ledger.settings)
        if local is None:
            raise keys.WebhookSealKeyError(
                f"{keys.webhook_seal_key_path(ledger.settings)} vanished while being made"
            )
        return _claim(ledger, session, local)[1]


# -- registration -------------------------------------------------------------------------------


def check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    local = parts.scheme == "http" and parts.hostname in _LOCAL_HOSTS
    if not (parts.scheme == "https" or local) or not parts.hostname:
        raise InvalidRequest.from_fields(
            "the webhook URL is not accepted",
            [
                FieldError(
                    "url",
                    "must be an https:// URL (http:// only to 127.0.0.1 or localhost, "
                    "for tests and demos)",
                    "argument",
                )
            ],
        )
    try:
        parts.port  # noqa: B018 (it raises for a port that is not a number from 0 to 65535)
    except ValueError:
        raise InvalidRequest.from_fields(
            "the webhook URL is not accepted",
            [FieldError("url", "must have a port that is a number from 1 to 65535", "argument")],
        ) from None
    if parts.username or parts.password:
        raise InvalidRequest.from_fields(
            "the webhook URL is not accepted",
            [FieldError("url", "must not carry a user name or password", "argument")],
        )


def set_webhook(ledger: Ledger, organisation_id: str, url: str) -> str:
    """Register (or replace) the organisation's webhook; the new ``whsec_`` secret, which is
    never shown again. Replacing it makes a new secret: the old one stops verifying."""
    check_url(url)
    secret = secrets.token_bytes(_SECRET_BYTES)
    nonce = os.urandom(_NONCE_BYTES)
    with ledger.db.write() as session:
        if session.get(Organisation, organisation_id) is None:
            raise NotFound(f"there is no organisation {organisation_id!r}")
        cipher = _sealing_key(ledger, session)
        sealed = nonce + cipher.encrypt(nonce, secret, _aad(organisation_id))
        row = session.get(Webhook, organisation_id)
        if row is None:
            session.add(
                Webhook(
                    organisation_id=organisation_id,
                    url=url,
                    secret_sealed=sealed,
                    created_at=ledger.clock(),
                )
            )
        else:
            row.url, row.secret_sealed, row.created_at = url, sealed, ledger.clock()
    return "whsec_" + base64.b64encode(secret).decode()


def remove_webhook(ledger: Ledger, organisation_id: str) -> None:
    """Stop pushing to the organisation; deliveries not yet made are dropped (its feed still
    has every notification)."""
    with ledger.db.write() as session:
        if session.get(Webhook, organisation_id) is None:
            raise NotFound(f"organisation {organisation_id!r} has no webhook")
        session.execute(
            delete(WebhookDelivery).where(
                WebhookDelivery.organisation_id == organisation_id,
                WebhookDelivery.delivered_at.is_(None),
                WebhookDelivery.given_up_at.is_(None),
            )
        )
        session.execute(delete(Webhook).where(Webhook.organisation_id == organisation_id))


def list_webhooks(ledger: Ledger) -> list[tuple[str, str]]:
    """(organisation, URL) for every webhook; never the secrets."""
    with ledger.db.read() as session:
        rows = session.execute(
            select(Webhook.organisation_id, Webhook.url).order_by(Webhook.organisation_id)
        ).all()
    return [(org, url) for org, url in rows]


# -- the outbox ---------------------------------------------------------------------------------


_INSERT = insert(table(WebhookDelivery))


def enqueue(session: Session, now: datetime, obligations: Iterable[tuple[str, str]]) -> None:
    """Queue a delivery of each new obligation ``(id, organisation)`` whose organisation has a
    webhook; in the caller's transaction."""
    wanted = list(obligations)
    if not wanted:
        return
    hooked = set(
        session.execute(
            select(Webhook.organisation_id).where(
                Webhook.organisation_id.in_({org for _, org in wanted})
            )
        ).scalars()
    )
    rows = [
        {
            "obligation_id": obligation_id,
            "organisation_id": org,
            "created_at": now,
            "next_attempt_at": now,
            "attempts": 0,
        }
        for obligation_id, org in wanted
        if org in hooked
    ]
    if rows:
        session.connection().execute(_INSERT, rows)


# -- delivering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One claimed delivery, with everything needed to send it outside any transaction."""

    delivery_id: str
    url: str
    secret: bytes
    body: str


@dataclass(frozen=True)
class Outcome:
    status: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def retry_wait(attempts: int, rng: Callable[[], float] = random.random) -> timedelta:
    """How long after the ``attempts``-th failure to try again: doubling from FIRST_RETRY up
    to LONGEST_WAIT, each wait drawn between half and all of that (jitter, so a receiver that
    comes back is not met by every sender at once)."""
    ceiling = min(FIRST_RETRY * (1 << min(attempts - 1, 20)), LONGEST_WAIT)
    return ceiling * (0.5 + rng() / 2)


def claim(ledger: Ledger) -> Job | None:
    """Take the next due delivery, if any: leased (not due again for LEASE) and its attempt
    counted before it is sent, in a short transaction of its own, so nothing is held while
    sending (not the log head, not a row lock). One at a time, so a lease covers one send and
    a crash leaves at most one delivery sent but not recorded."""
    now = ledger.clock()
    query = (
        select(WebhookDelivery, Webhook, Obligation)
        .join(Webhook, Webhook.organisation_id == WebhookDelivery.organisation_id)
        .join(Obligation, Obligation.id == WebhookDelivery.obligation_id)
        .where(
            WebhookDelivery.delivered_at.is_(None),
            WebhookDelivery.given_up_at.is_(None),
            WebhookDelivery.next_attempt_at <= now,
            (WebhookDelivery.leased_until.is_(None)) | (WebhookDelivery.leased_until <= now),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.obligation_id)
        .limit(1)
    )
    if ledger.db.dialect == "postgresql":
        # A second deliverer (another machine, or ``webhooks deliver`` beside ``serve``)
        # skips the row this one is taking (SQLite: one writer at a time).
        query = query.with_for_update(of=WebhookDelivery, skip_locked=True)
    # Imported here: obligations imports this module to queue its deliveries.
    from app.services.notifications.obligations import notification_view

    with ledger.db.write() as session:
        found = session.execute(query).first()
        if found is None:
            return None
        delivery, hook, obligation = found
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.leased_until = now + LEASE
        body = {
            "type": EVENT_TYPE,
            "timestamp": time_text(obligation.created_at),
            "data": notification_view(obligation),
        }
        return Job(
            delivery.obligation_id,
            hook.url,
            _unseal(ledger, session, hook.organisation_id, hook.secret_sealed),
            json.dumps(body, separators=(",", ":"), sort_keys=True),
        )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would send the signed notification somewhere nobody registered.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def send(job: Job, now: datetime) -> Outcome:
    """POST one notification, signed; the answer's status, or why there was none. The error
    text names the kind of failure only (never the URL's query or the answer's body)."""
    signature = Signer(job.secret).sign(job.delivery_id, now, job.body)
    # The scheme was checked when the URL was registered (check_url): https, or http to this
    # machine; redirects are not followed.
    request = urllib.request.Request(  # noqa: S310
        job.url,
        data=job.body.encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "consent-ledger-webhooks",
            "webhook-id": job.delivery_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        },
    )
    try:
        with _OPENER.open(request, timeout=SEND_TIMEOUT_SECONDS) as response:
            return Outcome(int(response.status), None)
    except urllib.error.HTTPError as exc:
        return Outcome(int(exc.code), f"answered {exc.code}")
    except TimeoutError:
        return Outcome(None, "no answer within the timeout")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Outcome(None, f"could not connect: {type(reason).__name__}"[:200])
    except (http.client.HTTPException, ValueError) as exc:  # not HTTP, or a URL it cannot use
        return Outcome(None, f"no usable answer: {type(exc).__name__}"[:200])


def record(ledger: Ledger, delivery_id: str, outcome: Outcome) -> None:
    """Mark a delivery done after a 2xx; otherwise set its next attempt, or give it up once a
    day has passed since the notification was made."""
    now = ledger.clock()
    with ledger.db.write() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.delivered_at is not None:
            return  # the webhook was removed meanwhile, or the person erased
        delivery.leased_until = None
        delivery.last_status = outcome.status
        delivery.last_error = outcome.error
        if outcome.delivered:
            delivery.delivered_at = now
            return
        deadline = delivery.created_at + RETRY_FOR
        if now >= deadline:
            delivery.given_up_at = now
            logger.warning("gave up delivering notification %s: %s", delivery_id, outcome.error)
        else:
            delivery.next_attempt_at = min(now + retry_wait(delivery.attempts), deadline)


def release_leases(ledger: Ledger) -> int:
    """Free the leases of a deliverer that died mid-send (only the holder of the instance's
    lock calls this, so no live deliverer holds one): those rows are due at once, and are
    sent again with the same id (at least once). How many were freed."""
    with ledger.db.write() as session:
        leased = (
            session.execute(
                select(WebhookDelivery).where(
                    WebhookDelivery.leased_until.is_not(None),
                    WebhookDelivery.delivered_at.is_(None),
                    WebhookDelivery.given_up_at.is_(None),
                )
            )
            .scalars()
            .all()
        )
        for delivery in leased:
            delivery.leased_until = None
    return len(leased)


def deliver_due(ledger: Ledger) -> int:
    """Send every delivery due now, one at a time, each recorded as soon as it is answered;
    how many were attempted."""
    done = 0
    while (job := claim(ledger)) is not None:
        try:
            outcome = send(job, ledger.clock())
        except Exception as exc:  # recorded like any failure, so it backs off and gives up
            logger.exception("delivering notification %s failed", job.delivery_id)
            outcome = Outcome(None, f"failed: {type(exc).__name__}"[:200])
        record(ledger, job.delivery_id, outcome)
        done += 1
    return done


def run(
    ledger: Ledger, stop: threading.Event, *, once: bool = False, poll_seconds: float = POLL_SECONDS
) -> bool:
    """Deliver until ``stop`` is set (``once``: one pass). At most one deliverer per instance
    runs at a time, the holder of the instance's lock: ``serve``'s workers take turns, and
    ``webhooks deliver`` waits for its turn (``once``: returns False at once if it is not its
    turn). Whoever takes the lock first frees the leases of a deliverer that died mid-send."""
    while not stop.is_set():
        with instance_lock(ledger.settings.instance_path, LOCK_FILE) as mine:
            if mine:
                _deliver_while_held(ledger, stop, once, poll_seconds)
                return True
        if once:
            return False
        stop.wait(poll_seconds)
    return False


def _deliver_while_held(
    ledger: Ledger, stop: threading.Event, once: bool, poll_seconds: float
) -> None:
    released = False
    refused = None
    while not stop.is_set():
        try:
            if not released:
                if freed := release_leases(ledger):
                    logger.info(
                        "sending again %d deliveries left unanswered by a stopped deliverer", freed
                    )
                released = True
            deliver_due(ledger)
            refused = None
        except keys.WebhookSealKeyError as exc:
            # This host lacks the seal key: what to do, said once, not a traceback a second.
            # The delivery stays due (its attempt is not counted), for a host that holds it.
            if once:
                raise
            if str(exc) != refused:
                logger.error("cannot deliver webhooks from this host: %s", exc)
            refused = str(exc)
        except Exception:
            # A database hiccup must not end the deliverer: the rows are still there.
            logger.exception("webhook delivery pass failed; trying again")
        if once:
            return
        stop.wait(poll_seconds)


def start_in_background(ledger: Ledger) -> threading.Event:
    """Start :func:`run` in a daemon thread (one per gunicorn worker; the lock lets one of
    them deliver, and another take over when that worker goes); set the event to stop it."""
    stop = threading.Event()
    threading.Thread(target=run, args=(ledger, stop), name="webhooks", daemon=True).start()
    return stop


# -- for the IG dashboard -----------------------------------------------------------------------


@dataclass(frozen=True)
class Trouble:
    notification_id: str
    organisation_id: str
    kind: str
    created_at: datetime
    attempts: int
    last_attempt_at: datetime | None
    last_problem: str
    next_attempt_at: datetime | None  # None: given up
    given_up_at: datetime | None


def troubles(ledger: Ledger, organisation_id: str | None, limit: int = 50) -> list[Trouble]:
    """Deliveries given up, and those retrying after a failure, newest first: the
    organisation's, or every organisation's for ``None``."""
    query = (
        select(WebhookDelivery, Obligation.kind)
        .join(Obligation, Obligation.id == WebhookDelivery.obligation_id)
        .where(
            WebhookDelivery.delivered_at.is_(None),
            (WebhookDelivery.given_up_at.is_not(None))
            | (WebhookDelivery.last_status.is_not(None))
            | (WebhookDelivery.last_error.is_not(None)),
        )
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.obligation_id)
        .limit(limit)
    )
    if organisation_id is not None:
        query = query.where(WebhookDelivery.organisation_id == organisation_id)
    with ledger.db.read() as session:
        rows = session.execute(query).all()
    return [
        Trouble(
            d.obligation_id,
            d.organisation_id,
            kind,
            d.created_at,
            d.attempts,
            d.last_attempt_at,
            d.last_error or f"answered {d.last_status}",
            None if d.given_up_at is not None else d.next_attempt_at,
            d.given_up_at,
        )
        for d, kind in rows
    ]
