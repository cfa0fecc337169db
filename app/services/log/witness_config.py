"""Which witnesses cosign our checkpoints, and how many must: ``CONSENT_LEDGER_WITNESSES`` and
``CONSENT_LEDGER_WITNESS_QUORUM``.

The file names one witness a line: its verifier key (c2sp.org/tlog-cosignature, type 0x04) and
the URL prefix of its c2sp.org/tlog-witness endpoint (``<prefix>/add-checkpoint``), separated
by a space. Blank lines and ``#`` comments are allowed. Anything else refuses start-up, naming
the file, the line and why: a witness silently dropped would quietly lower the protection an
operator believes they have. No file configured: no witnesses, and checkpoints are served as
they are signed.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from app.ledger.cosignature import CosignatureVerifier
from app.ledger.errors import VerifierKeyError

WITNESSES_SETTING = "CONSENT_LEDGER_WITNESSES"
QUORUM_SETTING = "CONSENT_LEDGER_WITNESS_QUORUM"


class WitnessConfigError(ValueError):
    """The witness configuration cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Witness:
    """One configured witness: who (its verifier key) and where (its endpoint's URL prefix)."""

    verifier: CosignatureVerifier
    url: str

    @property
    def name(self) -> str:
        return self.verifier.name

    @property
    def id(self) -> str:
        """``<name>+<hex key id>``: what the database knows it by (a new key is a new
        witness, as it is for every verifier)."""
        return f"{self.verifier.name}+{self.verifier.key_id.hex()}"

    @property
    def add_checkpoint_url(self) -> str:
        return self.url + "/add-checkpoint"


@dataclass(frozen=True)
class WitnessPolicy:
    witnesses: tuple[Witness, ...] = ()
    quorum: int = 0

    @property
    def configured(self) -> bool:
        return bool(self.witnesses)


def _check_url(url: str) -> str | None:
    """Why ``url`` cannot be a witness's URL prefix, or None if it can."""
    parts = urllib.parse.urlsplit(url)
    # First, and without quoting it: an error message must never carry a password.
    if parts.username or parts.password:
        return "the URL carries a user name or password"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"the URL {url!r} is not an http:// or https:// URL with a host"
    if parts.query or parts.fragment:
        return f"the URL {url!r} has a query or fragment; give the prefix before /add-checkpoint"
    try:
        parts.port  # noqa: B018 (raises for a port that is not a number from 0 to 65535)
    except ValueError:
        return f"the URL {url!r} has a port that is not a number from 1 to 65535"
    return None


def parse_witnesses(text: str, source: str) -> tuple[Witness, ...]:
    """The witnesses a file's ``text`` names; ``source`` names the file in errors."""
    found: dict[str, Witness] = {}
    # One key is one witness, whatever it is called: a cosignature key id hashes the name with
    # the key, so whoever holds one key can sign under any name, and two names for one key
    # would let one key holder meet a quorum of two.
    keys: dict[bytes, Witness] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{WITNESSES_SETTING} file {source}, line {number}"
        fields = line.split()
        if len(fields) != 2:
            raise WitnessConfigError(
                f"{where}: expected a witness verifier key and its URL prefix separated by a "
                f"space, found {len(fields)} field{'s' if len(fields) != 1 else ''}"
            )
        vkey, url = fields
        try:
            verifier = CosignatureVerifier.from_verifier_key(vkey)
        except VerifierKeyError as exc:
            raise WitnessConfigError(f"{where}: not a witness verifier key: {exc}") from None
        if (why := _check_url(url)) is not None:
            raise WitnessConfigError(f"{where}: {why}")
        witness = Witness(verifier, url.rstrip("/"))
        if witness.id in found:
            raise WitnessConfigError(f"{where}: the witness {witness.id} is named twice")
        if (same := keys.get(verifier.public_key)) is not None:
            raise WitnessConfigError(
                f"{where}: the key of {witness.id} is the key of {same.id}; one key is one "
                "witness, whatever it is called"
            )
        found[witness.id] = witness
        keys[verifier.public_key] = witness
    return tuple(found.values())


def load_policy(path: str | None, quorum: str | None) -> WitnessPolicy:
    """The witnesses and quorum the settings configure; :class:`WitnessConfigError` for a
    file that cannot be read or used, or a quorum that cannot be met."""
    witnesses: tuple[Witness, ...] = ()
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise WitnessConfigError(
                f"{WITNESSES_SETTING} file {path} cannot be read: "
                f"{getattr(exc, 'strerror', None) or exc}"
            ) from None
        witnesses = parse_witnesses(text, path)
    if quorum is None or not quorum.strip():
        return WitnessPolicy(witnesses, len(witnesses))
    text = quorum.strip()
    if not re.fullmatch(r"[0-9]{1,6}", text) or int(text) < 1:
        raise WitnessConfigError(f"{QUORUM_SETTING}={quorum!r} is not a whole number from 1")
    wanted = int(text)
    if wanted > len(witnesses):
        raise WitnessConfigError(
            f"{QUORUM_SETTING}={wanted} cannot be met: "
            f"{len(witnesses)} witness{'es are' if len(witnesses) != 1 else ' is'} configured"
            + (f" in {path}" if path else f" ({WITNESSES_SETTING} is not set)")
        )
    return WitnessPolicy(witnesses, wanted)
