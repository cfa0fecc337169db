"""Offline receipts (issue 16, item 3): every write's receipt as a c2sp.org/tlog-proof, from the
API and the patient page, checked here with the verifier key alone.

The proof text is read by the small parser below, written from c2sp.org/tlog-proof ("Format"),
and checked with the independent verifier in tests/support, never with the project's own
ledger code: nothing here would notice if both sides shared a misreading. An outside
implementation, ``tlog-scales`` (PyPI; its ``gen-proof`` writes tlog-proofs from a log's tiles),
must write the very same text from the public tiles and accept ours.
"""

from __future__ import annotations

import argparse
import base64
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import tlog_scales.backend
from flask.testing import FlaskClient
from tlog_scales import cli as tlog_cli
from tlog_scales import tlog
from tlog_scales.signing import Vkey

from app.policy import Policy
from app.services.container import Ledger
from tests.api.test_tiles import FlaskBackend, grow
from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers
from tests.support import rfc9162_verifier as rfc

PERSON = valid_nhs_numbers(1, start=943_476_000)[0]


@dataclass(frozen=True)
class SpecProof:
    index: int
    hashes: list[bytes]
    checkpoint: str


def spec_parse(text: str) -> SpecProof:
    """c2sp.org/tlog-proof@v1, "Format": header; optional `extra` line; `index N`; zero or
    more base64 SHA-256 hashes; an empty line; the checkpoint verbatim."""
    head, sep, checkpoint = text.partition("\n\n")
    if not sep:
        raise rfc.Invalid("no empty line before the checkpoint")
    lines = head.split("\n")
    if lines.pop(0) != "c2sp.org/tlog-proof@v1":
        raise rfc.Invalid("bad header")
    if lines and lines[0].startswith("extra "):
        lines.pop(0)
    found = re.fullmatch(r"index (0|[1-9][0-9]*)", lines.pop(0) if lines else "")
    if found is None:
        raise rfc.Invalid("bad index line")
    hashes = [base64.b64decode(line, validate=True) for line in lines]
    if any(len(h) != 32 for h in hashes):
        raise rfc.Invalid("a hash is not 32 bytes")
    return SpecProof(int(found.group(1)), hashes, checkpoint)


def check_offline(text: str, vkey: str, leaf_hash: bytes) -> rfc.Checkpoint:
    """tlog-proof "Verifying a tlog proof", steps 2 and 4 (there are no witnesses yet)."""
    proof = spec_parse(text)
    cp = rfc.verify_checkpoint(proof.checkpoint, vkey)
    rfc.verify_inclusion(leaf_hash, proof.index, cp.size, proof.hashes, cp.root_hash)
    return cp


def _accepted(text: str, vkey: str, leaf_hash: bytes) -> bool:
    try:
        check_offline(text, vkey, leaf_hash)
    except (rfc.Invalid, ValueError):  # ValueError: base64 that is no longer base64
        return False
    return True


def _leaf_hash(client: FlaskClient, auth: dict[str, str], index: int) -> bytes:
    return bytes.fromhex(client.get(f"/v1/log/entries/{index}", headers=auth).json["leaf_hash"])


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_a_receipt_verifies_offline_inside_and_at_the_end_of_the_log(
    client: FlaskClient, orgs: list[str], make_token: Callable[..., str]
) -> None:
    auth = bearer(make_token("tt-leeds", "auditor"))
    vkey = client.get("/v1/log/key").text.strip()
    older = rfc.verify_checkpoint(client.get("/v1/log/checkpoint").text, vkey)
    make_token("cmht-leeds-west", "case_system")  # one more write: the log grows past `older`
    newest = rfc.verify_checkpoint(client.get("/v1/log/checkpoint").text, vkey)
    assert newest.size > older.size >= 4
    # (index, size asked for): in an older checkpoint the log has grown past (its first, a
    # middle and its last entry), the newest named, and by default (its first and last entry).
    cases = [
        (0, older.size),
        (2, older.size),
        (older.size - 1, older.size),
        (2, newest.size),
        (0, None),
        (newest.size - 1, None),
    ]
    for index, size in cases:
        query = f"index={index}" + ("" if size is None else f"&size={size}")
        resp = client.get(f"/v1/log/proof/receipt?{query}", headers=auth)
        assert resp.status_code == 200, resp.text
        assert resp.mimetype == "text/plain"
        assert ".tlog-proof" in resp.headers["Content-Disposition"]
        cp = check_offline(resp.text, vkey, _leaf_hash(client, auth, index))
        assert cp.size == (newest.size if size is None else size)
        assert spec_parse(resp.text).index == index


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_an_outside_implementation_writes_the_same_receipt_and_accepts_ours(
    client: FlaskClient,
    ledger: Ledger,
    make_token: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    auth = bearer(make_token("tt-leeds", "auditor"))
    grow(ledger, 256)  # a checkpoint on a tile boundary
    grow(ledger, 300)  # and the newest, inside a tile
    vkey = client.get("/v1/log/key").text.strip()
    # tlog-scales' gen-proof reads the public tiles (no token) of the log "at" a location.
    monkeypatch.setattr(tlog_scales.backend, "make_backend", lambda _: FlaskBackend(client))
    for index in (0, 255, 256, 299):
        tlog_cli.cmd_gen_proof(argparse.Namespace(location="flask", leaf_index=index))
        theirs = capsys.readouterr().out
        ours = client.get(f"/v1/log/proof/receipt?index={index}", headers=auth).text
        assert ours == theirs, index
    for index, size in ((0, 256), (255, 256), (299, 300)):
        text = client.get(f"/v1/log/proof/receipt?index={index}&size={size}", headers=auth).text
        proof = spec_parse(text)
        cp = tlog.Checkpoint.from_text(proof.checkpoint)
        cp.verify(Vkey.from_string(vkey))
        assert cp.size == size
        inclusion = tlog.InclusionProof(proof.index, cp.size, proof.hashes)
        inclusion.check(_leaf_hash(client, auth, index), cp.root_hash)
        with pytest.raises(tlog.InclusionProofInvalid):
            inclusion.check(rfc.leaf_hash(b"another leaf"), cp.root_hash)


def test_a_tampered_receipt_fails(
    client: FlaskClient, orgs: list[str], make_token: Callable[..., str]
) -> None:
    auth = bearer(make_token("tt-leeds", "auditor"))
    vkey = client.get("/v1/log/key").text.strip()
    text = client.get("/v1/log/proof/receipt?index=2", headers=auth).text
    leaf = _leaf_hash(client, auth, 2)
    check_offline(text, vkey, leaf)
    proof = spec_parse(text)
    flipped = base64.b64encode(bytes([proof.hashes[0][0] ^ 1]) + proof.hashes[0][1:]).decode()
    body_root = rfc.parse_checkpoint(proof.checkpoint.split("\n\n")[0] + "\n").root_hash
    forged_root = base64.b64encode(bytes(32)).decode()
    tampered = {
        "another leaf": (text, rfc.leaf_hash(b'{"forged":true}')),
        "an index moved": (text.replace("index 2\n", "index 3\n"), leaf),
        "a path hash changed": (
            text.replace(base64.b64encode(proof.hashes[0]).decode(), flipped),
            leaf,
        ),
        "a path hash dropped": (
            text.replace(base64.b64encode(proof.hashes[0]).decode() + "\n", ""),
            leaf,
        ),
        "the signed root changed": (
            text.replace(base64.b64encode(body_root).decode(), forged_root),
            leaf,
        ),
    }
    accepted = [
        name for name, (bad, leaf_hash) in tampered.items() if _accepted(bad, vkey, leaf_hash)
    ]
    assert accepted == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("index=0&size=999", "size"),  # no checkpoint of that size
        ("index=999", "index"),  # not in the newest checkpoint's tree
        ("index=-1", "index"),
        ("size=3", "index"),
    ],
)
def test_a_receipt_that_cannot_be_made_is_a_problem_naming_the_field(
    client: FlaskClient, orgs: list[str], make_token: Callable[..., str], query: str, field: str
) -> None:
    resp = client.get(f"/v1/log/proof/receipt?{query}", headers=bearer(make_token()))
    assert resp.status_code == 400
    assert resp.mimetype == "application/problem+json"
    assert field in [e["field"] for e in resp.json["errors"]]


def test_the_patient_page_offers_the_receipt_as_a_file_that_verifies_offline(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    owner = make_token("tt-leeds", "case_system")
    consent = client.post(
        "/v1/consents",
        headers=bearer(owner),
        json={
            "subject": {"nhs_number": PERSON},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity"],
            "form": "verbal",
        },
    ).json
    link = (
        client.post(
            "/v1/subjects/access-links",
            headers=bearer(owner),
            json={"subject": {"nhs_number": PERSON}},
        )
        .json["url"]
        .rsplit("/p/", 1)[1]
    )
    page = client.get(f"/p/{link}/consents/{consent['id']}/withdraw").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    receipt = client.post(
        f"/p/{link}/consents/{consent['id']}/withdraw", data={"csrf_token": csrf.group(1)}
    ).text
    record = re.search(r"<dt>Record number</dt><dd>(\d+)</dd>", receipt)
    assert record
    index = int(record.group(1))
    fingerprint = re.search(r"<dt>Fingerprint</dt><dd><code>([0-9a-f]{64})</code>", receipt)
    assert fingerprint
    href = re.search(r'<a href="([^"]+\.tlog-proof[^"]*)" download>', receipt)
    assert href, "no download link on the receipt"
    resp = client.get(href.group(1).replace("&amp;", "&"))
    assert resp.status_code == 200
    assert f'filename="receipt-{index}.tlog-proof"' in resp.headers["Content-Disposition"]
    vkey = client.get("/v1/log/key").text.strip()
    cp = check_offline(resp.text, vkey, bytes.fromhex(fingerprint.group(1)))
    # The file holds the very checkpoint the page showed, so the two can be compared.
    assert spec_parse(resp.text).checkpoint in receipt.replace("&#43;", "+")
    assert cp.size == index + 1
    assert PERSON not in resp.text
    # Without a working link there is nothing to download.
    assert client.get(href.group(1).replace(link, "not-a-link")).status_code == 404


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_every_write_receipt_says_where_its_offline_proof_is(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    token = make_token("tt-leeds", "case_system")
    vkey = client.get("/v1/log/key").text.strip()
    consent = {
        "subject": {"nhs_number": PERSON},
        "purpose": "referral",
        "recipients": ["ea-tt-leeds"],
        "data_categories": ["identity"],
        "form": "verbal",
    }
    granted = client.post("/v1/consents", headers=bearer(token), json=consent).json
    withdrawn = client.post(
        f"/v1/consents/{granted['id']}/withdraw",
        headers=bearer(token),
        json={"reason": "person_withdrew"},
    ).json
    objected = client.post(
        "/v1/objections",
        headers=bearer(token),
        json={"subject": {"nhs_number": PERSON}, "scope": "direct_care"},
    ).json
    for body in (granted, withdrawn, objected):
        receipt = body["ledger"]
        resp = client.get(receipt["proof"], headers=bearer(token))
        assert resp.status_code == 200, resp.text
        cp = check_offline(resp.text, vkey, bytes.fromhex(receipt["leaf_hash"]))
        # The very checkpoint the write returned, not a newer one.
        assert spec_parse(resp.text).checkpoint == receipt["checkpoint"]
        assert cp.size == receipt["index"] + 1
