"""The monitor's decisions (app.ledger.monitor), on logs held in memory and served as tiles.

Each log here is a :class:`~app.ledger.merkle.MemoryTree` whose tiles are cut by
``app.ledger.tiles.hash_tile``, the function the service serves them with, signed with real
keys; a test then damages what one of them serves (a flipped hash, a wrong entry, a second
history under the same key) and checks what the monitor names.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.ledger.checkpoint import Checkpoint, CheckpointSigner
from app.ledger.cosignature import CosignatureSigner, with_cosignatures
from app.ledger.entry import encode_entry
from app.ledger.merkle import MemoryTree
from app.ledger.monitor import (
    BadSignature,
    BadTile,
    MonitorState,
    Report,
    Rollback,
    SplitView,
    run,
)
from app.ledger.tiles import Tile, encode_bundle, hash_tile

ORIGIN = "monitor.test/log"
KEY = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())


class Log:
    """A log as its tiles: what a service serves, and what a test can damage."""

    def __init__(self, leaves: Iterable[bytes], signers: Iterable[CheckpointSigner] = (KEY,)):
        self.tree = MemoryTree()
        self.leaves: list[bytes] = []
        self.signers = list(signers)
        self.flipped: dict[str, int] = {}  # tile path -> which hash to damage
        self.wrong_entry: dict[str, int] = {}  # bundle path -> which entry to change
        self.withheld: set[int] = set()  # level-0 tile indexes whose bundle is refused
        self.fetched: list[str] = []
        self.append(leaves)

    def append(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.leaves.append(leaf)
            self.tree.append(leaf)

    def note(self, cosign: Iterable[CosignatureSigner] = ()) -> str:
        checkpoint = Checkpoint(ORIGIN, self.tree.size, self.tree.root())
        body = checkpoint.body()
        note = body.decode() + "\n"
        for signer in self.signers:
            note += signer.sign(checkpoint).split("\n\n", 1)[1]
        return with_cosignatures(note, [w.cosign(body, 1_800_000_000) for w in cosign])

    # The TileSource the monitor reads.
    def hash_tile(self, tile: Tile) -> bytes:
        self.fetched.append(tile.path())
        data = bytearray(hash_tile(tile, self.tree.nodes))
        if tile.path() in self.flipped:
            data[32 * self.flipped[tile.path()]] ^= 1
        return bytes(data)

    def bundle(self, tile: Tile) -> bytes | None:
        path = "entries/" + tile.path().split("/", 1)[1]
        self.fetched.append(path)
        if tile.index in self.withheld:
            return None
        entries = self.leaves[tile.first : tile.first + tile.width]
        assert len(entries) == tile.width
        if path in self.wrong_entry:
            i = self.wrong_entry[path]
            entries = [*entries[:i], entries[i] + b"!", *entries[i + 1 :]]
        return encode_bundle(entries)


def leaves(n: int, start: int = 0, tag: bytes = b"a") -> list[bytes]:
    return [b"entry %d %s" % (i, tag) for i in range(start, start + n)]


def fresh(**kwargs: object) -> MonitorState:
    return MonitorState.start(KEY.verifier_key(), **kwargs)  # type: ignore[arg-type]


def monitor(
    state: MonitorState,
    log: Log,
    note: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    return run(state, note or log.note(), log, progress)


# --- a log that only grows is followed ---------------------------------------------------------


@pytest.mark.parametrize("size", [1, 200, 255, 256, 257, 512, 700])
def test_a_first_run_checks_every_entry_and_ends_at_the_signed_root(size: int) -> None:
    log = Log(leaves(size))
    seen: list[tuple[int, int]] = []
    report = monitor(fresh(), log, progress=lambda done, total: seen.append((done, total)))
    assert (report.state.size, report.state.root) == (size, log.tree.root())
    assert (report.new_entries, report.entries_checked, report.withheld) == (size, size, 0)
    assert seen[-1] == (size, size)


@pytest.mark.parametrize(
    ("first", "second"),
    [(5, 10), (100, 256), (256, 300), (255, 513), (300, 300), (511, 512), (1, 700)],
)
def test_a_later_run_fetches_only_the_new_tiles_and_proves_the_log_extends(
    first: int, second: int
) -> None:
    log = Log(leaves(first))
    state = monitor(fresh(), log).state
    log.append(leaves(second - first, start=first))
    log.fetched.clear()
    report = monitor(state, log)
    assert (report.state.size, report.state.root, report.new_entries) == (
        second,
        log.tree.root(),
        second - first,
    )
    # Only the level-0 tiles from the one the saved size ends in onwards were read.
    level0 = {p.split(".")[0] for p in log.fetched if p.startswith("0/")}
    assert level0 == {f"0/{i:03d}" for i in range(first // 256, -(-second // 256))} - (
        {f"0/{first // 256:03d}"} if first == second else set()
    )
    # The same state as a monitor that read everything at once.
    assert report.state.edge == monitor(fresh(), log).state.edge


def test_the_state_survives_a_round_trip_through_json() -> None:
    new = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
    log = Log([*leaves(296), key_added(new)], signers=[KEY, new])
    state = monitor(fresh(), log).state
    log.append([key_retired(KEY, 297), *leaves(2, start=298)])
    log.signers = [new]
    state = monitor(state, log).state
    assert (state.announced, state.retired) == ((), ((KEY.verifier_key(), 297),))
    again = MonitorState.from_json(json.loads(json.dumps(state.to_json())))
    assert again == state
    log.append(leaves(10, start=300))
    assert monitor(again, log).state.size == 310


def test_a_state_saved_in_format_1_is_read_without_its_pending_announcements() -> None:
    # What a monitor from before key retirements were read wrote. Its pending announcements may
    # name keys the log has since retired in entries already behind it: they are not kept (a
    # new key then signing is reported, to be passed with --key), the rest is.
    new = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
    log = Log([*leaves(300), key_added(new)])
    state = monitor(fresh(), log).state
    saved = state.to_json()
    del saved["retired_keys"]
    saved["format"] = "consent-ledger-monitor/1"
    again = MonitorState.from_json(json.loads(json.dumps(saved)))
    assert again == replace(state, announced=())
    log.append(leaves(10, start=301))
    log.signers = [KEY, new]
    report = monitor(again, log)
    assert (report.state.size, report.unadopted) == (311, (new.key_id.hex(),))


def test_a_state_whose_saved_edge_does_not_fold_to_its_root_is_refused() -> None:
    state = monitor(fresh(), Log(leaves(300))).state.to_json()
    state["root"] = state["right_edge"][0]
    with pytest.raises(ValueError, match="right edge"):
        MonitorState.from_json(state)


# --- what a misbehaving log is caught doing ------------------------------------------------------


def _other_history(size: int, differ_at: int) -> Log:
    ours = leaves(size)
    ours[differ_at] = b"rewritten"
    return Log(ours)


@pytest.mark.parametrize(
    ("saved", "served", "differ_at"),
    [
        (300, 300, 3),  # same size, other root
        (300, 600, 3),  # the other history goes on further
        (300, 600, 299),  # differs inside the tile the saved size ends in
        (256, 513, 0),  # saved size on a tile boundary
        (1, 2, 0),
    ],
)
def test_another_history_under_the_same_key_is_a_split_view(
    saved: int, served: int, differ_at: int
) -> None:
    state = monitor(fresh(), Log(leaves(saved))).state
    other = _other_history(served, differ_at)
    with pytest.raises(SplitView) as caught:
        monitor(state, other)
    assert "split view" in str(caught.value)
    # Both signed notes are the evidence: each verifies under the log's key.
    assert caught.value.evidence == (state.note, other.note())


def test_a_smaller_tree_is_a_rollback() -> None:
    state = monitor(fresh(), Log(leaves(300))).state
    with pytest.raises(Rollback, match="300 to 200") as caught:
        monitor(state, Log(leaves(200)))
    assert caught.value.evidence[0] == state.note


@pytest.mark.parametrize(
    ("saved", "size", "damage", "position"),
    [
        (0, 300, "0/000", 20),  # level 0, first run
        (0, 300, "0/001.p/44", 43),
        (100, 300, "0/001.p/44", 0),  # level 0, a new tile
        (100, 300, "0/000", 150),  # level 0, a new hash in the tile the saved size ends in
        (100, 300, "0/000", 20),  # level 0, a hash of an entry already checked
        (0, 600, "1/000.p/2", 1),  # level 1 disagrees with the level-0 tiles under it
        (300, 600, "1/000.p/2", 1),
    ],
)
def test_a_tile_with_one_hash_flipped_is_a_bad_tile(
    saved: int, size: int, damage: str, position: int
) -> None:
    log = Log(leaves(saved))
    state = monitor(fresh(), log).state if saved else fresh()
    log.append(leaves(size - saved, start=saved))
    log.flipped[damage] = position
    with pytest.raises(BadTile, match=damage.replace(".", r"\.")) as caught:
        monitor(state, log)
    assert caught.value.evidence[-1] == log.note()  # the checkpoint the tiles were served for


def test_an_old_hash_flipped_in_the_tile_the_saved_size_ends_in_is_a_bad_tile() -> None:
    log = Log(leaves(100))
    state = monitor(fresh(), log).state
    log.append(leaves(50, start=100))
    log.flipped["0/000.p/150"] = 10  # a leaf this monitor had already seen
    with pytest.raises(BadTile):
        monitor(state, log)


def test_an_entry_that_does_not_hash_to_its_tile_is_a_bad_tile() -> None:
    log = Log(leaves(300))
    log.wrong_entry["entries/001.p/44"] = 7
    with pytest.raises(BadTile, match=r"entries/001\.p/44.*entry 263"):
        monitor(fresh(), log)


def test_withheld_bundles_are_counted_and_their_hashes_still_checked() -> None:
    log = Log(leaves(300))
    log.withheld = {0}
    report = monitor(fresh(), log)
    assert (report.new_entries, report.entries_checked, report.withheld) == (300, 44, 256)
    log.flipped["0/000"] = 3
    with pytest.raises(BadTile):
        monitor(fresh(), log)


# --- whose signatures count ----------------------------------------------------------------------


def test_a_checkpoint_signed_by_a_key_the_monitor_does_not_trust_fails() -> None:
    stranger = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
    log = Log(leaves(10), signers=[stranger])
    with pytest.raises(BadSignature, match="signed by no key this monitor trusts"):
        monitor(fresh(), log)


def test_a_failing_line_from_a_trusted_key_rejects_the_checkpoint() -> None:
    log = Log(leaves(10))
    forged = Log(leaves(11)).note().split("\n\n")[1]  # our key's line over another body
    with pytest.raises(BadSignature, match="does not verify"):
        monitor(fresh(), log, note=log.note() + forged)


def key_added(signer: CheckpointSigner) -> bytes:
    """The log entry that announces a new signing key (``keys rotate-signing``, issue 16 item 4)."""
    data = {"vkey": signer.verifier_key(), "generation": 2}
    return encode_entry(
        {"v": 1, "type": "log.key_added", "time": "2026-12-03T12:00:00Z", "data": data}
    )


def key_retired(signer: CheckpointSigner, last_size: int, generation: int = 1) -> bytes:
    """The log entry that retires a signing key (``keys rotate-signing --retire-old``)."""
    data = {"vkey": signer.verifier_key(), "generation": generation, "last_size": last_size}
    return encode_entry(
        {"v": 1, "type": "log.key_retired", "time": "2026-12-03T13:00:00Z", "data": data}
    )


def test_a_new_key_is_adopted_when_the_log_announces_it_and_it_signs_beside_a_trusted_key() -> None:
    new = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
    log = Log(leaves(10))
    state = monitor(fresh(), log).state
    log.append([key_added(new), *leaves(5, start=11)])

    # Signed by the new key alone: not trusted, announced or not.
    log.signers = [new]
    with pytest.raises(BadSignature, match="signed by no key this monitor trusts"):
        monitor(state, log)

    # The overlap: both keys sign a tree holding the announcement; the new key is adopted.
    log.signers = [KEY, new]
    report = monitor(state, log)
    assert report.adopted == (new.verifier_key(),)
    assert report.state.log_keys == (KEY.verifier_key(), new.verifier_key())

    # --retire-old: the log retires the old key in an entry, in a checkpoint the new key alone
    # signs. It passes, and the old key vouches for no checkpoint past its period any more: one
    # it alone signs (a stolen copy showing another history) is refused.
    log.append([*leaves(5, start=16), key_retired(KEY, 21)])
    log.signers = [new]
    later = monitor(report.state, log)
    assert (later.state.size, later.retired) == (22, (KEY.verifier_key(),))
    assert later.state.retired == ((KEY.verifier_key(), 21),)
    log.append(leaves(5, start=22))
    log.signers = [KEY]
    with pytest.raises(BadSignature, match=r"signed by no key this monitor trusts.*retired"):
        monitor(later.state, log)


def _overlap(new: CheckpointSigner) -> tuple[Log, MonitorState]:
    """A log in a rotation's overlap, and a monitor that adopted the new key from it."""
    log = Log([*leaves(10), key_added(new)], signers=[KEY, new])
    state = monitor(fresh(), log).state
    assert state.log_keys == (KEY.verifier_key(), new.verifier_key())
    return log, state


def test_a_checkpoint_the_old_key_alone_signs_during_the_overlap_drops_no_key() -> None:
    # Several hosts: one the new key file was not yet copied to signs with the old key alone
    # (it logs a warning). An honest log: the monitor keeps both keys, and follows the log
    # once the old key is retired.
    new = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
    log, state = _overlap(new)
    for signers, added in [([KEY], leaves(3, start=11)), ([KEY, new], leaves(3, start=14))]:
        log.append(added)
        log.signers = signers
        report = monitor(state, log)
        assert (report.state.log_keys, report.retired) == (state.log_keys, ())
        state = report.state
    log.append([key_retired(KEY, 17), *leaves(3, start=18)])
    log.signers = [new]
    assert monitor(state, log).state.size == 21


def test_a_fork_the_old_key_alone_signs_during_the_overlap_leaves_the_real_log_a_split_view() -> (
    None
):
    # After --retire-old the real log goes on under the new key; someone who kept a copy of the
    # old key shows this monitor, which last ran during the overlap, another continuation. It
    # cannot tell that from the checkpoint of a host lacking the new key (the test above), so
    # it accepts it; but it keeps trusting the new key, so the real log is then a split view,
    # not "signed by no key this monitor trusts".
    new = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
    real, overlap = _overlap(new)
    real.append([key_retired(KEY, 11), *leaves(4, start=12, tag=b"real")])
    real.signers = [new]
    fork = Log([*leaves(10), key_added(new)], signers=[KEY])
    fork.append(leaves(5, start=11, tag=b"fork"))
    after_fork = monitor(overlap, fork).state
    assert after_fork.log_keys == overlap.log_keys
    with pytest.raises(SplitView) as caught:
        monitor(after_fork, real)
    assert caught.value.evidence == (fork.note(), real.note())


def test_a_checkpoint_signed_past_a_retirement_inside_its_own_tree_is_refused() -> None:
    # The entries of the new range are trusted only once the signed root is reached; then a
    # retirement among them applies to the checkpoint that holds it: the old key, retired at
    # size 11 by this very tree, cannot vouch for its 15 entries.
    new = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
    log, state = _overlap(new)
    log.append([key_retired(KEY, 11), *leaves(3, start=12)])
    log.signers = [KEY]
    with pytest.raises(BadSignature, match=r"retired.*after size 11"):
        monitor(state, log)
    log.signers = [KEY, new]  # the new key's line vouches
    assert monitor(state, log).retired == (KEY.verifier_key(),)


def _retired_generation() -> tuple[CheckpointSigner, CheckpointSigner, Log]:
    """Generations 2 and 3 of a log that rotated twice: 2 added and 1 retired, then 3 added
    and 2 retired; signed by generation 3 alone."""
    gen2 = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
    gen3 = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
    log = Log([*leaves(10), key_added(gen2), key_retired(KEY, 11)], signers=[gen2])
    log.append([key_added(gen3), key_retired(gen2, 13, generation=2), *leaves(3, start=14)])
    log.signers = [gen3]
    return gen2, gen3, log


@pytest.mark.parametrize("earlier", [False, True], ids=["first-run", "announced-on-a-run-before"])
def test_a_key_the_log_announced_and_then_retired_is_never_adopted(earlier: bool) -> None:
    # An auditor starts today with the current key (generation 3), or had seen generation 2
    # announced on a run before and now passes generation 3 with --key. Whoever kept a copy of
    # the retired generation 2 and sits between log and monitor adds its line to a genuine
    # checkpoint: not adopted, and not offered to the auditor either.
    gen2, gen3, log = _retired_generation()
    state = MonitorState.start(gen3.verifier_key())
    if earlier:
        seen = monitor(fresh(), Log(log.leaves[:11])).state
        assert seen.announced == (gen2.verifier_key(),)
        state = seen.trusting([gen3.verifier_key()])
    state = monitor(state, log).state
    assert gen2.verifier_key() not in state.announced
    assert dict(state.retired)[gen2.verifier_key()] == 13
    log.append(leaves(2, start=17))
    log.signers = [gen3, gen2]
    report = monitor(state, log)
    assert gen2.verifier_key() not in report.state.log_keys
    assert (report.adopted, report.unadopted) == ((), ())


def test_a_key_the_log_does_not_announce_is_not_adopted() -> None:
    # Whoever controls the answers but not the log's key can add a line of their own key to a
    # genuine checkpoint; they cannot add an entry to the tree the log's key signed.
    stranger = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
    log = Log(leaves(10), signers=[KEY, stranger])
    report = monitor(fresh(), log)
    assert (report.adopted, report.state.log_keys) == ((), (KEY.verifier_key(),))
    assert report.unadopted == (stranger.key_id.hex(),)


def test_an_announcement_seen_before_the_new_key_signs_is_kept_for_later() -> None:
    new = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
    log = Log([*leaves(10), key_added(new)])
    report = monitor(fresh(), log)
    assert (report.adopted, report.state.announced) == ((), (new.verifier_key(),))
    log.signers = [KEY, new]  # the same tree, now signed by both
    again = monitor(MonitorState.from_json(report.state.to_json()), log)
    assert (again.new_entries, again.adopted) == (0, (new.verifier_key(),))
    assert again.state.announced == ()


def test_an_announced_key_whose_line_does_not_verify_rejects_the_checkpoint() -> None:
    new = CheckpointSigner(ORIGIN, Ed25519PrivateKey.generate())
    log = Log([*leaves(10), key_added(new)], signers=[KEY, new])
    note = log.note()
    other = Log(leaves(3), signers=[new]).note().split("\n\n")[1]  # new's line, another body
    forged = note[: note.rindex("\u2014")] + other
    with pytest.raises(BadSignature, match=f"announced log key {new.key_id.hex()}"):
        monitor(fresh(), log, note=forged)


W1 = CosignatureSigner("w1.example", Ed25519PrivateKey.generate())
W2 = CosignatureSigner("w2.example", Ed25519PrivateKey.generate())


@pytest.mark.parametrize(
    ("quorum", "cosigned_by", "missing"),
    [
        (None, [W1, W2], None),
        (None, [W1], "w2.example"),
        (1, [W2], None),
        (2, [], "w1.example, w2.example"),
        (0, [], None),
    ],
)
def test_a_checkpoint_needs_a_quorum_of_witness_cosignatures(
    quorum: int | None, cosigned_by: list[CosignatureSigner], missing: str | None
) -> None:
    witnesses = (W1.verifier().verifier_key(), W2.verifier().verifier_key())
    state = fresh(witnesses=witnesses, quorum=quorum)
    log = Log(leaves(10))
    note = log.note(cosign=cosigned_by)
    if missing is None:
        report = monitor(state, log, note=note)
        assert report.cosigned_by == tuple(w.verifier().name for w in cosigned_by)
    else:
        with pytest.raises(BadSignature, match=f"missing: {missing}"):
            monitor(state, log, note=note)


def test_one_witness_key_under_two_names_counts_once_towards_the_quorum() -> None:
    # A key id hashes the name with the key: whoever holds one witness key can sign under
    # any name, so two names for one key must not meet a quorum of two.
    key = Ed25519PrivateKey.generate()
    one, alias = CosignatureSigner("w1.example", key), CosignatureSigner("w9.example", key)
    witnesses = (one.verifier().verifier_key(), alias.verifier().verifier_key())
    state = fresh(witnesses=witnesses, quorum=2)
    log = Log(leaves(10))
    with pytest.raises(BadSignature, match="1 of the 2 witness cosignatures required"):
        monitor(state, log, note=log.note(cosign=[one, alias]))


def test_a_forged_cosignature_names_the_witness() -> None:
    state = fresh(witnesses=(W1.verifier().verifier_key(),))
    log = Log(leaves(10))
    good = log.note(cosign=[W1])
    head, blob = good.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1
    forged = f"{head} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(BadSignature, match=r"w1\.example"):
        monitor(state, log, note=forged)
