"""Publishing and reading policy versions.

Each publication is a log entry holding the whole canonical policy document, so any past
decision can be re-checked against the exact rules it was made under. The newest publication is
in force. Parsed policies are cached per process by version: a version is immutable, and which
version is in force is read from the database on every use, so publishing binds every worker at
once.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import LogUnavailable
from app.ledger.events import PolicyPublished
from app.models import PolicyVersion
from app.policy import Policy, PolicyError, load_policy
from app.services.container import Ledger
from app.services.log.projections import append_events
from app.vocabulary import ORGANISATION_KINDS

REPO_POLICIES = Path(__file__).resolve().parent.parent.parent.parent / "policies"
DEFAULT_POLICY_FILE = REPO_POLICIES / "default.yaml"

_cache: dict[str, Policy] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class Published:
    version: str
    ledger_index: int
    already_in_force: bool


def parse_policy_file(path: Path) -> Policy:
    """Read and validate a policy file; :class:`PolicyError` names the file, path and reason."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(source, [f"(file): cannot be read as UTF-8 text: {exc}"]) from None
    try:
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise PolicyError(source, [f"(file): not valid YAML or JSON: {exc}"]) from None
    policy = load_policy(document, source)
    unknown = set(policy.organisation_kinds) ^ set(ORGANISATION_KINDS)
    if unknown:
        # Organisations are registered with the service's kinds; a policy must reason about
        # exactly those, or some registered organisation would fall outside every rule.
        raise PolicyError(
            source,
            [
                f"organisation_kinds: must be exactly {', '.join(ORGANISATION_KINDS)} "
                f"(differs in {', '.join(sorted(unknown))})"
            ],
        )
    return policy


def publish(ledger: Ledger, policy: Policy) -> Published:
    now = ledger.clock()

    def publish_in_batch(session: Session) -> Published:
        session.info.pop(_IN_FORCE, None)
        current = _current_row(session)
        if current is not None and current.version == policy.version:
            return Published(policy.version, current.ledger_index, True)
        # Re-publishing an earlier version makes it current again: a new entry, new index.
        event = PolicyPublished(version=policy.version, name=policy.name, policy=policy.document)
        (receipt,) = append_events(ledger.log_store, session, now, [event])
        return Published(policy.version, receipt.index, False)

    # In a batch of its own: the writes in a batch share the policy in force (_IN_FORCE).
    return ledger.write(publish_in_batch, alone=True)


def _current_row(session: Session) -> PolicyVersion | None:
    return session.execute(
        select(PolicyVersion).order_by(PolicyVersion.ledger_index.desc()).limit(1)
    ).scalar_one_or_none()


def policy_from_row(row: PolicyVersion) -> Policy:
    with _cache_lock:
        cached = _cache.get(row.version)
    if cached is not None:
        return cached
    return policy_from_document(row.version, json.loads(row.document))


def policy_from_document(version: str, document: dict[str, Any]) -> Policy:
    """The policy published as ``version`` (from its row or its log entry), parsed once per
    process; refused unless the document hashes to that version."""
    with _cache_lock:
        cached = _cache.get(version)
    if cached is not None:
        return cached
    # A document from the log may predate the retention section; it is loaded as published.
    policy = load_policy(document, f"policy {version}", published_before_retention=True)
    if policy.version != version:
        raise LogUnavailable(f"stored policy {version} does not hash to its version")
    with _cache_lock:
        _cache[version] = policy
    return policy


_CURRENT_VERSION = (
    select(PolicyVersion.version).order_by(PolicyVersion.ledger_index.desc()).limit(1)
)


# The policy in force, kept for the rest of the transaction (a batch of writes asks it once per
# decision): only a publish changes it, and a publish drops it.
_IN_FORCE = "policy_in_force"


def current_policy(session: Session) -> Policy:
    # Every decision asks this: read the version alone (a statement built once), and the
    # document only on a cache miss.
    in_force = session.info.get(_IN_FORCE)
    if isinstance(in_force, Policy):
        return in_force
    version = session.execute(_CURRENT_VERSION).scalar_one_or_none()
    if version is None:
        raise LogUnavailable("no policy is published: run `consent-ledger init`")
    with _cache_lock:
        cached = _cache.get(version)
    if cached is None:
        row = session.get(PolicyVersion, version)
        assert row is not None  # read in the same transaction
        cached = policy_from_row(row)
    session.info[_IN_FORCE] = cached
    return cached
