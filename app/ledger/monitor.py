"""What a monitor decides about a log it follows through its tiles (c2sp.org/tlog-tiles).

A monitor holds a :class:`MonitorState`: the keys it trusts, the witnesses whose cosignatures it
wants, the last checkpoint it accepted and the *right edge* of that tree (the hashes of
:func:`~app.ledger.merkle.root_node_ids`). Given a newly fetched checkpoint note and a
:class:`TileSource`, :func:`run` accepts the checkpoint, or raises the :class:`MonitorError`
that names what the log did:

* :class:`BadSignature`: the note is not signed by a key the monitor trusts, a trusted key's
  line does not verify, a witness's cosignature is forged, or too few witnesses cosigned;
* :class:`Rollback`: the signed tree is smaller than the one already accepted;
* :class:`SplitView`: the log signed a tree that does not extend the one already accepted
  (two histories under one key: the attack witnesses and monitors exist for);
* :class:`BadTile`: the tiles served do not hash to the signed root, an entry does not hash to
  its level-0 tile, or a higher-level tile disagrees with the tiles under it.

Consistency is proved by construction rather than by a proof the log supplies: the new leaf
hashes are appended to the saved right edge, so a root equal to the signed one means the new
tree is the old tree with those leaves after it. Only level-0 tiles (and their entry bundles)
are needed for that; the higher-level tiles covering the new leaves are fetched too and checked
against the nodes recomputed from level 0, because every other tiles client trusts them for
its proofs. When the root does not match, the tiles of the *served* tree at the saved size tell
a split view (a different history) from bad tiles (the same history, served wrong).

Keys: the first log key comes from the auditor (who may add more). A signing-key rotation is
followed from the log itself, as ``verify`` follows it, through two entries (issue 16 item 4):

* a key is adopted when a ``log.key_added`` entry among the checked entries announces it and it
  signs a checkpoint beside a trusted key that vouches for that checkpoint;
* a ``log.key_retired`` entry ``{vkey, last_size}`` closes that key's period: from then on it
  vouches only for trees of at most ``last_size`` entries (the monitor's sizes only grow, so in
  effect for none), it is never adopted, and a pending announcement of it is forgotten. A key
  that merely does not sign a checkpoint keeps its trust: a host still lacking the new key
  signs with the old one alone during the overlap.

A checkpoint of size N is accepted only if a trusted key whose period covers N signed it, and
no trusted key's line on it fails (retired keys' lines included). Order within one run: the
signature is checked first, against the periods known from the saved tree, because the new
entries are worth nothing until a trusted key has vouched for the root they must hash to. Once
the tiles reach that root, what the entries of (saved size, N] say about keys is known to be
the log's: their retirements apply to this checkpoint too (it must still be vouched for by a
key they leave covering N, else BadSignature), and only then are announced keys adopted. A
checkpoint signed by a retired key alone that leaves its retirement out (a copy of the key
showing another history) cannot be told from an honest one by its signatures; the monitor
accepts it and, still trusting the newer key, reports the real log as a split view.

Pure: no I/O and no clock; the tiles come from the caller's source.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from app.ledger import b64
from app.ledger.checkpoint import (
    Checkpoint,
    CheckpointVerifier,
    split_note,
)
from app.ledger.cosignature import CosignatureVerifier, cosigners
from app.ledger.entry import decode_entry
from app.ledger.errors import (
    CheckpointFormatError,
    EntryError,
    LedgerError,
    VerificationError,
    VerifierKeyError,
)
from app.ledger.merkle import (
    HASH_SIZE,
    CompactRange,
    NodeId,
    empty_root,
    leaf_hash,
    root_from_leaf_hashes,
    root_node_ids,
    tree_root,
)
from app.ledger.tiles import HEIGHT, WIDTH, Tile, decode_bundle, partial_width

__all__ = [
    "STATE_FORMAT",
    "BadSignature",
    "BadTile",
    "MonitorError",
    "MonitorState",
    "Report",
    "Rollback",
    "SplitView",
    "TileSource",
    "run",
]

STATE_FORMAT = "consent-ledger-monitor/2"
"""The ``format`` field of a saved state: a later layout gets a new name, not a silent guess."""
_STATE_FORMAT_1 = "consent-ledger-monitor/1"
"""The layout before ``retired_keys``: still read (an auditor's state file keeps working)."""
KEY_ADDED = "log.key_added"
"""The entry that announces a new signing key (``keys rotate-signing``, issue 16 item 4); its
``data.vkey`` is the key's verifier key."""
KEY_RETIRED = "log.key_retired"
"""The entry that retires a signing key (``keys rotate-signing --retire-old``); ``data.vkey``
signed the log's checkpoints up to ``data.last_size`` entries and none after."""
_KEY_EVENT_MARK = b'"type":"log.key_'


class MonitorError(LedgerError):
    """What the monitor found wrong. ``kind`` is a stable name (``bad-signature``,
    ``rollback``, ``split-view``, ``bad-tile``); ``evidence`` the signed notes that show it."""

    kind = "monitor"

    def __init__(self, message: str, evidence: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.evidence = evidence


class BadSignature(MonitorError):
    kind = "bad-signature"


class Rollback(MonitorError):
    kind = "rollback"


class SplitView(MonitorError):
    kind = "split-view"


class BadTile(MonitorError):
    kind = "bad-tile"


class TileSource(Protocol):
    """Where the tiles come from (the HTTP client, or a test's tree). Neither method is
    trusted: the monitor checks every byte either returns."""

    def hash_tile(self, tile: Tile) -> bytes:
        """The bytes served for a hash tile."""
        ...

    def bundle(self, tile: Tile) -> bytes | None:
        """The bytes served for an entry bundle (``tile`` names the level-0 tile it goes with),
        or None if the log withholds it."""
        ...


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{what} is not base64 text")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError(f"{what} is not base64") from None
    if len(raw) != HASH_SIZE:
        raise ValueError(f"{what} is not a 32-byte hash")
    return raw


@dataclass(frozen=True)
class MonitorState:
    """What a monitor carries from one run to the next. ``quorum`` None means every witness."""

    origin: str
    log_keys: tuple[str, ...]
    witnesses: tuple[str, ...] = ()
    quorum: int | None = None
    note: str | None = None
    size: int = 0
    root: bytes = field(default_factory=empty_root)
    edge: tuple[bytes, ...] = ()
    announced: tuple[str, ...] = ()
    retired: tuple[tuple[str, int], ...] = ()
    """(verifier key, last size) of every key a ``log.key_retired`` entry this monitor checked
    retired, trusted or not."""

    def __post_init__(self) -> None:
        if not self.log_keys:
            raise ValueError("a monitor trusts at least one log key")
        for vkey in self.log_keys:
            name = CheckpointVerifier.from_verifier_key(vkey).name
            if name != self.origin:
                raise VerifierKeyError(
                    f"the key {vkey!r} is named {name!r}, not the log's origin {self.origin!r}"
                )
        for vkey in self.announced:
            if CheckpointVerifier.from_verifier_key(vkey).name != self.origin:
                raise VerifierKeyError(f"the announced key {vkey!r} is not the log's")
        for vkey, last_size in self.retired:
            if CheckpointVerifier.from_verifier_key(vkey).name != self.origin:
                raise VerifierKeyError(f"the retired key {vkey!r} is not the log's")
            if isinstance(last_size, bool) or not isinstance(last_size, int) or last_size < 0:
                raise ValueError(f"the retired key {vkey!r} has no valid last size")
        if len({vkey for vkey, _ in self.retired}) != len(self.retired):
            raise ValueError("a key is retired twice")
        for vkey in self.witnesses:
            CosignatureVerifier.from_verifier_key(vkey)
        if self.quorum is not None and not 0 <= self.quorum <= len(self.witnesses):
            raise ValueError(
                f"a witness quorum of {self.quorum} cannot be met by {len(self.witnesses)} "
                "witnesses"
            )
        edge = CompactRange.from_root_nodes(self.size, self.edge)
        if edge.root() != self.root:
            raise ValueError("the saved right edge does not hash to the saved root")

    @classmethod
    def start(
        cls, log_key: str, witnesses: Sequence[str] = (), quorum: int | None = None
    ) -> MonitorState:
        """The state before a first run: one log key (got out of band), nothing seen yet."""
        origin = CheckpointVerifier.from_verifier_key(log_key).name
        return cls(origin, (log_key,), tuple(dict.fromkeys(witnesses)), quorum)

    def trusting(
        self,
        log_keys: Sequence[str] = (),
        witnesses: Sequence[str] = (),
        quorum: int | None = None,
    ) -> MonitorState:
        """This state with more log keys and witnesses trusted (the auditor's own options on a
        later run), and ``quorum`` instead of the saved one when given."""
        return replace(
            self,
            log_keys=tuple(dict.fromkeys([*self.log_keys, *log_keys])),
            witnesses=tuple(dict.fromkeys([*self.witnesses, *witnesses])),
            quorum=self.quorum if quorum is None else quorum,
        )

    @property
    def required_cosignatures(self) -> int:
        return len(self.witnesses) if self.quorum is None else self.quorum

    @property
    def last_sizes(self) -> dict[str, int]:
        """The last tree size each retired key may sign, by verifier key."""
        return dict(self.retired)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "origin": self.origin,
            "log_keys": list(self.log_keys),
            "witnesses": list(self.witnesses),
            "witness_quorum": self.quorum,
            "checkpoint": self.note,
            "size": self.size,
            "root": b64.encode(self.root),
            "right_edge": [b64.encode(h) for h in self.edge],
            "announced_keys": list(self.announced),
            "retired_keys": {vkey: last_size for vkey, last_size in self.retired},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MonitorState:
        """Read a saved state back; ValueError (or VerifierKeyError) naming what is wrong. The
        saved checkpoint must verify under the saved keys and state the saved size and root,
        and the right edge must fold to that root: a damaged state file is refused, not
        trusted.

        A state of format 1 (before retirements were read) is read with no retired keys and
        without its pending announcements: it may announce keys the log has since retired in
        entries already behind it, which this monitor will not read again."""
        fmt = data.get("format") if isinstance(data, Mapping) else None
        if fmt not in (STATE_FORMAT, _STATE_FORMAT_1):
            raise ValueError(f"not a monitor state (format {STATE_FORMAT!r} expected)")
        try:
            keys, witnesses, edge = data["log_keys"], data["witnesses"], data["right_edge"]
            announced = data["announced_keys"] if fmt == STATE_FORMAT else []
            retired = data["retired_keys"] if fmt == STATE_FORMAT else {}
            origin, note, size, quorum = (
                data["origin"],
                data["checkpoint"],
                data["size"],
                data["witness_quorum"],
            )
        except KeyError as exc:
            raise ValueError(f"the state has no {exc.args[0]!r}") from None
        if not (
            isinstance(origin, str)
            and isinstance(keys, list)
            and all(isinstance(k, str) for k in keys)
            and isinstance(witnesses, list)
            and all(isinstance(w, str) for w in witnesses)
            and isinstance(announced, list)
            and all(isinstance(k, str) for k in announced)
            and isinstance(retired, dict)  # each last size is checked by __post_init__
            and isinstance(edge, list)
            and (note is None or isinstance(note, str))
            and isinstance(size, int)
            and size >= 0
            and (quorum is None or isinstance(quorum, int))
        ):
            raise ValueError("the state's fields have the wrong types")
        root = _unb64(data["root"], "root")
        hashes = tuple(_unb64(h, "a right-edge hash") for h in edge)
        try:
            CompactRange.from_root_nodes(size, hashes)
        except ValueError:
            raise ValueError("the saved right edge does not match the saved size") from None
        state = cls(
            origin,
            tuple(keys),
            tuple(witnesses),
            quorum,
            note,
            size,
            root,
            hashes,
            tuple(announced),
            tuple(retired.items()),
        )
        if note is None:
            if size:
                raise ValueError("the state has a size but no checkpoint")
            return state
        try:
            checkpoint, signed = _signed(state, note)
            _vouched(state, checkpoint, signed, state.last_sizes)
        except MonitorError as exc:
            raise ValueError(f"the saved checkpoint does not verify: {exc}") from None
        if (checkpoint.size, checkpoint.root_hash) != (size, root):
            raise ValueError("the saved checkpoint does not state the saved size and root")
        return state


@dataclass(frozen=True)
class Report:
    """An accepted run: the state to save, and what was checked."""

    state: MonitorState
    checkpoint: Checkpoint
    new_entries: int
    entries_checked: int
    withheld: int
    adopted: tuple[str, ...] = ()
    retired: tuple[str, ...] = ()
    """Keys a ``log.key_retired`` entry among this run's new entries retired (their last sizes
    are in ``state.retired``)."""
    cosigned_by: tuple[str, ...] = ()
    unadopted: tuple[str, ...] = ()
    """Key ids (hex) that signed beside a trusted key under the log's name, but that no
    ``log.key_added`` entry this monitor checked announces (and none retired): not trusted."""


# --- signatures ----------------------------------------------------------------------------------


def _signed(state: MonitorState, note: str) -> tuple[Checkpoint, set[str]]:
    """The checkpoint, and the trusted keys whose lines verify on it (whatever their periods),
    if no trusted key's line fails."""
    try:
        body, lines = split_note(note)
    except VerificationError:
        raise BadSignature("the checkpoint is not a well-formed signed note") from None
    trusted = [CheckpointVerifier.from_verifier_key(k) for k in state.log_keys]
    by_id = {(v.name, v.key_id): v for v in trusted}
    signed: set[str] = set()
    for line in lines:
        verifier = by_id.get((line.name, line.key_id))
        if verifier is None:
            continue
        # signed-note: a failing line from a known key rejects the note, so one good line
        # cannot vouch for a note that also carries a forged one.
        if not verifier.verify_signature(body, line.signature):
            raise BadSignature(
                f"the signature by trusted log key {line.key_id.hex()} does not verify"
            )
        signed.add(verifier.verifier_key())
    if not signed:
        ids = ", ".join(line.key_id.hex() for line in lines if line.name == state.origin)
        raise BadSignature(
            "the checkpoint is signed by no key this monitor trusts"
            + (f" (it carries key ids {ids} under the log's name)" if ids else "")
        )
    try:
        checkpoint = Checkpoint.from_body(body)
    except CheckpointFormatError as exc:
        raise BadSignature(f"the signed note is not a checkpoint: {exc}") from None
    if checkpoint.origin != state.origin:
        raise BadSignature(
            f"the checkpoint's origin is {checkpoint.origin!r}, not {state.origin!r}"
        )
    return checkpoint, signed


def _vouched(
    state: MonitorState, checkpoint: Checkpoint, signed: set[str], last_sizes: Mapping[str, int]
) -> None:
    """BadSignature unless a key in ``signed`` covers the checkpoint's size: a key the log
    retired (``last_sizes``) vouches only for trees of at most its last size."""
    size = checkpoint.size
    if any(last_sizes.get(vkey, size) >= size for vkey in signed):
        return
    past = "; ".join(
        f"log key {vkey} was retired by the log after size {last_sizes[vkey]}"
        for vkey in state.log_keys
        if vkey in signed
    )
    raise BadSignature(
        f"the checkpoint of {size} entries is signed by no key this monitor trusts for that "
        f"size ({past}, by a log.key_retired entry)"
    )


def _adopt(
    state: MonitorState, note: str, announced: Sequence[str], last_sizes: Mapping[str, int]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The keys to trust from now on, and the key ids left untrusted: each other line under the
    log's name, on a note a trusted key vouched for (a rotation's overlap), is adopted if a
    ``log.key_added`` entry in the tree this monitor checked announces its key, no
    ``log.key_retired`` entry retired it, and the line verifies under it. The public key comes
    from the log itself, not from an answer anyone between the log and the monitor could
    change: whoever controls the answers but not the key can add their own line to a genuine
    checkpoint, not an entry to a tree the key signed; and a retired key (a copy may survive
    somewhere) is never trusted again. An announced key whose line does not verify rejects the
    note; a retired key's line is ignored."""
    body, lines = split_note(note)
    trusted = {CheckpointVerifier.from_verifier_key(k).key_id for k in state.log_keys}
    retired = {CheckpointVerifier.from_verifier_key(k).key_id for k in last_sizes}
    by_id = {v.key_id: v for v in (CheckpointVerifier.from_verifier_key(k) for k in announced)}
    adopted: list[str] = []
    unadopted: list[str] = []
    for line in lines:
        if line.name != state.origin or line.key_id in trusted or line.key_id in retired:
            continue
        verifier = by_id.get(line.key_id)
        if verifier is None:
            unadopted.append(line.key_id.hex())
            continue
        if not verifier.verify_signature(body, line.signature):
            raise BadSignature(
                f"the signature by announced log key {line.key_id.hex()} does not verify"
            )
        adopted.append(verifier.verifier_key())
    return tuple(dict.fromkeys(adopted)), tuple(dict.fromkeys(unadopted))


def _key_event(state: MonitorState, entry: bytes) -> tuple[str, int | None] | None:
    """(verifier key, None) of a ``log.key_added`` entry about a key of this log, (verifier
    key, last size) of a ``log.key_retired`` one; None for any other entry."""
    # A canonical entry has no spaces: the cheap test skips decoding every other entry.
    if _KEY_EVENT_MARK not in entry:
        return None
    try:
        value = decode_entry(entry)
    except EntryError:
        return None
    kind, data = value.get("type"), value.get("data")
    if kind not in (KEY_ADDED, KEY_RETIRED) or not isinstance(data, dict):
        return None
    vkey, last_size = data.get("vkey"), data.get("last_size")
    if not isinstance(vkey, str):
        return None
    if kind == KEY_RETIRED and (
        isinstance(last_size, bool) or not isinstance(last_size, int) or last_size < 0
    ):
        return None
    try:
        if CheckpointVerifier.from_verifier_key(vkey).name != state.origin:
            return None
    except VerifierKeyError:
        return None
    return vkey, last_size if kind == KEY_RETIRED else None


def _cosigned(state: MonitorState, note: str) -> tuple[str, ...]:
    """The witnesses that cosigned, if at least the quorum did; BadSignature otherwise. One
    public key counts once, under whatever names it is given: a key id hashes the name with
    the key, so one key holder can sign under any name."""
    found: list[str] = []
    missing: list[str] = []
    counted: set[bytes] = set()
    for vkey in state.witnesses:
        witness = CosignatureVerifier.from_verifier_key(vkey)
        try:
            ok = bool(cosigners(note, [witness]))
        except VerificationError:
            raise BadSignature(
                f"the cosignature by witness {witness.name} does not verify"
            ) from None
        if witness.public_key in counted:
            continue
        if ok:
            counted.add(witness.public_key)
        (found if ok else missing).append(witness.name)
    if len(found) < state.required_cosignatures:
        raise BadSignature(
            f"{len(found)} of the {state.required_cosignatures} witness cosignatures required "
            f"(missing: {', '.join(missing)})"
        )
    return tuple(found)


# --- tiles ---------------------------------------------------------------------------------------


def _tile_at(level: int, index: int, size: int) -> Tile:
    """Hash tile ``index`` at tile ``level`` as a tree of ``size`` leaves has it: full when the
    tree holds all of it, else the partial tile of the tree's width at that level."""
    full = Tile(level, index)
    if full.leaves_needed() <= size:
        return full
    width = partial_width(size, level)
    assert width, "the tile lies beyond the tree"
    return Tile(level, index, width)


def _hashes(source: TileSource, tile: Tile) -> list[bytes]:
    data = source.hash_tile(tile)
    if len(data) != HASH_SIZE * tile.width:
        raise BadTile(
            f"bad tile: tile {tile.path()} holds {len(data)} bytes, not {HASH_SIZE * tile.width}"
        )
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def _check_bundle(tile: Tile, data: bytes, hashes: Sequence[bytes]) -> list[bytes]:
    """The bundle's entries, once each hashes to its leaf hash in the tile."""
    where = f"entries/{tile.path().split('/', 1)[1]}"
    try:
        entries = decode_bundle(data)
    except ValueError as exc:
        raise BadTile(f"bad tile: entry bundle {where}: {exc}") from None
    if len(entries) != tile.width:
        raise BadTile(
            f"bad tile: entry bundle {where} holds {len(entries)} entries, not {tile.width}"
        )
    for i, (entry, expected) in enumerate(zip(entries, hashes, strict=True)):
        if leaf_hash(entry) != expected:
            raise BadTile(
                f"bad tile: entry bundle {where}: entry {tile.first + i} does not hash to "
                f"its leaf hash in tile {tile.path()}"
            )
    return entries


def _served_root(size: int, served_size: int, source: TileSource) -> bytes:
    """The root of the first ``size`` leaves of the tree the log serves (of ``served_size``
    leaves), from its hash tiles: each perfect subtree of :func:`root_node_ids` is a run of
    hashes in one tile (a tile hash when its height is a multiple of 8)."""
    tiles: dict[Tile, list[bytes]] = {}
    nodes: dict[NodeId, bytes] = {}
    for level, index in root_node_ids(size):
        tile_level = level // HEIGHT
        span = level - HEIGHT * tile_level
        first = index << span  # index at tree level HEIGHT * tile_level
        tile = _tile_at(tile_level, first // WIDTH, served_size)
        if tile not in tiles:
            tiles[tile] = _hashes(source, tile)
        offset = first - tile.first
        nodes[(level, index)] = root_from_leaf_hashes(tiles[tile][offset : offset + (1 << span)])
    return tree_root(size, nodes)


@dataclass
class _Walk:
    """The new leaves appended to the saved right edge, tile by tile."""

    edge: CompactRange
    checked: int = 0
    withheld: int = 0
    bad_prefix: Tile | None = None
    upper: dict[int, dict[int, bytes]] = field(default_factory=dict)
    tiles: list[Tile] = field(default_factory=list)
    announced: list[str] = field(default_factory=list)
    retired: dict[str, int] = field(default_factory=dict)


def _walk(
    state: MonitorState,
    size: int,
    source: TileSource,
    progress: Callable[[int, int], None] | None,
) -> _Walk:
    old = state.size
    walk = _Walk(CompactRange.from_root_nodes(old, state.edge))
    # The saved edge's nodes below tree level 8 hash exactly the leaves [256 * k, old) of the
    # level-0 tile the saved tree ends inside: what that tile's first hashes must rebuild.
    low = [h for (level, _), h in walk.edge.root_nodes() if level < HEIGHT]
    for index in range(old // WIDTH, -(-size // WIDTH)):
        tile = _tile_at(0, index, size)
        walk.tiles.append(tile)
        hashes = _hashes(source, tile)
        seen = max(old - tile.first, 0)
        if seen:
            prefix = CompactRange()
            prefix.extend(hashes[:seen])
            if [h for _, h in prefix.root_nodes()] != low:
                walk.bad_prefix = tile
        bundle = source.bundle(tile)
        if bundle is None:
            walk.withheld += tile.width - seen
        else:
            entries = _check_bundle(tile, bundle, hashes)
            walk.checked += tile.width - seen
            for entry in entries[seen:]:
                event = _key_event(state, entry)
                if event is None:
                    continue
                vkey, last_size = event
                if last_size is None:
                    walk.announced.append(vkey)
                else:  # retired twice (it should not be): the shorter period holds
                    walk.retired[vkey] = min(last_size, walk.retired.get(vkey, last_size))
        for level, first, created in walk.edge.extend(hashes[seen:]):
            if level and level % HEIGHT == 0:
                found = walk.upper.setdefault(level // HEIGHT, {})
                found.update((first + i, h) for i, h in enumerate(created))
        if progress is not None:
            progress(walk.edge.size - old, size - old)
    return walk


def _check_upper(walk: _Walk, size: int, source: TileSource) -> None:
    """The higher-level tiles over the new leaves hold the nodes recomputed from level 0."""
    for level, nodes in sorted(walk.upper.items()):
        for index in sorted({i // WIDTH for i in nodes}):
            tile = _tile_at(level, index, size)
            for i, served in enumerate(_hashes(source, tile)):
                expected = nodes.get(tile.first + i)
                if expected is not None and served != expected:
                    raise BadTile(
                        f"bad tile: hash {i} of tile {tile.path()} is not the hash of the "
                        f"level-{level - 1} tile under it"
                    )


def run(
    state: MonitorState,
    note: str,
    source: TileSource,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Check a newly fetched checkpoint ``note`` and the tiles behind it against ``state``.

    ``progress`` is called with (entries done, entries to check) after each tile. Returns the
    :class:`Report` whose state to save; raises the :class:`MonitorError` naming what is wrong.
    """
    checkpoint, signed = _signed(state, note)
    _vouched(state, checkpoint, signed, state.last_sizes)
    cosigned = _cosigned(state, note)
    old, size = state.size, checkpoint.size
    evidence = (state.note, note) if state.note is not None else (note,)
    if size < old:
        raise Rollback(
            f"rollback: the log's signed tree went from {old} to {size} entries", evidence
        )
    if size == old and checkpoint.root_hash != state.root:
        raise SplitView(
            f"split view: the log signed two different trees of {size} entries", evidence
        )
    accepted = replace(state, note=note)
    new_entries = checked = withheld = 0
    announced = list(state.announced)
    last_sizes = state.last_sizes
    if size > old:
        try:
            walk = _extend(state, checkpoint, source, progress, evidence)
        except BadTile as exc:
            # Bad tiles are evidence against the log too: keep the checkpoint served with them.
            raise BadTile(exc.message, exc.evidence or evidence) from None
        accepted = replace(
            accepted,
            size=size,
            root=checkpoint.root_hash,
            edge=tuple(h for _, h in walk.edge.root_nodes()),
        )
        new_entries, checked, withheld = size - old, walk.checked, walk.withheld
        announced += walk.announced
        for vkey, last_size in walk.retired.items():
            last_sizes[vkey] = min(last_size, last_sizes.get(vkey, last_size))
    # Only now are the new entries known to be in the tree a trusted key signed: a retirement
    # among them applies to this very checkpoint, before any key is adopted from it.
    _vouched(state, checkpoint, signed, last_sizes)
    adopted, unadopted = _adopt(state, note, announced, last_sizes)
    keys = tuple(dict.fromkeys([*state.log_keys, *adopted]))
    accepted = replace(
        accepted,
        log_keys=keys,
        announced=tuple(
            k for k in dict.fromkeys(announced) if k not in keys and k not in last_sizes
        ),
        retired=tuple(last_sizes.items()),
    )
    retired = tuple(k for k in last_sizes if k not in state.last_sizes)
    return Report(
        accepted,
        checkpoint,
        new_entries,
        checked,
        withheld,
        adopted,
        retired,
        cosigned,
        unadopted,
    )


def _extend(
    state: MonitorState,
    checkpoint: Checkpoint,
    source: TileSource,
    progress: Callable[[int, int], None] | None,
    evidence: tuple[str, ...],
) -> _Walk:
    """The new leaves appended to the saved edge, checked to reach the signed root; then the
    higher-level tiles over them."""
    old, size = state.size, checkpoint.size
    walk = _walk(state, size, source, progress)
    if walk.edge.root() != checkpoint.root_hash:
        if old and _served_root(old, size, source) != state.root:
            raise SplitView(
                f"split view: the log's signed tree of {size} entries does not extend the tree "
                f"of {old} entries this monitor accepted (its first {old} entries hash to "
                "another root)",
                evidence,
            )
        raise BadTile(
            f"bad tile: the level-0 tiles {walk.tiles[0].path()} to {walk.tiles[-1].path()} do "
            f"not hash to the signed root of the tree of {size} entries",
            evidence,
        )
    if walk.bad_prefix is not None:
        # The new leaves extend the saved edge to the signed root, so the log is consistent;
        # only the tile's copy of leaves already checked is wrong.
        raise BadTile(
            f"bad tile: the first {old - walk.bad_prefix.first} hashes of tile "
            f"{walk.bad_prefix.path()} are not those of the entries this monitor already checked"
        )
    _check_upper(walk, size, source)
    return walk
