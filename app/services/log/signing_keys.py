"""Signing-key rotation (``consent-ledger keys rotate-signing [--retire-old]``) and the key list
``GET /v1/log/key`` serves.

A rotation adds the next generation's key (``signing-keys/<g>.pem``) and, in one write
transaction of its own, lists it (``signing_keys``) from the size of the checkpoint that covers
a ``log.key_added`` entry naming it: that checkpoint, and every one after it, is signed by both
keys, so anyone who trusts the old key learns the new one from a checkpoint the old key signed.
Running workers read the list at each write (``LogStore.keys``) and sign with both from then on.

``--retire-old`` ends the overlap once a checkpoint signed by both is stored and published: in
one transaction the older key's period is closed at the last checkpoint it signed and a
``log.key_retired`` entry is logged, signed by the new key alone; then its private key is
destroyed. Its public key stays listed, so the history it signed still verifies, and nothing it
signs after its period does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from app.errors import Conflict
from app.ledger.checkpoint import KeyRing
from app.ledger.errors import VerificationError
from app.ledger.events import KeyAdded, KeyRetired, envelope
from app.models import LogCheckpoint, SigningKey, table
from app.services.container import Ledger
from app.services.log import keys

# Checkpoints searched for one both keys signed before a retirement is refused (the first
# after the rotation is one, unless another host signed it without the new key).
_DUAL_SIGNED_SEARCH = 1_000


@dataclass(frozen=True)
class ListedKey:
    """One signing key as ``GET /v1/log/key`` lists it: the checkpoints it signed, by tree size
    and by the time each was signed (the stored checkpoints' own times)."""

    generation: int
    vkey: str
    first_size: int | None
    first_at: datetime | None
    last_size: int | None
    last_at: datetime | None

    @property
    def key_id(self) -> str:
        return self.vkey.split("+")[1]

    @property
    def status(self) -> str:
        return "active" if self.last_size is None else "retired"

    def as_json(self) -> dict[str, object]:
        return {
            "vkey": self.vkey,
            "key_id": self.key_id,
            "generation": self.generation,
            "status": self.status,
            "first_size": self.first_size,
            "first_at": _time(self.first_at),
            "last_size": self.last_size,
            "last_at": _time(self.last_at),
        }


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _checkpoint_times(session: Session, sizes: set[int]) -> dict[int, datetime]:
    if not sizes:
        return {}
    rows = session.execute(
        select(LogCheckpoint.tree_size, LogCheckpoint.created_at).where(
            LogCheckpoint.tree_size.in_(sizes)
        )
    )
    return {size: at for size, at in rows}


def _first_checkpoint_size(session: Session) -> int | None:
    return session.execute(
        select(LogCheckpoint.tree_size).order_by(LogCheckpoint.tree_size).limit(1)
    ).scalar_one_or_none()


def _listed(ledger: Ledger, session: Session) -> list[tuple[int, str, int | None, int | None]]:
    rows: list[tuple[int, str, int | None, int | None]] = [
        (r.generation, r.vkey, r.first_size, r.last_size) for r in _rows(session)
    ]
    if not rows:  # never rotated: the one key has signed every checkpoint there is
        vkey = ledger.log_store.keys(session).ring.keys[0].verifier.verifier_key()
        rows = [(1, vkey, _first_checkpoint_size(session), None)]
    return rows


def newest_vkey(ledger: Ledger, session: Session) -> str:
    """The key to publish: the newest the log lists (it signs every checkpoint from now on;
    ``GET /v1/log/key`` serves it). Not the newest file held: a rotation cut short between
    writing its file and listing it leaves a key that has signed nothing."""
    return _listed(ledger, session)[0][1]


def list_keys(ledger: Ledger) -> list[ListedKey]:
    """Every key the log lists, newest first, with the period each signed."""
    with ledger.db.read() as session:
        rows = _listed(ledger, session)
        times = _checkpoint_times(
            session, {s for _, _, first, last in rows for s in (first, last) if s is not None}
        )
    return [
        ListedKey(
            g,
            v,
            first,
            None if first is None else times.get(first),
            last,
            None if last is None else times.get(last),
        )
        for g, v, first, last in rows
    ]


# -- rotation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rotated:
    generation: int
    vkey: str
    path: str
    index: int
    first_size: int


def rotate(ledger: Ledger) -> Rotated:
    """Add the next signing key and list it from a checkpoint both keys sign, made now.

    Refused (Conflict) while two keys are signing already. Resumable: a key file written by a
    rotation that stopped before listing it is listed now instead of a new one."""
    settings = ledger.settings
    with ledger.db.read() as session:
        listed = _rows(session)
    if sum(1 for r in listed if r.last_size is None) > 1:
        raise Conflict(
            "two signing keys are signing already: end the overlap with "
            "`consent-ledger keys rotate-signing --retire-old` before adding another"
        )
    held = keys.load_signing_keys(settings)
    newest_listed = max((r.generation for r in listed), default=1)
    generation = max(held) if max(held) > newest_listed else newest_listed + 1
    signer = held.get(generation) or keys.add_signing_key(settings, generation)
    vkey = signer.verifier_key()
    now = ledger.clock()

    def work(session: Session) -> tuple[int, int]:
        head = ledger.log_store.lock_head(session)
        rows = _rows(session)
        if any(r.generation >= generation for r in rows):
            raise Conflict("another rotation listed a key meanwhile: see GET /v1/log/key")
        first_size = head.size + 1  # the checkpoint sealing this transaction's one entry
        if not rows:
            # The first rotation lists the original key too, from the log's first checkpoint,
            # so its public half stays listed once the file is gone.
            original = ledger.log_store.keys(session).ring.keys[0].verifier.verifier_key()
            start = _first_checkpoint_size(session)
            _insert(session, 1, original, first_size if start is None else start)
        _insert(session, generation, vkey, first_size)
        # Listed before the first append: the batch signs with the keys listed when it opens.
        (receipt,) = ledger.log_store.append(
            session, [envelope(KeyAdded(vkey=vkey, generation=generation), now)], now
        )
        return receipt.index, first_size

    index, first_size = ledger.write(work, alone=True)
    path = keys.signing_key_path(settings, generation)
    return Rotated(generation, vkey, str(path), index, first_size)


@dataclass(frozen=True)
class Retired:
    generation: int
    vkey: str
    last_size: int
    index: int
    destroyed: str | None


def retire_old(ledger: Ledger) -> list[Retired]:
    """End the overlap: close every older key's period at the last checkpoint it signed, log
    that, then destroy its private key.

    Refused (Conflict) unless a checkpoint signed by the newest key and by each key retired is
    stored and in the published-checkpoint record's history (a monitor trusting only the old
    key can then learn the new one)."""
    settings = ledger.settings
    now = ledger.clock()
    ring = ledger.keyring()
    recorded = ledger.published.read(ring)  # before the snapshot, as every reader of it

    def work(session: Session) -> list[tuple[int, str, int, int]]:
        head = ledger.log_store.lock_head(session)
        rows = _rows(session)
        active = [r for r in rows if r.last_size is None]
        if len(active) < 2:
            raise Conflict(
                "there is no older signing key to retire: run `consent-ledger keys "
                "rotate-signing` first"
            )
        newest, older = active[0], active[1:]
        published_size = recorded.checkpoint.size if recorded is not None else 0
        _check_dual_signed(session, ledger.log_store.keys(session).ring, newest, older,
                           published_size)  # fmt: skip
        last_size = head.size  # the newest checkpoint, signed while every key was active
        for row in older:
            session.execute(
                update(table(SigningKey))
                .where(table(SigningKey).c.generation == row.generation)
                .values(last_size=last_size)
            )
        entries = [
            envelope(KeyRetired(vkey=r.vkey, generation=r.generation, last_size=last_size), now)
            for r in older
        ]
        receipts = ledger.log_store.append(session, entries, now)
        return [
            (r.generation, r.vkey, last_size, receipt.index)
            for r, receipt in zip(older, receipts, strict=True)
        ]

    done = ledger.write(work, alone=True)
    # Destroyed only once its retirement is committed: until then it may still be needed.
    out = []
    for generation, vkey, last_size, index in done:
        path = keys.destroy_signing_key(settings, generation)
        out.append(Retired(generation, vkey, last_size, index, None if path is None else str(path)))
    return out


def destroy_retired(ledger: Ledger) -> list[str]:
    """Destroy the private keys of retired keys still in the instance folder (a retirement
    stopped between its commit and the destruction, or a file put back): their paths."""
    with ledger.db.read() as session:
        retired = [r.generation for r in _rows(session) if r.last_size is not None]
    return [
        str(path)
        for g in retired
        if (path := keys.destroy_signing_key(ledger.settings, g)) is not None
    ]


@dataclass(frozen=True)
class _Row:
    generation: int
    vkey: str
    first_size: int
    last_size: int | None


def _rows(session: Session) -> list[_Row]:
    """The listed keys, newest first."""
    return [
        _Row(*row)
        for row in session.execute(
            select(SigningKey.generation, SigningKey.vkey, SigningKey.first_size,
                   SigningKey.last_size).order_by(SigningKey.generation.desc())
        )
    ]  # fmt: skip


def _insert(session: Session, generation: int, vkey: str, first_size: int) -> None:
    session.execute(
        insert(table(SigningKey)).values(
            generation=generation, vkey=vkey, first_size=first_size, last_size=None
        )
    )


def _check_dual_signed(
    session: Session, ring: KeyRing, newest: _Row, older: list[_Row], published_size: int
) -> None:
    wanted = {newest.vkey, *(r.vkey for r in older)}
    notes = session.execute(
        select(LogCheckpoint.note)
        .where(
            LogCheckpoint.tree_size >= newest.first_size,
            LogCheckpoint.tree_size <= published_size,
        )
        .order_by(LogCheckpoint.tree_size)
        .limit(_DUAL_SIGNED_SEARCH)
    ).scalars()
    for note in notes:
        try:
            _, signed = ring.signed_by(note)
        except VerificationError:
            continue
        if wanted <= {k.verifier.verifier_key() for k in signed}:
            return
    raise Conflict(
        "no checkpoint signed by both the new key and the old one is stored and published "
        "yet: write once (any write) and run this again"
    )
