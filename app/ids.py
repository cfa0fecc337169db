"""The service's own random identifiers (``cns_<32 hex>``, ``cl_<16 hex>``, ...).

Every error body and log line is redacted of anything that passes the NHS-number check
(:mod:`app.redaction`), and a caller can shape an id around an NHS number, so ids get no
exemption there. Instead an id is drawn again until it holds no run of ten decimal digits:
then no id of ours can be mistaken for an NHS number and redacted by chance (about one in six
draws of 32 hex digits is redrawn; the entropy lost is under a bit).
"""

from __future__ import annotations

import re
import secrets

_TEN_DIGITS = re.compile(r"[0-9]{10}")


def new_id(prefix: str, nbytes: int = 16) -> str:
    """``prefix_`` followed by ``2 * nbytes`` random hex digits, none ten decimal digits long."""
    while True:
        token = secrets.token_hex(nbytes)
        if not _TEN_DIGITS.search(token):
            return f"{prefix}_{token}"
