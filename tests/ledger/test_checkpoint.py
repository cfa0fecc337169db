"""Checkpoints and signed notes: the Go sumdb/note known answers, formats computed by hand,
and fail-closed verification.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
from app.ledger.errors import (
    CheckpointFormatError,
    LedgerError,
    VerificationError,
    VerifierKeyError,
)
from tests.ledger import vectors

ORIGIN = "ledger.example.nhs.uk/consent"
SEED = bytes(range(32))
ROOT = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")


def _key(seed: bytes = SEED) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@pytest.fixture
def signer() -> CheckpointSigner:
    return CheckpointSigner(ORIGIN, _key())


@pytest.fixture
def verifier(signer: CheckpointSigner) -> CheckpointVerifier:
    return CheckpointVerifier.from_verifier_key(signer.verifier_key())


@pytest.fixture
def note(signer: CheckpointSigner) -> str:
    return signer.sign(Checkpoint(ORIGIN, 8, ROOT))


def _fails(verifier: CheckpointVerifier, note: str | bytes) -> bool:
    """Whether verification fails, and with the one opaque message."""
    try:
        verifier.verify(note)
    except VerificationError as exc:
        return str(exc) == "verification failed"
    return False


# --- golang.org/x/mod/sumdb/note known answers -----------------------------------------------


def _go_peter_key() -> Ed25519PrivateKey:
    # "PRIVATE+KEY+<name>+<hash>+base64(0x01 || seed)"; the base64 itself contains '+'.
    raw = base64.b64decode(vectors.GO_PETER_SIGNER_KEY.split("+", 4)[4])
    assert raw[0] == 1
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


def test_go_signer_reproduces_the_published_note_byte_for_byte() -> None:
    go_signer = CheckpointSigner("PeterNeumann", _go_peter_key())
    assert go_signer.key_id.hex() == "c74f20a3"
    assert go_signer.verifier_key() == vectors.GO_PETER_VKEY
    assert go_signer.sign_note(vectors.GO_TEXT.encode()) == vectors.GO_PETER_NOTE


@pytest.mark.parametrize(
    ("vkey", "name", "hex_id"),
    [
        (vectors.GO_PETER_VKEY, "PeterNeumann", "c74f20a3"),
        (vectors.GO_ENOCH_VKEY, "EnochRoot", "af0cfe78"),
    ],
)
def test_go_verifier_keys_parse(vkey: str, name: str, hex_id: str) -> None:
    v = CheckpointVerifier.from_verifier_key(vkey)
    assert v.name == name
    assert v.key_id.hex() == hex_id
    assert key_id(name, v.public_key).hex() == hex_id
    assert v.verifier_key() == vkey


def test_go_note_verifies() -> None:
    peter = CheckpointVerifier.from_verifier_key(vectors.GO_PETER_VKEY)
    assert verify_note(vectors.GO_PETER_NOTE, peter) == vectors.GO_TEXT.encode()
    assert verify_note(vectors.GO_PETER_NOTE.encode(), peter) == vectors.GO_TEXT.encode()


def test_go_doubly_signed_note_verifies_for_each_signer() -> None:
    both = vectors.GO_TEXT + "\n" + vectors.GO_PETER_SIG + vectors.GO_ENOCH_SIG
    for vkey in (vectors.GO_PETER_VKEY, vectors.GO_ENOCH_VKEY):
        v = CheckpointVerifier.from_verifier_key(vkey)
        assert verify_note(both, v) == vectors.GO_TEXT.encode()


def test_go_note_without_our_signature_is_refused() -> None:
    enoch = CheckpointVerifier.from_verifier_key(vectors.GO_ENOCH_VKEY)
    with pytest.raises(VerificationError):
        verify_note(vectors.GO_PETER_NOTE, enoch)


@pytest.mark.parametrize("bad", vectors.GO_BAD_NOTES)
def test_go_malformed_notes_are_refused(bad: str) -> None:
    peter = CheckpointVerifier.from_verifier_key(vectors.GO_PETER_VKEY)
    with pytest.raises(VerificationError):
        verify_note(bad, peter)


def test_go_invalid_utf8_note_is_refused() -> None:
    peter = CheckpointVerifier.from_verifier_key(vectors.GO_PETER_VKEY)
    with pytest.raises(VerificationError):
        verify_note(vectors.GO_BAD_NOTE_BYTES, peter)


def test_go_invalid_signature_is_refused() -> None:
    peter = CheckpointVerifier.from_verifier_key(vectors.GO_PETER_VKEY)
    sig = vectors.GO_PETER_SIG
    with pytest.raises(VerificationError):
        verify_note(vectors.GO_TEXT + "\n" + sig[:60] + "ABCD" + sig[60:], peter)


def test_go_duplicated_and_corrupt_cosignatures() -> None:
    # note_test.go TestOpen "Duplicated verified and unverified signatures": Peter's key
    # ignores the (corrupt) EnochRoot lines. Enoch's key must refuse the same note, since
    # one of the lines carrying its name and key id does not verify.
    enoch_sig = vectors.GO_ENOCH_SIG
    msg = (
        vectors.GO_TEXT
        + "\n"
        + vectors.GO_PETER_SIG * 2
        + enoch_sig * 2
        + enoch_sig[:60]
        + "ABCD"
        + enoch_sig[60:]
    )
    peter = CheckpointVerifier.from_verifier_key(vectors.GO_PETER_VKEY)
    enoch = CheckpointVerifier.from_verifier_key(vectors.GO_ENOCH_VKEY)
    assert verify_note(msg, peter) == vectors.GO_TEXT.encode()
    with pytest.raises(VerificationError):
        verify_note(msg, enoch)


def test_go_misnamed_signature_is_not_ours() -> None:
    peter = CheckpointVerifier.from_verifier_key(vectors.GO_PETER_VKEY)
    misnamed = vectors.GO_PETER_NOTE.replace("PeterNeumann", "CarmenSandiego")
    with pytest.raises(VerificationError):
        verify_note(misnamed, peter)


def test_go_signature_count_limit() -> None:
    peter = CheckpointVerifier.from_verifier_key(vectors.GO_PETER_VKEY)
    ok = vectors.GO_TEXT + "\n" + vectors.GO_PETER_SIG * MAX_SIGNATURES
    assert verify_note(ok, peter) == vectors.GO_TEXT.encode()
    with pytest.raises(VerificationError):
        verify_note(vectors.GO_TEXT + "\n" + vectors.GO_PETER_SIG * (MAX_SIGNATURES + 1), peter)


def _go_vkey_manglings() -> list[str]:
    # note_test.go TestNewVerifier: every proper substring, and every single-byte increment.
    b = vectors.GO_PETER_VKEY.encode()
    out = {
        b[i:j].decode("latin-1")
        for i in range(len(b) + 1)
        for j in range(i + 1, len(b) + 1)
        if (i, j) != (0, len(b))
    }
    for i in range(len(b)):
        out.add((b[:i] + bytes([b[i] + 1]) + b[i + 1 :]).decode("latin-1"))
    return sorted(out)


def test_go_vkey_manglings_are_refused() -> None:
    accepted = []
    for bad in [*_go_vkey_manglings(), *vectors.GO_BAD_VKEYS]:
        try:
            CheckpointVerifier.from_verifier_key(bad)
        except VerifierKeyError:
            continue
        accepted.append(bad)
    assert accepted == []


# --- formats, computed by hand ---------------------------------------------------------------


def test_key_id_and_verifier_key_format(signer: CheckpointSigner) -> None:
    public = _raw_public(_key())
    expected_id = hashlib.sha256(ORIGIN.encode() + b"\n" + b"\x01" + public).digest()[:4]
    assert key_id(ORIGIN, public) == expected_id
    assert signer.key_id == expected_id
    assert signer.public_key == public
    key_b64 = base64.b64encode(b"\x01" + public).decode()
    expected_vkey = f"{ORIGIN}+{expected_id.hex()}+{key_b64}"
    assert signer.verifier_key() == expected_vkey
    assert signer.verifier().verifier_key() == expected_vkey


def test_checkpoint_body_format() -> None:
    cp = Checkpoint(ORIGIN, 8, ROOT, ("ext one", "ext two"))
    root_b64 = base64.b64encode(ROOT).decode()
    assert cp.body() == f"{ORIGIN}\n8\n{root_b64}\next one\next two\n".encode()
    assert Checkpoint.from_body(cp.body()) == cp


def test_signed_note_format(signer: CheckpointSigner, note: str) -> None:
    body = Checkpoint(ORIGIN, 8, ROOT).body()
    signature = _key().sign(body)  # Ed25519 is deterministic (RFC 8032)
    line = f"\u2014 {ORIGIN} {base64.b64encode(signer.key_id + signature).decode()}\n"
    assert note == body.decode() + "\n" + line


def test_c2sp_example_checkpoint_body_parses() -> None:
    # The example in c2sp.org/tlog-checkpoint (its signing key is not published).
    body = b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    cp = Checkpoint.from_body(body)
    assert (cp.origin, cp.size, cp.extensions) == ("example.com/behind-the-sofa", 20852163, ())
    assert cp.body() == body


# --- round trip and tampering ----------------------------------------------------------------


def test_round_trip(verifier: CheckpointVerifier, note: str) -> None:
    assert verifier.verify(note) == Checkpoint(ORIGIN, 8, ROOT)
    assert verifier.verify(note.encode()) == Checkpoint(ORIGIN, 8, ROOT)


def test_round_trip_empty_tree_and_extensions(
    signer: CheckpointSigner, verifier: CheckpointVerifier
) -> None:
    empty = Checkpoint(ORIGIN, 0, hashlib.sha256(b"").digest())
    assert verifier.verify(signer.sign(empty)) == empty
    extended = Checkpoint(ORIGIN, 3, ROOT, ("witness-hint 1",))
    assert verifier.verify(signer.sign(extended)) == extended


def test_every_single_byte_change_is_refused(verifier: CheckpointVerifier, note: str) -> None:
    raw = note.encode()
    accepted = []
    for i in range(len(raw)):
        for delta in (1, 0x80):
            changed = raw[:i] + bytes([raw[i] ^ delta]) + raw[i + 1 :]
            if not _fails(verifier, changed):
                accepted.append((i, delta))
    assert accepted == []


def test_changed_size_root_or_origin_is_refused(
    signer: CheckpointSigner, verifier: CheckpointVerifier, note: str
) -> None:
    body, sig = note.split("\n\n")
    root_b64 = base64.b64encode(ROOT).decode()
    other_root = base64.b64encode(bytes(32)).decode()
    for forged in [
        body.replace("\n8\n", "\n9\n"),
        body.replace(root_b64, other_root),
        body.replace(ORIGIN, ORIGIN + "x"),
        body + "\nextension",
    ]:
        assert _fails(verifier, forged + "\n\n" + sig)


def test_another_keys_signature_alone_is_refused(verifier: CheckpointVerifier) -> None:
    impostor = CheckpointSigner(ORIGIN, _key(bytes(32)))
    assert _fails(verifier, impostor.sign(Checkpoint(ORIGIN, 8, ROOT)))


def test_another_key_under_our_name_in_the_verifier_is_refused(note: str) -> None:
    other = CheckpointSigner(ORIGIN, _key(bytes(32)))
    assert _fails(CheckpointVerifier.from_verifier_key(other.verifier_key()), note)


def test_cosignatures_from_other_keys_are_tolerated(
    verifier: CheckpointVerifier, note: str
) -> None:
    witness = CheckpointSigner("witness.example.org", _key(bytes([7]) * 32))
    body = Checkpoint(ORIGIN, 8, ROOT).body()
    witness_line = witness.sign_note(body).split("\n\n")[1]
    assert verifier.verify(note + witness_line) == Checkpoint(ORIGIN, 8, ROOT)
    body_text, our_line = note.split("\n\n")
    assert verifier.verify(body_text + "\n\n" + witness_line + our_line).size == 8
    # A line with our name but another key id is someone else's key (signed-note: name and
    # id together identify a key), so it is ignored too.
    rotated = CheckpointSigner(ORIGIN, _key(bytes([9]) * 32))
    rotated_line = rotated.sign_note(body).split("\n\n")[1]
    assert verifier.verify(note + rotated_line).size == 8
    assert _fails(verifier, body_text + "\n\n" + witness_line + rotated_line)


def test_a_bad_line_claiming_our_key_is_refused_even_beside_a_good_one(
    verifier: CheckpointVerifier, note: str
) -> None:
    body_text, our_line = note.split("\n\n")
    raw = base64.b64decode(our_line.rsplit(" ", 1)[1])
    forged = raw[:4] + bytes(64)
    forged_line = f"\u2014 {ORIGIN} {base64.b64encode(forged).decode()}\n"
    assert _fails(verifier, body_text + "\n\n" + our_line + forged_line)


def test_too_many_signature_lines_are_refused(verifier: CheckpointVerifier, note: str) -> None:
    witness = CheckpointSigner("witness.example.org", _key(bytes([7]) * 32))
    line = witness.sign_note(Checkpoint(ORIGIN, 8, ROOT).body()).split("\n\n")[1]
    assert verifier.verify(note + line * (MAX_SIGNATURES - 1)).size == 8
    assert _fails(verifier, note + line * MAX_SIGNATURES)


def test_signed_body_that_is_not_a_checkpoint_is_refused(
    signer: CheckpointSigner, verifier: CheckpointVerifier
) -> None:
    assert _fails(verifier, signer.sign_note(b"hello\n"))
    assert _fails(verifier, signer.sign_note(f"{ORIGIN}\n08\n{'A' * 43}=\n".encode()))


def test_signed_checkpoint_for_another_origin_is_refused(
    signer: CheckpointSigner, verifier: CheckpointVerifier
) -> None:
    other = Checkpoint("other.example/log", 8, ROOT)
    assert _fails(verifier, signer.sign_note(other.body()))


@pytest.mark.parametrize(
    "junk",
    [
        pytest.param("", id="empty"),
        pytest.param("\n\n", id="blank"),
        pytest.param("\ud800", id="lone-surrogate"),
        pytest.param(b"\xc3\x28", id="invalid-utf8"),
        pytest.param(cast(Any, 42), id="not-text"),
        pytest.param(cast(Any, None), id="none"),
    ],
)
def test_junk_is_refused_with_the_one_error(verifier: CheckpointVerifier, junk: Any) -> None:
    assert _fails(verifier, junk)


def test_control_characters_are_refused(verifier: CheckpointVerifier, note: str) -> None:
    body_text, line = note.split("\n\n")
    assert _fails(verifier, body_text + "\r\n\n" + line)
    assert _fails(verifier, note.replace("\n", "\r\n"))
    assert _fails(verifier, body_text + "\n\n" + line.replace(" ", "\t", 1))


def test_non_canonical_base64_signature_is_refused(verifier: CheckpointVerifier, note: str) -> None:
    body_text, line = note.split("\n\n")
    b64 = line.rstrip("\n").rsplit(" ", 1)[1]
    assert b64.endswith("=")  # 68 bytes encode with one padding character
    # Change the unused low bits of the last data character: lenient decoders accept it.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(b64[-2])
    variant = b64[:-2] + alphabet[last ^ 1] + "="
    assert base64.b64decode(variant) == base64.b64decode(b64)
    assert _fails(verifier, body_text + "\n\n" + line.replace(b64, variant))


# --- verifier keys ---------------------------------------------------------------------------


def _vkey(name: str, hex_id: str, key_bytes: bytes) -> str:
    return f"{name}+{hex_id}+{base64.b64encode(key_bytes).decode()}"


def _recomputed(name: str, key_bytes: bytes) -> str:
    """A verifier key whose id is the one ``name`` and ``key_bytes`` hash to."""
    hex_id = hashlib.sha256(name.encode() + b"\n" + key_bytes).digest()[:4].hex()
    return _vkey(name, hex_id, key_bytes)


_PUBLIC = _raw_public(_key())
_GOOD_ID = key_id(ORIGIN, _PUBLIC).hex()
_KEY_B64 = base64.b64encode(b"\x01" + _PUBLIC).decode()
_URLSAFE = base64.urlsafe_b64encode(b"\x01" + _PUBLIC).decode()

# Each malformed key, and what the refusal must say is wrong with it: an operator who typed or
# pasted a key needs to know which part to fix.
MALFORMED_VERIFIER_KEYS = [
    pytest.param("", "three parts", id="empty"),
    pytest.param("no-plus-signs", "three parts", id="one-part"),
    pytest.param(f"{ORIGIN}+{_GOOD_ID}", "three parts", id="two-parts"),
    pytest.param(
        _vkey(ORIGIN, _GOOD_ID.upper(), b"\x01" + _PUBLIC), "8 lowercase hex", id="id-upper"
    ),
    pytest.param(_vkey(ORIGIN, _GOOD_ID[:7], b"\x01" + _PUBLIC), "8 lowercase hex", id="id-short"),
    pytest.param(_vkey(ORIGIN, "00000000", b"\x01" + _PUBLIC), "key id mismatch", id="id-wrong"),
    pytest.param(
        _vkey(ORIGIN + "x", _GOOD_ID, b"\x01" + _PUBLIC), "key id mismatch", id="name-changed"
    ),
    pytest.param(
        _recomputed(ORIGIN, b"\x02" + _PUBLIC), "algorithm byte is 0x02", id="wrong-algorithm"
    ),
    pytest.param(_recomputed(ORIGIN, b"\x01" + _PUBLIC[:31]), "holds 32 bytes", id="short-key"),
    pytest.param(_recomputed(ORIGIN, b"\x01" + _PUBLIC + b"\x00"), "holds 34 bytes", id="long-key"),
    pytest.param(_recomputed(ORIGIN, _PUBLIC), "holds 32 bytes", id="no-algorithm-byte"),
    pytest.param(_recomputed("has space", b"\x01" + _PUBLIC), "key name", id="name-with-space"),
    pytest.param(_recomputed("", b"\x01" + _PUBLIC), "key name", id="no-name"),
    pytest.param(f"{ORIGIN}+{_GOOD_ID}+{_KEY_B64}=", "base64", id="stray-padding"),
    pytest.param(f"{ORIGIN}+{_GOOD_ID}+{_KEY_B64}\n", "base64", id="newline"),
    pytest.param(f"{ORIGIN}+{_GOOD_ID}+{_KEY_B64[:-4]}", "holds 30 bytes", id="truncated"),
    pytest.param(f"{ORIGIN}+{_GOOD_ID}+{_URLSAFE}", "base64", id="url-safe-alphabet"),
    pytest.param(f"{ORIGIN}+{_GOOD_ID}+ {_KEY_B64}", "base64", id="space-in-key"),
    pytest.param(f"{ORIGIN}+{_GOOD_ID}+{_KEY_B64[:-2]}x=", "canonical", id="non-zero-pad-bits"),
    pytest.param(cast(Any, None), "text", id="not-text"),
]


@pytest.mark.parametrize(("vkey", "says"), MALFORMED_VERIFIER_KEYS)
def test_a_malformed_verifier_key_is_refused_saying_what_is_wrong(vkey: str, says: str) -> None:
    assert _URLSAFE != _KEY_B64  # this key's encoding uses '+' or '/'
    with pytest.raises(VerifierKeyError) as refused:
        CheckpointVerifier.from_verifier_key(vkey)
    assert says in str(refused.value)


# --- signer and checkpoint construction ------------------------------------------------------


def test_signer_refuses_another_origin(signer: CheckpointSigner) -> None:
    with pytest.raises(ValueError, match="origin"):
        signer.sign(Checkpoint("other.example/log", 1, ROOT))


@pytest.mark.parametrize("name", ["", "has space", "a+b", "tab\there", "nbsp\u00a0x", "nl\n"])
def test_signer_refuses_invalid_key_names(name: str) -> None:
    with pytest.raises(ValueError, match="key name"):
        CheckpointSigner(name, _key())


def test_signer_refuses_other_key_types() -> None:
    with pytest.raises(TypeError):
        CheckpointSigner(ORIGIN, cast(Any, ec.generate_private_key(ec.SECP256R1())))


def test_sign_note_refuses_malformed_text(signer: CheckpointSigner) -> None:
    for text in (b"no newline", b"control\x01\n", b"\xff\n"):
        with pytest.raises(ValueError):  # noqa: PT011 - UnicodeDecodeError is a ValueError
            signer.sign_note(text)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"origin\n1\n", id="two-lines"),
        pytest.param(b"origin\n1\n" + base64.b64encode(ROOT), id="no-final-newline"),
        pytest.param(b"\n1\n" + base64.b64encode(ROOT) + b"\n", id="empty-origin"),
        pytest.param(b"origin\n01\n" + base64.b64encode(ROOT) + b"\n", id="leading-zero"),
        pytest.param(b"origin\n+1\n" + base64.b64encode(ROOT) + b"\n", id="plus-sign"),
        pytest.param(b"origin\n-1\n" + base64.b64encode(ROOT) + b"\n", id="negative"),
        pytest.param(b"origin\n 1\n" + base64.b64encode(ROOT) + b"\n", id="space"),
        pytest.param(b"origin\n1_0\n" + base64.b64encode(ROOT) + b"\n", id="underscore"),
        pytest.param(
            "origin\n\u0661\n".encode() + base64.b64encode(ROOT) + b"\n", id="arabic-digit"
        ),
        pytest.param(b"origin\n\n" + base64.b64encode(ROOT) + b"\n", id="empty-size"),
        pytest.param(
            b"origin\n9223372036854775808\n" + base64.b64encode(ROOT) + b"\n", id="too-large"
        ),
        pytest.param(b"origin\n1\n" + base64.b64encode(ROOT[:31]) + b"\n", id="short-root"),
        pytest.param(b"origin\n1\n" + base64.b64encode(ROOT + b"\0") + b"\n", id="long-root"),
        pytest.param(
            b"origin\n1\n" + base64.b64encode(ROOT).rstrip(b"=") + b"\n", id="unpadded-root"
        ),
        pytest.param(
            b"origin\n1\n" + base64.urlsafe_b64encode(bytes([0xFB]) * 32) + b"\n", id="urlsafe"
        ),
        pytest.param(b"origin\n1\n" + base64.b64encode(ROOT) + b"\n\n", id="empty-extension"),
        pytest.param(b"origin\n1\n" + base64.b64encode(ROOT) + b"\r\n", id="crlf"),
        pytest.param(b"orig\x00in\n1\n" + base64.b64encode(ROOT) + b"\n", id="nul"),
        pytest.param(b"\xff\n1\n" + base64.b64encode(ROOT) + b"\n", id="not-utf8"),
    ],
)
def test_from_body_is_strict(body: bytes) -> None:
    with pytest.raises(CheckpointFormatError):
        Checkpoint.from_body(body)


def test_from_body_accepts_the_largest_size() -> None:
    body = b"origin\n9223372036854775807\n" + base64.b64encode(ROOT) + b"\n"
    assert Checkpoint.from_body(body).size == 2**63 - 1


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(("", 1, ROOT, ()), id="empty-origin"),
        pytest.param(("a\nb", 1, ROOT, ()), id="newline-origin"),
        pytest.param(("o", -1, ROOT, ()), id="negative-size"),
        pytest.param(("o", True, ROOT, ()), id="bool-size"),
        pytest.param(("o", 2**63, ROOT, ()), id="huge-size"),
        pytest.param(("o", 1, ROOT[:31], ()), id="short-root"),
        pytest.param(("o", 1, ROOT.hex(), ()), id="hex-root"),
        pytest.param(("o", 1, ROOT, ("",)), id="empty-extension"),
        pytest.param(("o", 1, ROOT, ("a\nb",)), id="newline-extension"),
        pytest.param(("o", 1, ROOT, ["list"]), id="extensions-not-tuple"),
    ],
)
def test_checkpoint_fields_are_validated(fields: tuple[Any, Any, Any, Any]) -> None:
    with pytest.raises(CheckpointFormatError):
        Checkpoint(*fields)


# --- key files -------------------------------------------------------------------------------


def test_pem_round_trip() -> None:
    pem = private_key_pem(_key())
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = load_private_key_pem(pem)
    assert _raw_public(loaded) == _raw_public(_key())


def test_pem_refuses_other_keys_and_garbage() -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    encrypted = _key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    for data in (ec_pem, encrypted, b"not a key", b""):
        with pytest.raises(LedgerError):
            load_private_key_pem(data)


def test_a_verifier_key_refusal_carries_no_cause() -> None:
    # The refusal says what is wrong in its own words; no parser's exception rides along.
    with pytest.raises(VerifierKeyError) as caught:
        CheckpointVerifier.from_verifier_key("PeterNeumann+c74f20a3+!!!!")
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
