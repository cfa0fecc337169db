"""The instance's secrets: the log's Ed25519 signing keys, the identifier HMAC keys and the
key webhook secrets are sealed under.

All live in the instance folder, created with mode 0600 and never overwritten: losing the
signing key means a new log identity, and losing an identifier key makes every subject mapped
under it unreachable.

Signing keys come in generations too. Generation 1 is ``signing-key.pem``; each
``consent-ledger keys rotate-signing`` adds the next as ``signing-keys/<generation>.pem``.
Which of them sign, and the checkpoints each may sign, the database says (the
``signing_keys`` table, app.services.log.signing_keys); a file here is only the private half.

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
# Signing keys after the first: signing-keys/2.pem, signing-keys/3.pem, ...
SIGNING_KEYS_DIR = "signing-keys"
_SIGNING_FILE = re.compile(r"([1-9][0-9]{0,8})\.pem")
# Webhook signing secrets are sealed under this key, which never rotates (a key derived from
# the signing key would be lost with it, and so would one derived from identifier.key, which
# `keys retire-identifier` can destroy). One per database: the database records its id, and
# every host serving it holds a copy (app.services.notifications.webhooks).
WEBHOOK_SEAL_KEY_FILE = "webhook-seal.key"
WEBHOOK_SEAL_KEY_BYTES = 32
_SEAL_KEY_ID_LABEL = b"consent-ledger webhook seal key id v1\x00"
# C2SP signed-note: a key name is non-empty and has no whitespace and no "+".
_ORIGIN = re.compile(r"[^\s+\x00-\x1f\x7f]+")


class KeyFileError(Exception):
    """A key file is missing, unreadable, or not what it should be."""


class WebhookSealKeyError(KeyFileError):
    """This host cannot seal or open webhook secrets: it lacks the database's seal key."""


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
    signing = _signing_key_files(settings)
    for path in (
        settings.instance_path,
        settings.signing_key_path,
        signing_keys_dir(settings),
        *(signing[g] for g in sorted(signing) if g > 1),
        webhook_seal_key_path(settings),
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
    # Only for an instance with no signing key at all: once generation 1 is retired, a new
    # signing-key.pem would be a stray key, not the log's first.
    signing = not has_signing_key(settings)
    if signing:
        _write_secret(settings.signing_key_path, private_key_pem(Ed25519PrivateKey.generate()))
        # A new log has no webhook secret sealed the old way (under the signing key): its own
        # seal key from the start. An older instance gets one from `init` or `keys
        # rotate-signing`, which re-seal its secrets under it.
        ensure_webhook_seal_key(settings)
    # Only for an instance with no identifier key at all: once generation 1 is retired, a new
    # identifier.key would be a stray older key, not a first one.
    identifier = not has_identifier_key(settings)
    if identifier:
        _write_secret(settings.identifier_key_path, secrets.token_bytes(IDENTIFIER_KEY_BYTES))
    return CreatedKeys(signing, identifier)


def signing_keys_dir(settings: Settings) -> Path:
    return settings.instance_path / SIGNING_KEYS_DIR


def _generation_files(first: Path, folder: Path, name: re.Pattern[str]) -> dict[int, Path]:
    """A key's generations on disk: 1 is ``first``; later ones are ``folder/<g><suffix>``."""
    files = {}
    if first.exists():
        files[1] = first
    if folder.is_dir():
        for path in folder.iterdir():
            match = name.fullmatch(path.name)
            if match and int(match.group(1)) > 1:
                files[int(match.group(1))] = path
    return files


def _signing_key_files(settings: Settings) -> dict[int, Path]:
    return _generation_files(settings.signing_key_path, signing_keys_dir(settings), _SIGNING_FILE)


def has_signing_key(settings: Settings) -> bool:
    return bool(_signing_key_files(settings))


def newest_signing_key_path(settings: Settings) -> Path:
    files = _signing_key_files(settings)
    return files[max(files)] if files else settings.signing_key_path


def _read_signer(settings: Settings, path: Path) -> CheckpointSigner:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"signing key {path} disappeared while being read") from None
    try:
        key = load_private_key_pem(data)
    except Exception:
        raise KeyFileError(f"{path} is not an Ed25519 PKCS#8 PEM private key") from None
    return CheckpointSigner(settings.log_origin, key)


def load_signing_keys(settings: Settings) -> dict[int, CheckpointSigner]:
    """Every signing key this instance holds, by generation (never empty)."""
    validate_origin(settings.log_origin)
    files = _signing_key_files(settings)
    if not files:
        raise KeyFileError(
            f"no signing key at {settings.signing_key_path}: run `consent-ledger init`"
        )
    return {g: _read_signer(settings, path) for g, path in files.items()}


def signing_key_path(settings: Settings, generation: int) -> Path:
    if generation == 1:
        return settings.signing_key_path
    return signing_keys_dir(settings) / f"{generation}.pem"


def add_signing_key(settings: Settings, generation: int) -> CheckpointSigner:
    """Write a new signing key as ``generation``: written beside its final name, then linked,
    so a process loading keys at that moment never reads half a key, and a link never replaces
    a key another rotation made meanwhile."""
    folder = signing_keys_dir(settings)
    folder.mkdir(mode=0o700, exist_ok=True)
    partial = settings.instance_path / f".signing-{generation}.pem.partial"
    partial.unlink(missing_ok=True)  # left by a rotation that crashed; never a live key
    _write_secret(partial, private_key_pem(Ed25519PrivateKey.generate()))
    final = signing_key_path(settings, generation)
    try:
        os.link(partial, final)
    except FileExistsError:
        raise KeyFileError(f"{final} appeared meanwhile: another rotation ran") from None
    finally:
        partial.unlink()
    _fsync_dir(folder)
    return _read_signer(settings, final)


def destroy_signing_key(settings: Settings, generation: int) -> Path | None:
    """Overwrite a signing key's file and delete it; its path, or None if it was not here.
    Copies elsewhere (backups, other hosts) are the operator's to destroy."""
    path = signing_key_path(settings, generation)
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return None
    try:
        os.write(fd, bytes(os.fstat(fd).st_size))
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    _fsync_dir(path.parent)
    return path


def webhook_seal_key_path(settings: Settings) -> Path:
    return settings.instance_path / WEBHOOK_SEAL_KEY_FILE


def ensure_webhook_seal_key(settings: Settings) -> bool:
    """Create the webhook seal key unless it exists; whether it was created. Put in place
    whole (written beside it, then linked) and never replaced."""
    final = webhook_seal_key_path(settings)
    if final.exists():
        return False
    partial = settings.instance_path / (WEBHOOK_SEAL_KEY_FILE + ".partial")
    partial.unlink(missing_ok=True)
    _write_secret(partial, secrets.token_bytes(WEBHOOK_SEAL_KEY_BYTES))
    try:
        os.link(partial, final)
    except FileExistsError:
        return False  # another process made it first: theirs is the key
    finally:
        partial.unlink()
    _fsync_dir(settings.instance_path)
    return True


def webhook_seal_key_id(secret: bytes) -> str:
    """The seal key's name, recorded in the database: tells which key it is, nothing of it."""
    return hashlib.sha256(_SEAL_KEY_ID_LABEL + secret).digest()[:8].hex()


def load_webhook_seal_key(settings: Settings) -> bytes | None:
    """The webhook seal key, or None for an instance that has none yet."""
    path = webhook_seal_key_path(settings)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) != WEBHOOK_SEAL_KEY_BYTES:
        raise KeyFileError(f"{path} must hold exactly {WEBHOOK_SEAL_KEY_BYTES} bytes")
    return data


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
    return _generation_files(
        settings.identifier_key_path, identifier_keys_dir(settings), _GENERATION_FILE
    )


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
