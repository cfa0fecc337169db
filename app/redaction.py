"""Nothing that passes the NHS-number check leaves the service in an error body or a log line.

A caller can put an NHS number anywhere in a request (a path id, a field name, a bad value, a
query argument's name) and refusals name what was wrong, so text is redacted where it leaves:
problem bodies (``app.api.common.problem_response``) and log lines (``app.logs``). Any run of
ASCII digits and spaces is searched for ten digits in a row (spaces between them allowed, as
the API accepts NHS numbers with spaces) that pass :func:`normalise_nhs_number`; each such
stretch becomes ``[redacted]``. A tenth of random ten-digit strings pass the check, so a
long number may be redacted by chance: hiding too much is the safe side.

One exception: a run of 16 or more hex digits with a letter among them is a random
identifier (the service's own ids are 16 or 32: ``cns_<32 hex>``, a request id), not a number
anyone typed, and is left whole. Searched, 1.7% of 32-hex-digit ids would hold a stretch that
passes by chance, and an id with ``[redacted]`` in it names nothing.
"""

from __future__ import annotations

import re
from typing import Any

from app.services.consents.subjects import InvalidNhsNumber, normalise_nhs_number

REDACTED = "[redacted]"
_HEX_ID_OR_DIGIT_RUN = re.compile(
    r"(?P<hex_id>(?<![0-9A-Za-z])(?=[0-9]*[a-fA-F])[0-9a-fA-F]{16,}(?![0-9A-Za-z]))"
    r"|[0-9](?:[0-9 ]*[0-9])?"
)
# A run with more digits than this is hidden whole rather than searched window by window, so a
# megabyte of digits in a field name costs no more than a short one.
_LONGEST_SEARCHED = 64


def _redact_run(match: re.Match[str]) -> str:
    run = match.group()
    if match.group("hex_id"):
        return run
    digits = [i for i, c in enumerate(run) if c != " "]
    if len(digits) < 10:
        return run
    if len(digits) > _LONGEST_SEARCHED:
        return REDACTED
    hidden = [False] * len(run)
    for first, last in zip(digits, digits[9:], strict=False):
        try:
            normalise_nhs_number(run[first : last + 1])
        except InvalidNhsNumber:
            continue
        hidden[first : last + 1] = [True] * (last + 1 - first)
    out: list[str] = []
    for char, hide in zip(run, hidden, strict=True):
        if not hide:
            out.append(char)
        elif not out or out[-1] != REDACTED:
            out.append(REDACTED)
    return "".join(out)


def redact(text: str) -> str:
    """``text`` with every stretch that passes the NHS-number check replaced by ``[redacted]``."""
    return _HEX_ID_OR_DIGIT_RUN.sub(_redact_run, text)


def redact_json(value: Any) -> Any:
    """:func:`redact` applied to every string (keys too) in a JSON-ready value."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_json(k): redact_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_json(v) for v in value]
    return value
