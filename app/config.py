"""Settings from ``CONSENT_LEDGER_*`` environment variables.

Every setting has a safe default so ``make run`` works on a fresh clone; production sets the
database URL and the log origin explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ENV_PREFIX = "CONSENT_LEDGER_"
DEFAULT_LOG_ORIGIN = "localhost/consent-ledger"

SIGNING_KEY_FILE = "signing-key.pem"
IDENTIFIER_KEY_FILE = "identifier.key"


@dataclass(frozen=True)
class Settings:
    instance_path: Path
    database_url: str
    log_origin: str = DEFAULT_LOG_ORIGIN
    sqlite_busy_timeout_ms: int = 10_000
    # Where people reach the service, for patient links (https://... in production); without
    # it, links use the address the request came in on.
    public_url: str | None = None
    # Force the Secure flag on session cookies, for TLS ended at a proxy the server can't see.
    secure_cookies: bool = False
    # Per client, for every POST but decisions, and for decisions (``limits`` notation, or off).
    write_rate_limit: str = "600/minute"
    decision_rate_limit: str = "3000/minute"
    rate_limit_storage: str = "memory://"
    # Witnesses (c2sp.org/tlog-witness): the file naming them, one ``<vkey> <URL prefix>`` a
    # line, and how many must cosign a checkpoint before it is served (default: all of them).
    witnesses_file: str | None = None
    witness_quorum: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def signing_key_path(self) -> Path:
        return self.instance_path / SIGNING_KEY_FILE

    @property
    def identifier_key_path(self) -> Path:
        return self.instance_path / IDENTIFIER_KEY_FILE


def default_database_url(instance_path: Path) -> str:
    return f"sqlite:///{instance_path / 'consent-ledger.sqlite3'}"


def normalise_database_url(url: str) -> str:
    """Point plain ``postgresql://`` URLs at psycopg 3, the driver we ship and test."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def settings_from_env(
    default_instance_path: Path, environ: Mapping[str, str] | None = None
) -> Settings:
    env = os.environ if environ is None else environ
    instance = Path(env.get(ENV_PREFIX + "INSTANCE_PATH") or default_instance_path).resolve()
    url = env.get(ENV_PREFIX + "DATABASE_URL") or default_database_url(instance)
    origin = env.get(ENV_PREFIX + "LOG_ORIGIN") or DEFAULT_LOG_ORIGIN
    public_url = (env.get(ENV_PREFIX + "PUBLIC_URL") or "").rstrip("/") or None
    return Settings(
        instance_path=instance,
        database_url=normalise_database_url(url),
        log_origin=origin,
        public_url=public_url,
        secure_cookies=env.get(ENV_PREFIX + "SECURE_COOKIES", "") in ("1", "true", "yes"),
        write_rate_limit=env.get(ENV_PREFIX + "WRITE_RATE_LIMIT") or Settings.write_rate_limit,
        decision_rate_limit=(
            env.get(ENV_PREFIX + "DECISION_RATE_LIMIT") or Settings.decision_rate_limit
        ),
        rate_limit_storage=(
            env.get(ENV_PREFIX + "RATE_LIMIT_STORAGE") or Settings.rate_limit_storage
        ),
        witnesses_file=env.get(ENV_PREFIX + "WITNESSES") or None,
        witness_quorum=env.get(ENV_PREFIX + "WITNESS_QUORUM") or None,
    )
