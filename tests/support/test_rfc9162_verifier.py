"""Self-test of the independent verifier in ``rfc9162_verifier``.

Known-answer data is copied from published test suites, not invented:

* RFC 6962 reference tree (8 leaves), its roots for sizes 1..8, and the
  inclusion / consistency proofs: github.com/transparency-dev/merkle,
  ``proof/verify_test.go`` (commit 02194e9afb6c1d95b5381350007963aa70fff472),
  variables ``leaves``, ``roots``, ``inclusionProofs``, ``consistencyProofs``.
  (The same numbers are in google/certificate-transparency-go's merkle tests.)
* Signed-note keys and signatures: golang.org/x/mod, ``sumdb/note/note_test.go``
  (github.com/golang/mod commit 02c991387e35f9e4c0a9b7ce137717055f8d716d),
  ``TestNewVerifier`` and ``TestOpen``.
* A real checkpoint of sum.golang.org with its verifier key:
  github.com/transparency-dev/formats, ``log/note_test.go``
  (commit 5242c17862d31acd165afafa140ecc973a621469), ``TestSumDBNoteParsing``.

Checkpoints for this project's own format are signed here with a fresh
Ed25519 key and assembled by hand, following C2SP signed-note and
tlog-checkpoint.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .rfc9162_verifier import (
    Checkpoint,
    Invalid,
    leaf_hash,
    node_hash,
    parse_checkpoint,
    parse_verifier_key,
    root_from_leaves,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
    verify_note,
)


def h(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text)


# --- transparency-dev/merkle proof/verify_test.go -------------------------

LEAVES = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]

EMPTY_ROOT = h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")

# ROOTS[n] is the root of the tree of the first n leaves.
ROOTS = [
    EMPTY_ROOT,
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

# (0-based leaf index, tree size, proof). The Go file numbers leaves from 1.
INCLUSION_PROOFS = [
    (
        0,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        3,
        [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")],
    ),
    (
        1,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]

# (first size, second size, proof)
CONSISTENCY_PROOFS = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]


def flip(data: bytes, bit: int = 3) -> bytes:
    return bytes([data[0] ^ (1 << bit)]) + data[1:]


# --- Merkle tree hash -------------------------------------------------------


@pytest.mark.parametrize("n", range(len(ROOTS)))
def test_root_from_leaves_matches_reference_roots(n: int) -> None:
    assert root_from_leaves(LEAVES[:n]) == ROOTS[n]


def test_leaf_and_node_hash_prefixes() -> None:
    assert leaf_hash(b"") == ROOTS[1]
    assert node_hash(leaf_hash(LEAVES[0]), leaf_hash(LEAVES[1])) == ROOTS[2]
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()


# --- inclusion --------------------------------------------------------------


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_PROOFS)
def test_published_inclusion_proofs_verify(index: int, size: int, proof: list[bytes]) -> None:
    verify_inclusion(leaf_hash(LEAVES[index]), index, size, proof, ROOTS[size])


def _corrupt_inclusion(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> list[tuple[str, bytes, int, int, list[bytes], bytes]]:
    """The probes of corruptInclusionProof in transparency-dev/merkle."""
    probes = [
        ("index - 1", leaf, index - 1, size, proof, root),
        ("index + 1", leaf, index + 1, size, proof, root),
        ("index ^ 2", leaf, index ^ 2, size, proof, root),
        ("size * 2", leaf, index, size * 2, proof, root),
        ("size // 2", leaf, index, size // 2, proof, root),
        ("wrong leaf", SOME_HASH, index, size, proof, root),
        ("empty root", leaf, index, size, proof, EMPTY_ROOT),
        ("random root", leaf, index, size, proof, SOME_HASH),
        ("trailing root", leaf, index, size, [*proof, root], root),
        ("preceding root", leaf, index, size, [root, *proof], root),
        ("trailing short", leaf, index, size, [*proof, b""], root),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = flip(bad[i])
        probes.append((f"flipped proof[{i}]", leaf, index, size, bad, root))
    if proof:
        probes.append(("removed component", leaf, index, size, proof[:-1], root))
    if len(proof) > 1:
        probes.append(
            ("inserted component", leaf, index, size, [proof[0], SOME_HASH, *proof[1:]], root)
        )
    return probes


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_PROOFS)
def test_corrupted_inclusion_proofs_fail(index: int, size: int, proof: list[bytes]) -> None:
    leaf = leaf_hash(LEAVES[index])
    for desc, lh, i, n, p, r in _corrupt_inclusion(index, size, proof, ROOTS[size], leaf):
        try:
            verify_inclusion(lh, i, n, p, r)
        except Invalid:
            continue
        pytest.fail(f"corrupted inclusion proof accepted: {desc}")


def test_inclusion_single_entry_and_bad_shapes() -> None:
    one = leaf_hash(b"data")
    verify_inclusion(one, 0, 1, [], one)
    for args in [
        (one, 0, 0, [], one),  # empty tree has no leaves
        (one, 1, 1, [], one),  # index == size
        (one, -1, 1, [], one),
        (one, 0, 1, [], EMPTY_ROOT),
        (b"", 0, 1, [], one),  # wrong hash size
        (one, 0, 1, [], b""),
        (one, True, 2, [one], one),  # bool is not a size
    ]:
        with pytest.raises(Invalid):
            verify_inclusion(*args)


# --- consistency ------------------------------------------------------------


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY_PROOFS)
def test_published_consistency_proofs_verify(first: int, second: int, proof: list[bytes]) -> None:
    verify_consistency(first, second, proof, ROOTS[first], ROOTS[second])


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY_PROOFS[1:])
def test_corrupted_consistency_proofs_fail(first: int, second: int, proof: list[bytes]) -> None:
    """The probes of corruptConsistencyProof in transparency-dev/merkle."""
    r1, r2 = ROOTS[first], ROOTS[second]
    probes: list[tuple[str, int, int, list[bytes], bytes, bytes]] = [
        ("first - 1", first - 1, second, proof, r1, r2),
        ("first + 1", first + 1, second, proof, r1, r2),
        ("first ^ 2", first ^ 2, second, proof, r1, r2),
        ("second * 2", first, second * 2, proof, r1, r2),
        ("second // 2", first, second // 2, proof, r1, r2),
        ("wrong root1", first, second, proof, SOME_HASH, r2),
        ("wrong root2", first, second, proof, r1, SOME_HASH),
        ("swapped roots", first, second, proof, r2, r1),
        ("empty proof", first, second, [], r1, r2),
        ("trailing root1", first, second, [*proof, r1], r1, r2),
        ("trailing root2", first, second, [*proof, r2], r1, r2),
        ("preceding root1", first, second, [r1, *proof], r1, r2),
        ("preceding root2", first, second, [r2, *proof], r1, r2),
        ("preceding proof[0]", first, second, [proof[0], *proof], r1, r2),
        ("truncated proof", first, second, proof[:-1], r1, r2),
        ("trailing short", first, second, [*proof, b""], r1, r2),
    ]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = flip(bad[i], bit=4)
        probes.append((f"flipped proof[{i}]", first, second, bad, r1, r2))
    for desc, *args in probes:
        try:
            verify_consistency(*args)  # type: ignore[arg-type]
        except Invalid:
            continue
        pytest.fail(f"corrupted consistency proof accepted: {desc}")


def test_consistency_edge_cases() -> None:
    verify_consistency(1, 1, [], ROOTS[1], ROOTS[1])
    verify_consistency(8, 8, [], ROOTS[8], ROOTS[8])
    for args in [
        (1, 1, [], ROOTS[1], ROOTS[2]),  # same size, different roots
        (1, 1, [EMPTY_ROOT], ROOTS[1], ROOTS[1]),  # same size, non-empty proof
        (0, 0, [], EMPTY_ROOT, EMPTY_ROOT),  # first must be >= 1
        (0, 1, [], EMPTY_ROOT, ROOTS[1]),
        (2, 1, [], ROOTS[2], ROOTS[1]),  # time travel
        (1, 2, [], ROOTS[1], ROOTS[2]),  # empty proof
    ]:
        with pytest.raises(Invalid):
            verify_consistency(*args)


# --- every size, against proofs built from the RFC 9162 definitions ------


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]), RFC 9162 section 2.1.3.1 (bottom-up order)."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*_path(m, leaves[:k]), root_from_leaves(leaves[k:])]
    return [*_path(m - k, leaves[k:]), root_from_leaves(leaves[:k])]


def _subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b), RFC 9162 section 2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if complete else [root_from_leaves(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), root_from_leaves(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), root_from_leaves(leaves[:k])]


def test_definition_built_proofs_match_published_vectors() -> None:
    for index, size, proof in INCLUSION_PROOFS:
        assert _path(index, LEAVES[:size]) == proof
    for first, second, proof in CONSISTENCY_PROOFS[1:]:
        assert _subproof(first, LEAVES[:second], True) == proof


def test_all_small_trees() -> None:
    data = [bytes([i]) * (i % 5) for i in range(17)]
    for n in range(1, len(data) + 1):
        root = root_from_leaves(data[:n])
        for m in range(n):
            proof = _path(m, data[:n])
            verify_inclusion(leaf_hash(data[m]), m, n, proof, root)
            with pytest.raises(Invalid):
                verify_inclusion(leaf_hash(data[m] + b"x"), m, n, proof, root)
            if proof:
                with pytest.raises(Invalid):
                    verify_inclusion(leaf_hash(data[m]), m, n, proof[:-1], root)
        for m in range(1, n):
            proof = _subproof(m, data[:n], True)
            old_root = root_from_leaves(data[:m])
            verify_consistency(m, n, proof, old_root, root)
            with pytest.raises(Invalid):
                verify_consistency(m, n, proof, old_root, root_from_leaves([*data[: n - 1], b"?"]))
            with pytest.raises(Invalid):
                verify_consistency(m, n, [flip(proof[0]), *proof[1:]], old_root, root)


# --- signed note: golang.org/x/mod sumdb/note/note_test.go ----------------

PETER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_KEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
NOTE_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2p"
    "ZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5o"
    "vTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)


def test_parse_go_verifier_keys() -> None:
    peter = parse_verifier_key(PETER_KEY)
    assert peter.name == "PeterNeumann"
    assert peter.key_id == h("c74f20a3")
    enoch = parse_verifier_key(ENOCH_KEY)
    assert (enoch.name, enoch.key_id) == ("EnochRoot", h("af0cfe78"))


def test_mangled_verifier_keys_are_rejected() -> None:
    """As TestNewVerifier: every proper substring and every one-byte change fails."""
    raw = PETER_KEY.encode()
    for i in range(len(raw) + 1):
        for j in range(i + 1, len(raw) + 1):
            if (i, j) != (0, len(raw)):
                with pytest.raises(Invalid):
                    parse_verifier_key(raw[i:j].decode())
    for i in range(len(raw)):
        mangled = raw[:i] + bytes([raw[i] + 1]) + raw[i + 1 :]
        with pytest.raises(Invalid):
            parse_verifier_key(mangled.decode())
    for bad in [
        # wrong length key, with adjusted key hash
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        # unknown algorithm, with adjusted key hash
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ]:
        with pytest.raises(Invalid):
            parse_verifier_key(bad)


def test_go_note_verifies() -> None:
    peter = parse_verifier_key(PETER_KEY)
    assert verify_note(NOTE_TEXT + "\n" + PETER_SIG, peter) == NOTE_TEXT


def test_go_doubly_signed_note_verifies_with_either_key() -> None:
    note = NOTE_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert verify_note(note, parse_verifier_key(PETER_KEY)) == NOTE_TEXT
    assert verify_note(note, parse_verifier_key(ENOCH_KEY)) == NOTE_TEXT


def test_go_note_negative_cases() -> None:
    peter = parse_verifier_key(PETER_KEY)
    enoch = parse_verifier_key(ENOCH_KEY)
    bad_notes = [
        # TestOpen "Invalid signature": bytes spliced into the signature
        NOTE_TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:],
        # TestOpen "Invalid encoded message syntax"
        NOTE_TEXT,
        NOTE_TEXT + "\n",
        NOTE_TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + NOTE_TEXT + "\n" + PETER_SIG,
        NOTE_TEXT + "\n" + "\u2014 Bad Name " + PETER_SIG.split(" ")[2].rstrip("\n"),
        NOTE_TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        # one flipped byte in the signed text
        NOTE_TEXT.replace("problem,", "problem;") + "\n" + PETER_SIG,
        # a second, corrupted signature from the same key
        NOTE_TEXT + "\n" + PETER_SIG + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:],
        # too many signatures
        NOTE_TEXT + "\n" + PETER_SIG * 101,
    ]
    for note in bad_notes:
        with pytest.raises(Invalid):
            verify_note(note, peter)
    # Signed only by somebody else: nothing from the known key.
    with pytest.raises(Invalid):
        verify_note(NOTE_TEXT + "\n" + PETER_SIG, enoch)
    # Same signature bytes under another name: ignored, so nothing verifies.
    with pytest.raises(Invalid):
        verify_note(NOTE_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "CarmenSandiego"), peter)


# --- checkpoint: transparency-dev/formats log/note_test.go ---------------

SUMDB_KEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_BODY = "go.sum database tree\n6476701\nmb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n"
SUMDB_NOTE = (
    SUMDB_BODY
    + "\n"
    + "\u2014 sum.golang.org Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4n"
    + "PRYfvimWEPWL+o3GeoWwOoAw=\n"
)


def test_sumdb_checkpoint() -> None:
    key = parse_verifier_key(SUMDB_KEY)  # its base64 contains '+'
    body = verify_note(SUMDB_NOTE, key)
    assert body == SUMDB_BODY
    cp = parse_checkpoint(body)
    assert cp == Checkpoint(
        origin="go.sum database tree",
        size=6476701,
        root_hash=base64.b64decode("mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk="),
    )
    # The Go checksum database names its key differently from its origin;
    # verify_checkpoint insists on origin == key name, so it refuses.
    with pytest.raises(Invalid):
        verify_checkpoint(SUMDB_NOTE, SUMDB_KEY)
    with pytest.raises(Invalid):
        verify_note(SUMDB_NOTE.replace("6476701", "6476702"), key)


# --- checkpoint: signed here, by hand, per C2SP ---------------------------


class HandSigner:
    """A C2SP signed-note Ed25519 signer assembled from the spec text."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._key = Ed25519PrivateKey.generate()
        public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        typed = b"\x01" + public
        self.key_id = hashlib.sha256(name.encode() + b"\n" + typed).digest()[:4]
        self.vkey = f"{name}+{self.key_id.hex()}+{base64.b64encode(typed).decode()}"

    def line(self, text: str) -> str:
        sig = self._key.sign(text.encode())
        return f"\u2014 {self.name} {base64.b64encode(self.key_id + sig).decode()}\n"

    def sign(self, text: str) -> str:
        return text + "\n" + self.line(text)


ORIGIN = "example.com/consent-ledger/test"


def body(size: int, root: bytes, *extensions: str, origin: str = ORIGIN) -> str:
    lines = [origin, str(size), base64.b64encode(root).decode(), *extensions]
    return "".join(line + "\n" for line in lines)


def test_hand_signed_checkpoint_verifies() -> None:
    log = HandSigner(ORIGIN)
    cp = verify_checkpoint(log.sign(body(8, ROOTS[8])), log.vkey)
    assert cp == Checkpoint(ORIGIN, 8, ROOTS[8])
    # The checkpoint then anchors a published proof.
    verify_inclusion(leaf_hash(LEAVES[5]), 5, cp.size, INCLUSION_PROOFS[1][2], cp.root_hash)

    with_ext = verify_checkpoint(log.sign(body(0, EMPTY_ROOT, "ext one")), log.vkey)
    assert with_ext == Checkpoint(ORIGIN, 0, EMPTY_ROOT, ("ext one",))


def test_note_text_may_contain_empty_lines() -> None:
    """C2SP signed-note "Format": the text ends at the *last* empty line."""
    signer = HandSigner("example.com/poet")
    text = (
        "Ognuno sta solo sul cuor della terra\n"
        "trafitto da un raggio di sole:\n"
        "\n"
        "ed è subito sera.\n"
    )
    vkey = parse_verifier_key(signer.vkey)
    assert verify_note(signer.sign(text), vkey) == text


def test_hand_signed_checkpoint_with_witness_signature() -> None:
    log, witness = HandSigner(ORIGIN), HandSigner("witness.example/w1")
    text = body(3, ROOTS[3])
    note = log.sign(text) + witness.line(text)  # unknown cosigner: ignored
    assert verify_checkpoint(note, log.vkey).size == 3
    note = witness.sign(text) + log.line(text)  # order does not matter
    assert verify_checkpoint(note, log.vkey).size == 3


def test_hand_signed_checkpoint_negative_cases() -> None:
    log, other = HandSigner(ORIGIN), HandSigner(ORIGIN)  # same name, other key
    good = log.sign(body(8, ROOTS[8]))
    assert verify_checkpoint(good, log.vkey).size == 8
    with pytest.raises(Invalid):  # flipped byte in the signed text
        verify_checkpoint(good.replace("\n8\n", "\n9\n", 1), log.vkey)
    with pytest.raises(Invalid):  # right name, wrong key
        verify_checkpoint(good, other.vkey)
    # Same name, other key ID: that line is someone else's and is ignored ...
    assert verify_checkpoint(good + other.line("x\n"), log.vkey).size == 8
    with pytest.raises(Invalid):  # ... but a bad extra signature by the log's key is not
        verify_checkpoint(good + log.line("other text\n"), log.vkey)
    mismatched = HandSigner("example.com/some-other-log")
    with pytest.raises(Invalid):  # origin differs from the key name
        verify_checkpoint(mismatched.sign(body(8, ROOTS[8])), mismatched.vkey)
    sig = good.rsplit(" ", 1)[1].rstrip("\n")
    blob = base64.b64decode(sig)
    for bad_blob in [blob[:4] + b"\0" * 64, blob[:-1], blob + b"\0", flip(blob, bit=0)]:
        bad_sig = base64.b64encode(bad_blob).decode()
        with pytest.raises(Invalid):
            verify_checkpoint(good.replace(sig, bad_sig), log.vkey)


@pytest.mark.parametrize(
    "text",
    [
        "",
        f"{ORIGIN}\n8\n",  # no root line
        f"{ORIGIN}\n8\n{base64.b64encode(ROOTS[8]).decode()}",  # no final newline
        f"\n8\n{base64.b64encode(ROOTS[8]).decode()}\n",  # empty origin
        f"{ORIGIN}\n08\n{base64.b64encode(ROOTS[8]).decode()}\n",  # leading zero
        f"{ORIGIN}\n+8\n{base64.b64encode(ROOTS[8]).decode()}\n",
        f"{ORIGIN}\n-1\n{base64.b64encode(ROOTS[8]).decode()}\n",
        f"{ORIGIN}\n 8\n{base64.b64encode(ROOTS[8]).decode()}\n",
        f"{ORIGIN}\n\uff18\n{base64.b64encode(ROOTS[8]).decode()}\n",  # fullwidth digit
        f"{ORIGIN}\n{2**64}\n{base64.b64encode(ROOTS[8]).decode()}\n",
        f"{ORIGIN}\n8\n{base64.b64encode(ROOTS[8][:31]).decode()}\n",  # short root
        f"{ORIGIN}\n8\n{ROOTS[8].hex()}\n",  # hex, not base64
        f"{ORIGIN}\n8\n{base64.b64encode(ROOTS[8]).decode().rstrip('=')}\n",  # no padding
        f"{ORIGIN}\n8\n{base64.b64encode(ROOTS[8]).decode()}\n\next\n",  # empty extension
        f"{ORIGIN}\r\n8\n{base64.b64encode(ROOTS[8]).decode()}\n",  # control character
    ],
)
def test_malformed_checkpoint_bodies(text: str) -> None:
    with pytest.raises(Invalid):
        parse_checkpoint(text)
