"""Nothing that passes the NHS-number check leaves the service in an error body or a log line.

A caller can put an NHS number anywhere in a request (a path id, a field name, a bad value, a
query argument's name) and refusals name what was wrong, so text is redacted where it leaves:
problem bodies (``app.api.common.problem_response``) and log lines (``app.logs``). Any run of
ASCII digits and spaces is searched for ten digits in a row (spaces between them allowed, as
the API accepts NHS numbers with spaces) that pass :func:`normalise_nhs_number`; each such
stretch becomes ``[redacted]``. A tenth of random ten-digit strings pass the check, so a
long number may be redacted by chance: hiding too much is the safe side.

There is no exception for identifiers: a caller can shape an id around an NHS number
(``cns_<NHS number>abcdef...``), so ids are searched too. The service's own ids never hold ten
decimal digits in a row (:func:`app.ids.new_id` draws them so), so they are never redacted by
chance; ids made before that rule hold such a run about once in sixty.
"""

from __future__ import annotations

import re
from typing import Any

from app.services.consents.subjects import InvalidNhsNumber, normalise_nhs_number

REDACTED = "[redacted]"
_DIGIT_RUN = re.compile(r"[0-9](?:[0-9 ]*[0-9])?")
# A run with more digits than this is hidden whole rather than searched window by window, so a
# megabyte of digits in a field name costs no more than a short one.
_LONGEST_SEARCHED = 64


def _redact_run(match: re.Match[str]) -> str:
    run = match.group()
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
    return _DIGIT_RUN.sub(_redact_run, text)


def redact_json(value: Any) -> Any:
    """:func:`redact` applied to every string (keys too) in a JSON-ready value."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_json(k): redact_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_json(v) for v in value]
    return value
