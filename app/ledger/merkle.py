"""The log's Merkle tree: RFC 6962 §2.1 / RFC 9162 §2.1, SHA-256.

Definitions (RFC 9162 §2.1.1):

* leaf hash ``SHA-256(0x00 || leaf)``, interior node ``SHA-256(0x01 || left || right)``;
* ``MTH({}) = SHA-256()``; ``MTH(D[n])`` for n > 1 splits at k, the largest power of two
  *strictly smaller* than n (not at the middle).

Storage model. Every node of such a tree that is ever read is either a *perfect* subtree
(2**level leaves, aligned) or a fold of perfect subtrees, so a store keeps only perfect
nodes, addressed by :data:`NodeId` ``(level, index)``. A perfect node never changes once
its last leaf is appended, which is what lets the store be append-only. The RFC 6962
subtrees that proofs are made of (``[start, end)`` with ``start`` a multiple of the
smallest power of two >= ``end - start``) decompose into at most ``log2(n)`` perfect
nodes, so any proof needs O(log n) stored nodes, fetched in one query
(:func:`node_ids_for_ranges`).

Verification (:func:`verify_inclusion`, :func:`verify_consistency`) follows the RFC 9162
algorithms step by step and raises the single opaque :class:`VerificationError`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence

from app.ledger.errors import VerificationError

__all__ = [
    "HASH_SIZE",
    "CompactRange",
    "MemoryTree",
    "NodeId",
    "append_sibling_ids",
    "consistency_proof",
    "consistency_proof_ranges",
    "empty_root",
    "inclusion_proof",
    "inclusion_proof_ranges",
    "leaf_hash",
    "node_hash",
    "node_ids_for_ranges",
    "nodes_after_append",
    "perfect_subtrees",
    "range_hash",
    "root_from_leaf_hashes",
    "root_node_ids",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32

NodeId = tuple[int, int]
"""``(level, index)``: the perfect subtree over leaves
``[index * 2**level, (index + 1) * 2**level)``. Level 0, index i is leaf i's leaf hash.
"""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


# --- hashing (RFC 6962 §2.1 / RFC 9162 §2.1.1) -------------------------------------------


def leaf_hash(leaf: bytes) -> bytes:
    """``SHA-256(0x00 || leaf)`` (RFC 9162 §2.1.1)."""
    return hashlib.sha256(_LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)`` (RFC 9162 §2.1.1).

    Raises ValueError unless both children are :data:`HASH_SIZE` bytes: with variable
    lengths, different pairs of children could concatenate to the same preimage.
    """
    if len(left) != HASH_SIZE or len(right) != HASH_SIZE:
        raise ValueError("node children must be 32-byte hashes")
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def empty_root() -> bytes:
    """``MTH({}) = SHA-256()``, the root of the empty tree (RFC 9162 §2.1.1)."""
    return hashlib.sha256(b"").digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2), RFC 9162 §2.1.1."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH over the given leaf hashes, by the recursive definition in RFC 9162 §2.1.1.

    The reference implementation, independent of the perfect-node machinery below, so
    the two can check each other. Recursion depth is log2(len(hashes)).
    """

    def mth(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return hashes[lo]
        k = _split(hi - lo)
        return node_hash(mth(lo, lo + k), mth(lo + k, hi))

    if not hashes:
        return empty_root()
    return mth(0, len(hashes))


# --- perfect-subtree decomposition ---------------------------------------------------------


def _check_subtree(start: int, end: int) -> None:
    if start < 0 or end < start:
        raise ValueError(f"invalid range [{start}, {end})")
    if end > start:
        width = end - start
        # Every subtree of an RFC 6962 tree starts at a multiple of BIT_CEIL(width).
        bit_ceil = 1 << (width - 1).bit_length()
        if start % bit_ceil:
            raise ValueError(f"[{start}, {end}) is not a subtree of an RFC 6962 tree")


def perfect_subtrees(start: int, end: int) -> list[NodeId]:
    """Decompose the RFC 6962 subtree ``[start, end)`` into perfect subtrees.

    Returned left to right, largest first: one node per set bit of ``end - start``. By
    RFC 9162 §2.1.1, MTH of the range is the right fold ``H(p1, H(p2, ... pk))`` of their
    hashes. ``start`` must be a multiple of the smallest power of two >= ``end - start``
    (true of every subtree of an RFC 6962 tree, and of every range in a proof);
    ValueError otherwise. An empty range gives an empty list.
    """
    _check_subtree(start, end)
    out: list[NodeId] = []
    pos = start
    rest = end - start
    while rest:  # one step per set bit, highest first (proof ranges are mostly one node)
        level = rest.bit_length() - 1
        out.append((level, pos >> level))
        pos += 1 << level
        rest -= 1 << level
    return out


def range_hash(start: int, end: int, nodes: Mapping[NodeId, bytes]) -> bytes:
    """MTH(D[start:end]) from stored perfect node hashes (RFC 9162 §2.1.1).

    Raises KeyError if a needed node is missing; ``empty_root()`` for an empty range.
    """
    ids = perfect_subtrees(start, end)
    if not ids:
        return empty_root()
    acc = nodes[ids[-1]]
    for node_id in reversed(ids[:-1]):
        acc = node_hash(nodes[node_id], acc)
    return acc


def root_node_ids(size: int) -> list[NodeId]:
    """The perfect nodes whose right fold is the root of the tree of ``size`` leaves."""
    return perfect_subtrees(0, size)


def tree_root(size: int, nodes: Mapping[NodeId, bytes]) -> bytes:
    """MTH(D[0:size]) from stored perfect nodes; ``empty_root()`` for size 0."""
    return range_hash(0, size, nodes)


# --- proofs as leaf ranges -----------------------------------------------------------------


def inclusion_proof_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs make up PATH(index, D[0:size]), RFC 9162 §2.1.3.1.

    In the RFC's order: the sibling nearest the leaf first, the root's other child last.
    ValueError unless ``0 <= index < size``.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    outer_first: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            # PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])
            outer_first.append((mid, hi))
            hi = mid
        else:
            # PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k])
            outer_first.append((lo, mid))
            lo = mid
    outer_first.reverse()
    return outer_first


def consistency_proof_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs make up PROOF(m, D[0:n]), RFC 9162 §2.1.4.1.

    PROOF(m, D[n]) = SUBPROOF(m, D[n], true), where SUBPROOF(m, D[m], true) is empty,
    SUBPROOF(m, D[m], false) is [MTH(D[m])], and for m < n with k the split point:
    m <= k gives SUBPROOF(m, D[0:k], b) : MTH(D[k:n]), and m > k gives
    SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]). Returned in the RFC's order.
    Empty for ``old_size == new_size``; ValueError unless ``0 < old_size <= new_size``.
    """
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    outer_first: list[tuple[int, int]] = []
    lo, hi = 0, new_size
    known = True  # the b flag: is MTH(D[lo:hi]) the old root the client already holds?
    while old_size - lo < hi - lo:
        mid = lo + _split(hi - lo)
        if old_size <= mid:
            outer_first.append((mid, hi))
            hi = mid
        else:
            outer_first.append((lo, mid))
            lo = mid
            known = False
    if not known:
        outer_first.append((lo, hi))
    outer_first.reverse()
    return outer_first


def node_ids_for_ranges(ranges: Iterable[tuple[int, int]]) -> set[NodeId]:
    """Every perfect node needed to hash ``ranges`` with :func:`range_hash`.

    For the ranges of one proof this is O(log n) nodes, so a store can fetch them all in
    one query.
    """
    ids: set[NodeId] = set()
    for start, end in ranges:
        ids.update(perfect_subtrees(start, end))
    return ids


def inclusion_proof(index: int, size: int, nodes: Mapping[NodeId, bytes]) -> list[bytes]:
    """PATH(index, D[0:size]) (RFC 9162 §2.1.3.1) from stored perfect nodes."""
    return [range_hash(a, b, nodes) for a, b in inclusion_proof_ranges(index, size)]


def consistency_proof(old_size: int, new_size: int, nodes: Mapping[NodeId, bytes]) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) (RFC 9162 §2.1.4.1) from stored perfect nodes."""
    return [range_hash(a, b, nodes) for a, b in consistency_proof_ranges(old_size, new_size)]


# --- appending -------------------------------------------------------------------------------


def append_sibling_ids(index: int) -> list[NodeId]:
    """The existing perfect nodes that leaf ``index`` completes a parent with.

    For each level l while bit l of ``index`` is set, the left sibling
    ``(l, (index >> l) - 1)``: appending leaf ``index`` completes exactly those parents.
    """
    if index < 0:
        raise ValueError("leaf index must be non-negative")
    ids: list[NodeId] = []
    level = 0
    while index >> level & 1:
        ids.append((level, (index >> level) - 1))
        level += 1
    return ids


def nodes_after_append(
    index: int, leaf_hash: bytes, nodes: Mapping[NodeId, bytes]
) -> list[tuple[NodeId, bytes]]:
    """The perfect nodes created by appending leaf ``index`` with hash ``leaf_hash``.

    ``(0, index)`` first, then each newly completed parent, bottom up. Reads only the
    nodes named by :func:`append_sibling_ids`; KeyError if one is missing.
    """
    if len(leaf_hash) != HASH_SIZE:
        raise ValueError("a leaf hash is 32 bytes")
    acc = bytes(leaf_hash)
    created: list[tuple[NodeId, bytes]] = [((0, index), acc)]
    for level, sibling in append_sibling_ids(index):
        acc = node_hash(nodes[(level, sibling)], acc)
        created.append(((level + 1, index >> (level + 1)), acc))
    return created


# --- verification (RFC 9162 §2.1.3.2, §2.1.4.2) -------------------------------------------


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify an inclusion proof, by the algorithm of RFC 9162 §2.1.3.2.

    Returns None if ``proof`` shows the leaf with hash ``leaf_hash`` is at ``index`` in
    the tree of ``size`` leaves whose root is ``root``. Raises :class:`VerificationError`
    for everything else: hashes that are not 32 bytes, ``index`` outside ``[0, size)``,
    too few or too many proof elements, or a root mismatch.
    """
    if not (_is_hash(leaf_hash) and _is_hash(root) and all(_is_hash(p) for p in proof)):
        raise VerificationError
    # 1. leaf_index must be below tree_size.
    if not 0 <= index < size:
        raise VerificationError
    # 2-3.
    fn, sn = index, size - 1
    r = leaf_hash
    # 4.
    for p in proof:
        # 4a. A proof element left over once sn reaches 0 means the proof is too long.
        if sn == 0:
            raise VerificationError
        # 4b.
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # "If LSB(fn) is not set, right-shift fn and sn until LSB(fn) is set or fn is 0."
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        # 4c.
        fn >>= 1
        sn >>= 1
    # 5. sn != 0 here means the proof was too short.
    if sn != 0 or not _same(r, root):
        raise VerificationError


def verify_consistency(
    old_size: int,
    new_size: int,
    proof: Sequence[bytes],
    old_root: bytes,
    new_root: bytes,
) -> None:
    """Verify a consistency proof, by the algorithm of RFC 9162 §2.1.4.2.

    Returns None if ``proof`` shows the tree of ``old_size`` leaves with root
    ``old_root`` is a prefix of the tree of ``new_size`` leaves with root ``new_root``.

    ``old_size`` must be at least 1. RFC 9162 §2.1.4.2 is stated for
    ``0 < first < second``; a consistency claim about the empty tree proves nothing
    (every tree extends it), so rather than return success for an empty proof we refuse
    it, and callers skip the check when they hold no earlier checkpoint. For
    ``old_size == new_size`` the proof must be empty and the roots equal
    (RFC 9162 §2.1.4.1: PROOF(n, D[n]) is empty).

    Raises :class:`VerificationError` for everything else.
    """
    if not (_is_hash(old_root) and _is_hash(new_root) and all(_is_hash(p) for p in proof)):
        raise VerificationError
    if not 0 < old_size <= new_size:
        raise VerificationError
    if old_size == new_size:
        if proof or not _same(old_root, new_root):
            raise VerificationError
        return
    # 1.
    if not proof:
        raise VerificationError
    path = list(proof)
    # 2. For a power-of-two first size the old root is itself a node of the new tree, so
    # the proof omits it and the verifier supplies it.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # 3.
    fn, sn = old_size - 1, new_size - 1
    # 4.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        # 6a.
        if sn == 0:
            raise VerificationError
        # 6b.
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        # 6c.
        fn >>= 1
        sn >>= 1
    # 7. Compare both roots before raising, so timing does not tell which one differed.
    old_ok = _same(fr, old_root)
    new_ok = _same(sr, new_root)
    if not (old_ok and new_ok and sn == 0):
        raise VerificationError


# --- in-memory trees -------------------------------------------------------------------------


class MemoryTree:
    """An append-only tree held in memory, keeping every perfect node.

    For tests, benchmarks and the offline verifier. Built only from the module functions
    above, so it exercises exactly the code paths the database-backed store uses.
    """

    def __init__(self) -> None:
        self.nodes: dict[NodeId, bytes] = {}
        self._size = 0

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, leaf: bytes) -> int:
        """Append leaf bytes; return the new leaf's index."""
        return self.append_hash(leaf_hash(leaf))

    def append_hash(self, leaf_hash: bytes) -> int:
        """Append a leaf by its leaf hash; return the new leaf's index."""
        index = self._size
        self.nodes.update(nodes_after_append(index, leaf_hash, self.nodes))
        self._size += 1
        return index

    def _size_or_current(self, size: int | None) -> int:
        if size is None:
            return self._size
        if not 0 <= size <= self._size:
            raise ValueError(f"tree has {self._size} leaves, not {size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all of them)."""
        return tree_root(self._size_or_current(size), self.nodes)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) (RFC 9162 §2.1.3.1); size defaults to the current size."""
        return inclusion_proof(index, self._size_or_current(size), self.nodes)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """PROOF(old, D[0:new]) (RFC 9162 §2.1.4.1); new defaults to the current size."""
        return consistency_proof(old, self._size_or_current(new), self.nodes)


class CompactRange:
    """The right edge of a tree in O(log n) memory: one hash per perfect root node.

    A compact range over ``[0, size)`` (the structure transparency-dev/merkle calls a
    compact range) holds exactly the hashes of :func:`root_node_ids` ``(size)``. It lets a
    verifier stream through a log of any length, recompute every perfect node from the
    leaves, compare each with the stored one, and end with the root.
    """

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[tuple[NodeId, bytes]] = []

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append_hash(self, leaf_hash: bytes) -> list[tuple[NodeId, bytes]]:
        """Append a leaf by its hash; return the perfect nodes this completes.

        The same list, in the same order, as :func:`nodes_after_append`.
        """
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError("a leaf hash is 32 bytes")
        index = self._size
        acc = bytes(leaf_hash)
        created: list[tuple[NodeId, bytes]] = [((0, index), acc)]
        level = 0
        while index >> level & 1:
            _, left = self._stack.pop()
            acc = node_hash(left, acc)
            level += 1
            created.append(((level, index >> level), acc))
        self._stack.append(created[-1])
        self._size += 1
        return created

    def extend(self, leaf_hashes: Sequence[bytes]) -> list[tuple[int, int, list[bytes]]]:
        """Append many leaves by their hashes, hashing level by level; return what completes.

        The perfect nodes completed, as ``(level, first index, hashes)``: one triple per
        level, from level 0 up, while that level gains a node, the hashes in index order.
        These are exactly the nodes :meth:`append_hash` would return for each leaf in turn,
        grouped by level, and the range ends in the same state. Level by level, each parent
        is one ``SHA-256(0x01 || left || right)`` over a list, which is what lets a verifier
        rebuild a large log in bulk and compare each level with the stored one at once.
        """
        if any(len(h) != HASH_SIZE for h in leaf_hashes):
            raise ValueError("a leaf hash is 32 bytes")
        start = self._size
        end = start + len(leaf_hashes)
        # The left sibling at each level: the held node of that level (one per set bit of
        # start), needed when the first node completed at a level is a right child.
        held = {level: h for (level, _), h in self._stack}
        created: list[tuple[int, int, list[bytes]]] = []
        current = [bytes(h) for h in leaf_hashes]
        level = 0
        sha256 = hashlib.sha256
        while current:
            first = start >> level
            created.append((level, first, current))
            children = [held[level], *current] if first & 1 else current
            # Pairs (0, 1), (2, 3), ...; an odd last child waits for its sibling.
            pairs = iter(children)
            current = [
                sha256(_NODE_PREFIX + a + b).digest() for a, b in zip(pairs, pairs, strict=False)
            ]
            level += 1
        old = dict(self._stack)
        stack: list[tuple[NodeId, bytes]] = []
        for node_id in root_node_ids(end):
            node_level, index = node_id
            if node_level < len(created) and index >= created[node_level][1]:
                stack.append((node_id, created[node_level][2][index - created[node_level][1]]))
            else:
                stack.append((node_id, old[node_id]))  # complete before start: held already
        self._stack = stack
        self._size = end
        return created

    @classmethod
    def from_root_nodes(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """The range over ``[0, size)`` from the hashes of :func:`root_node_ids` ``(size)``, in
        order (what :meth:`root_nodes` gave): how a verifier that saved only the right edge of a
        tree resumes it. ValueError unless there is one 32-byte hash per root node."""
        ids = root_node_ids(size)
        if len(hashes) != len(ids) or any(len(h) != HASH_SIZE for h in hashes):
            raise ValueError(f"a tree of {size} leaves has {len(ids)} root nodes of 32 bytes")
        out = cls()
        out._size = size
        out._stack = [(node_id, bytes(h)) for node_id, h in zip(ids, hashes, strict=True)]
        return out

    def copy(self) -> CompactRange:
        """An independent range in the same state."""
        other = CompactRange()
        other._size = self._size
        other._stack = list(self._stack)
        return other

    def root_nodes(self) -> list[tuple[NodeId, bytes]]:
        """The nodes held, left to right: :func:`root_node_ids` ``(size)`` with their hashes."""
        return list(self._stack)

    def root(self) -> bytes:
        """MTH of all leaves appended so far; ``empty_root()`` if none."""
        if not self._stack:
            return empty_root()
        acc = self._stack[-1][1]
        for _, h in reversed(self._stack[:-1]):
            acc = node_hash(h, acc)
        return acc
