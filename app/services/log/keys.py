"""The instance's secrets: the log's Ed25519 signing key and the identifier HMAC key.

Both live in the instance folder, created by ``consent-ledger init`` with mode 0600 and never
overwritten: losing the signing key means a new log identity, and losing the identifier key
makes every stored subject unreachable.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.config import Settings
from app.ledger.checkpoint import CheckpointSigner, load_private_key_pem, private_key_pem

IDENTIFIER_KEY_BYTES = 32
# C2SP signed-note: a key name is non-empty and has no whitespace and no "+".
_ORIGIN = re.compile(r"[^\s+\x00-\x1f\x7f]+")


class KeyFileError(Exception):
    """A key file is missing, unreadable, or not what it should be."""


@dataclass(frozen=True)
class CreatedKeys:
    signing_key_created: bool
    identifier_key_created: bool


def validate_origin(origin: str) -> None:
    if not _ORIGIN.fullmatch(origin):
        raise KeyFileError(
            f"CONSENT_LEDGER_LOG_ORIGIN {origin!r} is not a valid log origin: it must be "
            "non-empty with no spaces and no '+' (C2SP signed-note key name)"
        )


def _write_secret(path: Path, data: bytes) -> None:
    # O_EXCL: never replace a key that appeared since we looked; 0600 from the first byte.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_instance_folder(settings: Settings) -> None:
    if not settings.instance_path.exists():
        # The folder holds the keys and the SQLite database: nobody else's business.
        settings.instance_path.mkdir(parents=True, mode=0o700)


def permission_warnings(settings: Settings) -> list[str]:
    """Secrets readable by other users of the machine, named so an operator can fix them."""
    out = []
    for path in (settings.instance_path, settings.signing_key_path, settings.identifier_key_path):
        if path.exists() and path.stat().st_mode & 0o077:
            out.append(
                f"{path} is accessible to other users (mode {path.stat().st_mode & 0o777:o}); "
                f"run chmod go-rwx {path}"
            )
    return out


def ensure_keys(settings: Settings) -> CreatedKeys:
    validate_origin(settings.log_origin)
    ensure_instance_folder(settings)
    signing = not settings.signing_key_path.exists()
    if signing:
        _write_secret(settings.signing_key_path, private_key_pem(Ed25519PrivateKey.generate()))
    identifier = not settings.identifier_key_path.exists()
    if identifier:
        _write_secret(settings.identifier_key_path, secrets.token_bytes(IDENTIFIER_KEY_BYTES))
    return CreatedKeys(signing, identifier)


def load_signer(settings: Settings) -> CheckpointSigner:
    validate_origin(settings.log_origin)
    path = settings.signing_key_path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"no signing key at {path}: run `consent-ledger init`") from None
    try:
        key = load_private_key_pem(data)
    except Exception:
        raise KeyFileError(f"{path} is not an Ed25519 PKCS#8 PEM private key") from None
    return CheckpointSigner(settings.log_origin, key)


def load_identifier_key(settings: Settings) -> bytes:
    path = settings.identifier_key_path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"no identifier key at {path}: run `consent-ledger init`") from None
    if len(data) != IDENTIFIER_KEY_BYTES:
        raise KeyFileError(f"{path} must hold exactly {IDENTIFIER_KEY_BYTES} bytes")
    return data
