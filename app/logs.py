"""What may appear in the service's own logs."""

from __future__ import annotations

import re

_PATIENT_LINK = re.compile(r"^/p/[^/]+")


def redact_path(path: str) -> str:
    """A patient link's path is its secret token: log ``/p/[link]/...`` instead."""
    return _PATIENT_LINK.sub("/p/[link]", path)
