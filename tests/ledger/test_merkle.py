"""Merkle tree known answers: RFC 6962 reference data and the Merkle Tree Certificates
subtree vectors, plus the verifiers' handling of the probes transparency-dev/merkle uses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from app.ledger.errors import VerificationError
from app.ledger.merkle import (
    HASH_SIZE,
    CompactRange,
    MemoryTree,
    append_sibling_ids,
    consistency_proof,
    consistency_proof_ranges,
    empty_root,
    inclusion_proof,
    inclusion_proof_ranges,
    leaf_hash,
    node_hash,
    node_ids_for_ranges,
    nodes_after_append,
    perfect_subtrees,
    range_hash,
    root_from_leaf_hashes,
    root_node_ids,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from tests.ledger import vectors


@pytest.fixture(scope="module")
def tree() -> MemoryTree:
    t = MemoryTree()
    for leaf in vectors.LEAVES:
        t.append(leaf)
    return t


# --- hashing and roots -----------------------------------------------------------------------


def test_hash_prefixes() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    left, right = bytes(32), bytes([1]) * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert empty_root() == vectors.EMPTY_TREE_HASH


def test_node_hash_requires_32_byte_children() -> None:
    with pytest.raises(ValueError, match="32"):
        node_hash(bytes(31), bytes(33))


def test_leaf_hashes_are_level_zero_nodes() -> None:
    assert [leaf_hash(leaf) for leaf in vectors.LEAVES] == vectors.NODE_HASHES[0]


@pytest.mark.parametrize("size", range(9))
def test_reference_roots(size: int) -> None:
    hashes = [leaf_hash(leaf) for leaf in vectors.LEAVES[:size]]
    assert root_from_leaf_hashes(hashes) == vectors.ROOTS[size]


@pytest.mark.parametrize("size", range(9))
def test_tree_roots(tree: MemoryTree, size: int) -> None:
    assert tree.root(size) == vectors.ROOTS[size]
    assert tree_root(size, tree.nodes) == vectors.ROOTS[size]


def test_every_perfect_node(tree: MemoryTree) -> None:
    expected = {
        (level, index): h
        for level, row in enumerate(vectors.NODE_HASHES)
        for index, h in enumerate(row)
    }
    assert tree.nodes == expected


def test_compact_range_matches_published_nodes() -> None:
    cr = CompactRange()
    created: dict[tuple[int, int], bytes] = {}
    for size, leaf in enumerate(vectors.LEAVES, start=1):
        created.update(cr.append_hash(leaf_hash(leaf)))
        assert cr.size == size
        assert cr.root() == vectors.ROOTS[size]
    assert created == {
        (level, index): h
        for level, row in enumerate(vectors.NODE_HASHES)
        for index, h in enumerate(row)
    }
    assert CompactRange().root() == empty_root()


def test_mtc_subtree_hash_vector() -> None:
    t = MemoryTree()
    for i in range(vectors.MTC_SUBTREE_VECTOR_SIZE):
        t.append(bytes([i]))
    digest = hashlib.sha256()
    for end in range(1, vectors.MTC_SUBTREE_VECTOR_SIZE + 1):
        for start in range(end):
            if start % (1 << (end - start - 1).bit_length()):
                continue
            digest.update(f"[{start}, {end}) {range_hash(start, end, t.nodes).hex()}\n".encode())
    assert digest.hexdigest() == vectors.MTC_SUBTREE_HASH_DIGEST


def test_mtc_subtree_inclusion_vector() -> None:
    # A subtree inclusion proof is PATH(index - start, D[start:end]); shifting our ranges
    # by start exercises inclusion_proof_ranges on every subtree shape up to 130 leaves.
    t = MemoryTree()
    for i in range(vectors.MTC_SUBTREE_VECTOR_SIZE):
        t.append(bytes([i]))
    digest = hashlib.sha256()
    for end in range(1, vectors.MTC_SUBTREE_VECTOR_SIZE + 1):
        for start in range(end):
            if start % (1 << (end - start - 1).bit_length()):
                continue
            for index in range(start, end):
                ranges = inclusion_proof_ranges(index - start, end - start)
                hashes = [range_hash(a + start, b + start, t.nodes) for a, b in ranges]
                line = f"{index} [{start}, {end})" + "".join(f" {h.hex()}" for h in hashes)
                digest.update(line.encode() + b"\n")
    assert digest.hexdigest() == vectors.MTC_SUBTREE_INCLUSION_DIGEST


# --- proof generation ------------------------------------------------------------------------


@pytest.mark.parametrize(("index", "size", "proof"), vectors.INCLUSION_PROOFS)
def test_published_inclusion_proofs(
    tree: MemoryTree, index: int, size: int, proof: list[bytes]
) -> None:
    assert tree.inclusion_proof(index, size) == proof
    assert inclusion_proof(index, size, tree.nodes) == proof
    verify_inclusion(leaf_hash(vectors.LEAVES[index]), index, size, proof, vectors.ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), vectors.CONSISTENCY_PROOFS)
def test_published_consistency_proofs(
    tree: MemoryTree, old: int, new: int, proof: list[bytes]
) -> None:
    assert tree.consistency_proof(old, new) == proof
    assert consistency_proof(old, new, tree.nodes) == proof
    verify_consistency(old, new, proof, vectors.ROOTS[old], vectors.ROOTS[new])


def _names(ranges: Sequence[tuple[int, int]]) -> str:
    by_range = {r: name for name, r in vectors.RFC6962_EXAMPLE_NODES.items()}
    return "".join(by_range[r] for r in ranges)


@pytest.mark.parametrize(("index", "path"), vectors.RFC6962_EXAMPLE_PATHS.items())
def test_rfc6962_example_audit_paths(index: int, path: str) -> None:
    assert _names(inclusion_proof_ranges(index, 7)) == path


@pytest.mark.parametrize(("old", "proof"), vectors.RFC6962_EXAMPLE_CONSISTENCY.items())
def test_rfc6962_example_consistency_proofs(old: int, proof: str) -> None:
    assert _names(consistency_proof_ranges(old, 7)) == proof


@pytest.mark.parametrize(("index", "size"), [(0, 0), (-1, 5), (5, 5), (6, 5)])
def test_inclusion_ranges_refuse_bad_arguments(index: int, size: int) -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_proof_ranges(index, size)


@pytest.mark.parametrize(("old", "new"), [(0, 0), (0, 5), (6, 5), (-1, 2)])
def test_consistency_ranges_refuse_bad_arguments(old: int, new: int) -> None:
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof_ranges(old, new)


def test_consistency_ranges_for_equal_sizes_are_empty() -> None:
    assert consistency_proof_ranges(5, 5) == []


def test_missing_node_raises_key_error(tree: MemoryTree) -> None:
    nodes = dict(tree.nodes)
    del nodes[(1, 1)]
    with pytest.raises(KeyError):
        inclusion_proof(0, 8, nodes)


def test_memory_tree_refuses_sizes_it_does_not_have(tree: MemoryTree) -> None:
    with pytest.raises(ValueError, match="leaves"):
        tree.root(9)
    with pytest.raises(ValueError, match="leaves"):
        tree.inclusion_proof(0, 9)
    with pytest.raises(ValueError, match="leaves"):
        tree.consistency_proof(1, 9)


# --- perfect subtrees and appends ------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "ids"),
    [
        (0, 0, []),
        (0, 1, [(0, 0)]),
        (0, 7, [(2, 0), (1, 2), (0, 6)]),
        (0, 8, [(3, 0)]),
        (4, 7, [(1, 2), (0, 6)]),
        (8, 13, [(2, 2), (0, 12)]),
        (5, 6, [(0, 5)]),
    ],
)
def test_perfect_subtrees(start: int, end: int, ids: list[tuple[int, int]]) -> None:
    assert perfect_subtrees(start, end) == ids


@pytest.mark.parametrize(("start", "end"), [(1, 3), (2, 5), (4, 9), (3, 2), (-1, 0)])
def test_perfect_subtrees_refuse_ranges_that_are_not_subtrees(start: int, end: int) -> None:
    with pytest.raises(ValueError, match=r"subtree|invalid"):
        perfect_subtrees(start, end)


def test_root_node_ids() -> None:
    assert root_node_ids(0) == []
    assert root_node_ids(13) == [(3, 0), (2, 2), (0, 12)]


def test_node_ids_for_ranges() -> None:
    assert node_ids_for_ranges([(2, 3), (0, 2), (4, 7)]) == {(0, 2), (1, 0), (1, 2), (0, 6)}


@pytest.mark.parametrize(
    ("index", "ids"),
    [
        (0, []),
        (1, [(0, 0)]),
        (2, []),
        (3, [(0, 2), (1, 0)]),
        (7, [(0, 6), (1, 2), (2, 0)]),
        (12, []),
        (13, [(0, 12)]),
    ],
)
def test_append_sibling_ids(index: int, ids: list[tuple[int, int]]) -> None:
    assert append_sibling_ids(index) == ids


def test_nodes_after_append_completes_parents(tree: MemoryTree) -> None:
    created = nodes_after_append(7, vectors.NODE_HASHES[0][7], tree.nodes)
    assert created == [
        ((0, 7), vectors.NODE_HASHES[0][7]),
        ((1, 3), vectors.NODE_HASHES[1][3]),
        ((2, 1), vectors.NODE_HASHES[2][1]),
        ((3, 0), vectors.NODE_HASHES[3][0]),
    ]


def test_appends_refuse_wrong_length_hashes() -> None:
    with pytest.raises(ValueError, match="32"):
        nodes_after_append(0, bytes(31), {})
    with pytest.raises(ValueError, match="32"):
        CompactRange().append_hash(bytes(33))
    with pytest.raises(ValueError, match="negative"):
        append_sibling_ids(-1)


def test_append_returns_index() -> None:
    t = MemoryTree()
    assert [t.append(b"a"), t.append(b"b"), t.append_hash(bytes(HASH_SIZE))] == [0, 1, 2]
    assert t.size == 3


# --- verification probes (transparency-dev/merkle proof/verify_test.go) ----------------------


def _inclusion_probes(
    index: int, size: int, proof: list[bytes], root: bytes, lh: bytes
) -> list[tuple[str, int, int, list[bytes], bytes, bytes]]:
    probes = [
        ("index - 1", index - 1, size, proof, root, lh),
        ("index + 1", index + 1, size, proof, root, lh),
        ("index ^ 2", index ^ 2, size, proof, root, lh),
        ("size * 2", index, size * 2, proof, root, lh),
        ("size // 2", index, size // 2, proof, root, lh),
        ("wrong leaf", index, size, proof, root, b"WrongLeaf"),
        ("empty root", index, size, proof, vectors.EMPTY_TREE_HASH, lh),
        ("random root", index, size, proof, vectors.SOME_HASH, lh),
        ("trailing garbage", index, size, [*proof, b""], root, lh),
        ("trailing root", index, size, [*proof, root], root, lh),
        ("preceding garbage", index, size, [b"", *proof], root, lh),
        ("preceding root", index, size, [root, *proof], root, lh),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 8]) + wrong[i][1:]
        probes.append((f"modified proof[{i}] bit 3", index, size, wrong, root, lh))
    if proof:
        probes.append(("removed component", index, size, proof[:-1], root, lh))
    if len(proof) > 1:
        probes.append(
            ("inserted component", index, size, [proof[0], vectors.SOME_HASH, *proof[1:]], root, lh)
        )
    return probes


@pytest.mark.parametrize(("index", "size", "proof"), vectors.INCLUSION_PROOFS)
def test_inclusion_probes_fail(index: int, size: int, proof: list[bytes]) -> None:
    lh = leaf_hash(vectors.LEAVES[index])
    accepted = []
    for desc, i, n, p, root, h in _inclusion_probes(index, size, proof, vectors.ROOTS[size], lh):
        try:
            verify_inclusion(h, i, n, p, root)
        except VerificationError:
            continue
        accepted.append(desc)
    assert accepted == []


@pytest.mark.parametrize(("index", "size"), [(0, 0), (0, 1), (1, 0), (2, 1)])
def test_inclusion_degenerate_probes(index: int, size: int) -> None:
    for lh, root in [
        (vectors.SOME_HASH, b""),
        (b"", vectors.EMPTY_TREE_HASH),
        (vectors.SOME_HASH, vectors.EMPTY_TREE_HASH),
    ]:
        with pytest.raises(VerificationError):
            verify_inclusion(lh, index, size, [], root)


def test_single_entry_inclusion() -> None:
    h = leaf_hash(b"data")
    verify_inclusion(h, 0, 1, [], h)
    for lh, root in [(h, b""), (b"", h), (b"", b"")]:
        with pytest.raises(VerificationError):
            verify_inclusion(lh, 0, 1, [], root)


def _consistency_probes(
    old: int, new: int, root1: bytes, root2: bytes, proof: list[bytes]
) -> list[tuple[str, int, int, bytes, bytes, list[bytes]]]:
    probes = [
        ("old - 1", old - 1, new, root1, root2, proof),
        ("old + 1", old + 1, new, root1, root2, proof),
        ("old ^ 2", old ^ 2, new, root1, root2, proof),
        ("new * 2", old, new * 2, root1, root2, proof),
        ("new // 2", old, new // 2, root1, root2, proof),
        ("wrong root1", old, new, b"WrongRoot", root2, proof),
        ("wrong root2", old, new, root1, b"WrongRoot", proof),
        ("swapped roots", old, new, root2, root1, proof),
        ("empty proof", old, new, root1, root2, []),
        ("trailing garbage", old, new, root1, root2, [*proof, b""]),
        ("trailing root1", old, new, root1, root2, [*proof, root1]),
        ("trailing root2", old, new, root1, root2, [*proof, root2]),
        ("preceding garbage", old, new, root1, root2, [b"", *proof]),
        ("preceding root1", old, new, root1, root2, [root1, *proof]),
        ("preceding root2", old, new, root1, root2, [root2, *proof]),
        ("preceding proof[0]", old, new, root1, root2, [proof[0], *proof]),
        ("truncated proof", old, new, root1, root2, proof[:-1]),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 16]) + wrong[i][1:]
        probes.append((f"modified proof[{i}] bit 4", old, new, root1, root2, wrong))
    return probes


@pytest.mark.parametrize(("old", "new", "proof"), [v for v in vectors.CONSISTENCY_PROOFS if v[2]])
def test_consistency_probes_fail(old: int, new: int, proof: list[bytes]) -> None:
    root1, root2 = vectors.ROOTS[old], vectors.ROOTS[new]
    accepted = []
    for desc, m, n, r1, r2, p in _consistency_probes(old, new, root1, root2, proof):
        try:
            verify_consistency(m, n, p, r1, r2)
        except VerificationError:
            continue
        accepted.append(desc)
    assert accepted == []


def test_consistency_between_equal_sizes() -> None:
    r = vectors.ROOTS[1]
    verify_consistency(1, 1, [], r, r)
    with pytest.raises(VerificationError):
        verify_consistency(1, 1, [], r, vectors.ROOTS[2])
    with pytest.raises(VerificationError):
        verify_consistency(1, 1, [r], r, r)


@pytest.mark.parametrize(("old", "new"), [(0, 0), (0, 1), (0, 8), (1, 0), (2, 1), (-1, 1)])
def test_consistency_from_empty_or_backwards_is_refused(old: int, new: int) -> None:
    # We require old_size >= 1 (see verify_consistency); transparency-dev/merkle instead
    # accepts an empty proof from size 0.
    e = vectors.EMPTY_TREE_HASH
    with pytest.raises(VerificationError):
        verify_consistency(old, new, [], e, e)


def test_consistency_needs_a_proof_for_growth() -> None:
    with pytest.raises(VerificationError):
        verify_consistency(1, 2, [], vectors.ROOTS[1], vectors.ROOTS[2])


def test_verification_error_is_opaque() -> None:
    with pytest.raises(VerificationError) as short:
        verify_inclusion(bytes(32), 0, 1, [], bytes(31))
    with pytest.raises(VerificationError) as mismatch:
        verify_inclusion(bytes(32), 0, 1, [], bytes([1]) * 32)
    assert str(short.value) == str(mismatch.value) == "verification failed"


def test_inclusion_proofs_do_not_bind_tree_size_by_themselves() -> None:
    # RFC 9162 proofs are checked against a root; nothing in the algorithm ties the root
    # to the claimed size. Here the size-4 proof for leaf 0 also passes as a "size 3"
    # claim against the size-4 root. The signed checkpoint, which carries size and root
    # together, is what binds them; callers must take both from one verified checkpoint.
    t = MemoryTree()
    for leaf in vectors.LEAVES[:4]:
        t.append(leaf)
    verify_inclusion(t.nodes[(0, 0)], 0, 3, t.inclusion_proof(0, 4), t.root(4))
    with pytest.raises(VerificationError):
        verify_inclusion(t.nodes[(0, 0)], 0, 3, t.inclusion_proof(0, 4), t.root(3))
