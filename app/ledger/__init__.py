"""The ledger core: what an auditor reads first.

Everything that decides whether the consent log can be trusted lives here, in pure code
(standard library, ``cryptography`` and ``rfc8785`` only; no web framework, no database,
no clock):

* :mod:`app.ledger.entry` — an entry's leaf bytes are its RFC 8785 (JCS) canonical JSON.
* :mod:`app.ledger.events` — one typed event per entry type: each payload's fields, written
  and parsed in one place.
* :mod:`app.ledger.merkle` — the RFC 6962 / RFC 9162 §2.1 Merkle tree over those leaves:
  roots, inclusion and consistency proofs, and their verification.
* :mod:`app.ledger.checkpoint` — signed tree heads as C2SP tlog-checkpoint bodies in
  C2SP signed-note envelopes, with Ed25519 keys.

Every failed check raises the same :class:`VerificationError`.
"""

from app.ledger.checkpoint import (
    MAX_SIGNATURES,
    Checkpoint,
    CheckpointSigner,
    CheckpointVerifier,
    key_id,
    load_private_key_pem,
    private_key_pem,
    verify_note,
)
from app.ledger.entry import MAX_LEAF_BYTES, decode_entry, encode_entry
from app.ledger.errors import (
    CheckpointFormatError,
    EntryError,
    LedgerError,
    VerificationError,
)
from app.ledger.merkle import (
    HASH_SIZE,
    CompactRange,
    MemoryTree,
    NodeId,
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

__all__ = [
    "HASH_SIZE",
    "MAX_LEAF_BYTES",
    "MAX_SIGNATURES",
    "Checkpoint",
    "CheckpointFormatError",
    "CheckpointSigner",
    "CheckpointVerifier",
    "CompactRange",
    "EntryError",
    "LedgerError",
    "MemoryTree",
    "NodeId",
    "VerificationError",
    "append_sibling_ids",
    "consistency_proof",
    "consistency_proof_ranges",
    "decode_entry",
    "empty_root",
    "encode_entry",
    "inclusion_proof",
    "inclusion_proof_ranges",
    "key_id",
    "leaf_hash",
    "load_private_key_pem",
    "node_hash",
    "node_ids_for_ranges",
    "nodes_after_append",
    "perfect_subtrees",
    "private_key_pem",
    "range_hash",
    "root_from_leaf_hashes",
    "root_node_ids",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
    "verify_note",
]
