"""Helpers shared by the page blueprints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app

from app import get_ledger
from app.services.container import Ledger

# Patients read times as the clocks around them show them; the zone's abbreviation (GMT or
# BST) says which. IG pages keep UTC, the time the log, the API and the CSV export all use.
LONDON = ZoneInfo("Europe/London")


def ledger() -> Ledger:
    return get_ledger(current_app)


def _as_datetime(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def when(value: datetime | str | None) -> str:
    """A time as people read it: 25 November 2026, 14:05 UTC."""
    if value is None:
        return "—"
    return _as_datetime(value).astimezone(UTC).strftime("%-d %B %Y, %H:%M UTC")


def when_local(value: datetime | str | None) -> str:
    """A time as a person in the UK reads it: 1 July 2026, 13:05 BST."""
    if value is None:
        return "—"
    return _as_datetime(value).astimezone(LONDON).strftime("%-d %B %Y, %H:%M %Z")


def plural(count: int, one: str, many: str | None = None) -> str:
    """``1 minute``, ``2 minutes``; ``many`` where adding an s is wrong (``1 entry``)."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def ago(delta: timedelta) -> str:
    """How long ago, in its two largest units: ``1 minute ago``, ``1 hour, 1 minute ago``."""
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes == 0:
        return "less than a minute ago"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    units = [(days, "day"), (hours, "hour"), (minutes, "minute")]
    shown = [plural(n, unit) for n, unit in units if n][:2]
    return ", ".join(shown) + " ago"


def words(code: str) -> str:
    """A code (``consent_withdrawn``) as the pages spell it everywhere: in words."""
    return code.replace("_", " ")
