"""The log's public face: checkpoint, verifier key, entries and proofs (RFC 9162, C2SP).

The checkpoint and key need no token, so a witness or auditor can fetch them anonymously; the
proofs need any client; entries need an auditor or an IG lead, and what an entry about a person
says (its opening) only an auditor or an IG lead of an organisation the entry names.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, jsonify, request

from app.api.common import BEARER, Blueprint, authenticated, current_principal, ledger
from app.api.schemas import Integer, QuerySchema
from app.services.log import log_entries, receipts, tiles
from app.services.log import signing_keys as log_keys

blp = Blueprint(
    "log",
    __name__,
    url_prefix="/v1/log",
    description="The signed append-only log (RFC 9162 Merkle tree, C2SP checkpoints)",
)

TEXT = {"text/plain": {"schema": {"type": "string"}}}


class OpeningSchema(ma.Schema):
    salt = ma.fields.String(metadata={"description": "hex of the 32 bytes of salt"})
    entry = ma.fields.String(metadata={"description": "base64 of the entry's canonical bytes"})


class EntrySchema(ma.Schema):
    index = Integer()
    leaf_hash = ma.fields.String(metadata={"description": "hex SHA-256(0x00 || leaf)"})
    leaf = ma.fields.String(metadata={"description": "base64 of the exact leaf bytes"})
    state = ma.fields.String(
        metadata={
            "description": "clear: the leaf is the entry; opened: the leaf commits to the entry "
            "(log format 2) and the opening is given; withheld: it commits to an entry this "
            "reader may not read; erased: its opening was deleted by the subject.erased entry "
            "at erased_by; unreadable: damaged (run consent-ledger verify)",
            "enum": ["clear", "opened", "withheld", "erased", "unreadable"],
        }
    )
    entry = ma.fields.Dict(
        allow_none=True,
        metadata={"description": "the entry (RFC 8785 JSON), decoded from the leaf or opening"},
    )
    opening = ma.fields.Nested(
        OpeningSchema,
        allow_none=True,
        metadata={
            "description": "what a committed leaf commits to: its commitment is "
            'SHA-256("consent-ledger entry commitment v2\\0" || salt || entry)'
        },
    )
    erased_by = Integer(allow_none=True)


class InclusionArgs(QuerySchema):
    index = Integer(required=True, validate=ma.validate.Range(min=0))
    size = Integer(
        validate=ma.validate.Range(min=1),
        metadata={"description": "tree size; defaults to the newest checkpoint's"},
    )


class InclusionSchema(ma.Schema):
    index = Integer()
    size = Integer()
    leaf_hash = ma.fields.String()
    root_hash = ma.fields.String()
    hashes = ma.fields.List(ma.fields.String(), metadata={"description": "hex, leaf side first"})


class ConsistencyArgs(QuerySchema):
    from_ = Integer(required=True, data_key="from", validate=ma.validate.Range(min=1))
    to = Integer(
        validate=ma.validate.Range(min=1),
        metadata={"description": "tree size; defaults to the newest checkpoint's"},
    )


class ConsistencySchema(ma.Schema):
    from_ = Integer(data_key="from")
    to = Integer()
    from_root = ma.fields.String()
    to_root = ma.fields.String()
    hashes = ma.fields.List(ma.fields.String())


@blp.route("/checkpoint")
@blp.doc(responses={"200": {"description": "C2SP signed checkpoint", "content": TEXT}})
@blp.alt_response(404, response="NOT_FOUND", description="The log is empty")
def checkpoint() -> Response:
    # The same note as the public /log/checkpoint (c2sp.org/tlog-tiles), from the same place.
    return Response(tiles.checkpoint(ledger()), mimetype="text/plain")


KEYS_JSON = {
    "application/json": {
        "schema": {
            "type": "object",
            "properties": {
                "keys": {
                    "type": "array",
                    "description": "every key the log has signed with, newest first",
                    "items": {
                        "type": "object",
                        "properties": {
                            "vkey": {"type": "string"},
                            "key_id": {"type": "string"},
                            "generation": {"type": "integer"},
                            "status": {"type": "string", "enum": ["active", "retired"]},
                            "first_size": {"type": ["integer", "null"]},
                            "first_at": {"type": ["string", "null"]},
                            "last_size": {"type": ["integer", "null"]},
                            "last_at": {"type": ["string", "null"]},
                        },
                    },
                }
            },
        }
    }
}


@blp.route("/key")
@blp.doc(
    responses={
        "200": {
            "description": "text/plain (the default): the newest verifier key "
            "(name+keyid+base64 key), one line. With Accept: application/json: every key the "
            "log has signed with, newest first, with the checkpoints each signed (first_size "
            "to last_size; last_size null while it still signs) and its status",
            "content": {**TEXT, **KEYS_JSON},
        }
    }
)
def key() -> Response:
    listed = log_keys.list_keys(ledger())
    best = request.accept_mimetypes.best_match(["text/plain", "application/json"])
    if best == "application/json":
        return jsonify({"keys": [k.as_json() for k in listed]})
    # One line, as before rotation existed: `curl .../v1/log/key` is a usable key. The newest
    # is the one that signs every checkpoint from now on.
    return Response(listed[0].vkey + "\n", mimetype="text/plain")


@blp.route("/entries/<int:index>")
@authenticated("auditor", "ig_lead")
@blp.doc(security=BEARER)
@blp.response(200, EntrySchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
def entry(index: int) -> Any:
    """One entry: its exact leaf bytes (base64), leaf hash and decoded form. An auditor reads
    any entry; an IG lead reads the entries that name its organisation, and those about the
    service itself (organisations registered, policies published)."""
    return log_entries.read_entry(ledger(), current_principal(), index)


@blp.route("/proof/inclusion")
@authenticated()
@blp.doc(security=BEARER)
@blp.arguments(InclusionArgs(), location="query", error_status_code=400)
@blp.response(200, InclusionSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
def inclusion(args: dict[str, Any]) -> Any:
    led = ledger()
    with led.db.read() as session:
        proof = led.log_store.inclusion_proof(session, args["index"], args.get("size"))
    return {
        "index": proof.index,
        "size": proof.size,
        "leaf_hash": proof.leaf_hash.hex(),
        "root_hash": proof.root_hash.hex(),
        "hashes": [h.hex() for h in proof.hashes],
    }


@blp.route("/proof/consistency")
@authenticated()
@blp.doc(security=BEARER)
@blp.arguments(ConsistencyArgs(), location="query", error_status_code=400)
@blp.response(200, ConsistencySchema)
@blp.alt_response(401, response="UNAUTHORIZED")
def consistency(args: dict[str, Any]) -> Any:
    led = ledger()
    with led.db.read() as session:
        proof = led.log_store.consistency_proof(session, args["from_"], args.get("to"))
    return {
        "from_": proof.old_size,
        "to": proof.new_size,
        "from_root": proof.old_root.hex(),
        "to_root": proof.new_root.hex(),
        "hashes": [h.hex() for h in proof.hashes],
    }


class ReceiptArgs(QuerySchema):
    index = Integer(required=True, validate=ma.validate.Range(min=0))
    size = Integer(
        validate=ma.validate.Range(min=1),
        metadata={
            "description": "the tree size of a signed checkpoint (a receipt's); defaults to "
            "the newest checkpoint's"
        },
    )


@blp.route("/proof/receipt")
@authenticated()
@blp.doc(
    security=BEARER,
    responses={
        "200": {
            "description": "c2sp.org/tlog-proof@v1: the index, the inclusion path and the "
            "signed checkpoint, checkable offline with the verifier key from /v1/log/key",
            "content": TEXT,
        }
    },
)
@blp.arguments(ReceiptArgs(), location="query", error_status_code=400)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(404, response="NOT_FOUND", description="The log is empty")
def receipt(args: dict[str, Any]) -> Response:
    """An offline receipt for one entry (c2sp.org/tlog-proof), as a download."""
    text = receipts.tlog_proof(ledger(), args["index"], args.get("size"))
    return Response(text, mimetype="text/plain", headers=receipts.download_headers(args["index"]))
