"""The instance's secrets: the log's Ed25519 signing key and the identifier HMAC keys.

All live in the instance folder, created with mode 0600 and never overwritten: losing the
signing key means a new log identity, and losing an identifier key makes every subject mapped
under it unreachable.

Identifier keys come in generations. Generation 1 is ``identifier.key``, made by
``consent-ledger init`` (an instance from before rotation has only that one, and keeps working
as it is); each ``consent-ledger keys rotate-identifier`` adds the next as
``identifier-keys/<generation>.key``. The newest maps new people; lookups try every key held,
newest first. A key is named by its id, derived from it (:func:`identifier_key_id`), never by
its bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.config import Settings
from app.ledger.checkpoint import CheckpointSigner, load_private_key_pem, private_key_pem

IDENTIFIER_KEY_BYTES = 32
# Generations after the first, one file each: identifier-keys/2.key, identifier-keys/3.key, ...
IDENTIFIER_KEYS_DIR = "identifier-keys"
_GENERATION_FILE = re.compile(r"([1-9][0-9]{0,8})\.key")
_KEY_ID_LABEL = b"consent-ledger identifier key id v1\x00"
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
    identifier = _identifier_key_files(settings)
    for path in (
        settings.instance_path,
        settings.signing_key_path,
        settings.identifier_key_path,
        identifier_keys_dir(settings),
        *(identifier[g] for g in sorted(identifier) if g > 1),
    ):
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
    # Only for an instance with no identifier key at all: once generation 1 is retired, a new
    # identifier.key would be a stray older key, not a first one.
    identifier = not has_identifier_key(settings)
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


def identifier_keys_dir(settings: Settings) -> Path:
    return settings.instance_path / IDENTIFIER_KEYS_DIR


def identifier_key_id(secret: bytes) -> str:
    """A key's stable name: the first 8 bytes of SHA-256 over a label and the key, in hex (as
    C2SP signed-note key ids are made). It names the key and tells nothing about it."""
    return hashlib.sha256(_KEY_ID_LABEL + secret).digest()[:8].hex()


@dataclass(frozen=True)
class IdentifierKey:
    generation: int
    key_id: str
    path: Path
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class IdentifierKeys:
    """The identifier keys this instance holds, newest first (never empty)."""

    all: tuple[IdentifierKey, ...]

    @property
    def newest(self) -> IdentifierKey:
        return self.all[0]

    def get(self, key_id: str) -> IdentifierKey | None:
        return next((k for k in self.all if k.key_id == key_id), None)

    @property
    def original(self) -> IdentifierKey | None:
        """Generation 1, ``identifier.key``: the key of every mapping made before key ids."""
        first = self.all[-1]
        return first if first.generation == 1 else None


def _identifier_key_files(settings: Settings) -> dict[int, Path]:
    files = {}
    if settings.identifier_key_path.exists():
        files[1] = settings.identifier_key_path
    folder = identifier_keys_dir(settings)
    if folder.is_dir():
        for path in folder.iterdir():
            match = _GENERATION_FILE.fullmatch(path.name)
            if match and int(match.group(1)) > 1:
                files[int(match.group(1))] = path
    return files


def has_identifier_key(settings: Settings) -> bool:
    return bool(_identifier_key_files(settings))


def identifier_keys_version(keys_dir: str) -> int | None:
    """Changes whenever a key is added or retired (the mtime of ``keys_dir``, the folder
    :func:`identifier_keys_dir` names: both touch it), so a running process reloads its keys
    before a re-keying pass moves people under a new one."""
    try:
        return os.stat(keys_dir).st_mtime_ns
    except FileNotFoundError:
        return None


def _read_identifier_key(generation: int, path: Path) -> IdentifierKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"identifier key {path} disappeared while being read") from None
    if len(data) != IDENTIFIER_KEY_BYTES:
        raise KeyFileError(f"{path} must hold exactly {IDENTIFIER_KEY_BYTES} bytes")
    return IdentifierKey(generation, identifier_key_id(data), path, data)


def load_identifier_keys(settings: Settings) -> IdentifierKeys:
    files = _identifier_key_files(settings)
    if not files:
        raise KeyFileError(
            f"no identifier key at {settings.identifier_key_path}: run `consent-ledger init`"
        )
    return IdentifierKeys(
        tuple(_read_identifier_key(g, files[g]) for g in sorted(files, reverse=True))
    )


def add_identifier_key(settings: Settings) -> IdentifierKey:
    """Write the next generation's key. It appears under its final name whole (written
    beside it, then linked), so a process reloading at that moment never reads half a key;
    a link, unlike a rename, never replaces a key another rotation made meanwhile."""
    files = _identifier_key_files(settings)
    if not files:
        raise KeyFileError("no identifier key to rotate: run `consent-ledger init` first")
    generation = max(files) + 1
    folder = identifier_keys_dir(settings)
    folder.mkdir(mode=0o700, exist_ok=True)
    partial = settings.instance_path / f".identifier-{generation}.key.partial"
    partial.unlink(missing_ok=True)  # left by a rotation that crashed; never a live key
    _write_secret(partial, secrets.token_bytes(IDENTIFIER_KEY_BYTES))
    final = folder / f"{generation}.key"
    try:
        os.link(partial, final)
    except FileExistsError:
        raise KeyFileError(f"{final} appeared meanwhile: another rotation ran") from None
    finally:
        partial.unlink()
    _fsync_dir(folder)
    return _read_identifier_key(generation, final)


def destroy_identifier_key(settings: Settings, key: IdentifierKey) -> None:
    """Overwrite the key's file, delete it and touch the folder so running processes drop it.
    Copies elsewhere (backups of the instance folder) are the operator's to destroy."""
    fd = os.open(key.path, os.O_WRONLY)
    try:
        os.write(fd, bytes(IDENTIFIER_KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    key.path.unlink()
    _fsync_dir(key.path.parent)
    folder = identifier_keys_dir(settings)
    if folder.is_dir():
        os.utime(folder)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
