"""Offline receipts: an entry's inclusion proof and a signed checkpoint, as one
c2sp.org/tlog-proof, checkable with the log's verifier key alone."""

from __future__ import annotations

from sqlalchemy import select

from app.errors import FieldError as FE
from app.errors import InvalidArgument, NotFound
from app.ledger.tlog_proof import TlogProof
from app.models import LogCheckpoint
from app.services.container import Ledger
from app.services.log import witnesses
from app.services.log.log_store import LogInconsistent


def tlog_proof(ledger: Ledger, index: int, size: int | None = None) -> str:
    """The proof that entry ``index`` is in the signed checkpoint of ``size`` entries (the
    newest checkpoint when ``size`` is None). Only a size the log has signed a checkpoint for
    can be asked for: a proof is worth nothing offline without the signature it leads to."""
    store = ledger.log_store
    with ledger.db.read() as session:
        if size is None:
            signed = store.latest_checkpoint(session)
            if signed is None:
                raise NotFound("the log is empty: no checkpoint has been signed yet")
        else:
            signed = session.execute(
                select(LogCheckpoint).where(LogCheckpoint.tree_size == size)
            ).scalar_one_or_none()
            if signed is None:
                raise InvalidArgument(
                    f"no checkpoint was signed at tree size {size}",
                    errors=[FE("size", f"{size} is not the size of a signed checkpoint", "query")],
                )
        if not 0 <= index < signed.tree_size:
            raise InvalidArgument(
                f"index must be below the checkpoint's tree size {signed.tree_size}",
                errors=[FE("index", f"{index} is outside 0..{signed.tree_size - 1}", "query")],
            )
        proof = store.inclusion_proof(session, index, signed.tree_size)
        # With the witnesses' cosignatures stored for that size, if any: checkable offline
        # against the witnesses' keys too.
        note = witnesses.cosigned_note(session, ledger.witnesses, signed)
    # Served only if the path leads to the root that was signed: a damaged node must not
    # hand a person a receipt that fails to verify later, when nobody can ask why.
    if proof.root_hash != signed.root_hash:
        raise LogInconsistent(
            f"the stored tree does not match the checkpoint at size {signed.tree_size}"
        )
    return TlogProof(index, tuple(proof.hashes), note).encode()


def download_headers(index: int) -> dict[str, str]:
    """Offered as a file with the spec's extension (``.tlog-proof``), so a saved receipt says
    what it is; the API and the patient page name it alike."""
    return {"Content-Disposition": f'attachment; filename="receipt-{index}.tlog-proof"'}
