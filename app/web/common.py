"""Helpers shared by the page blueprints."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app

from app import get_ledger
from app.services.container import Ledger


def ledger() -> Ledger:
    return get_ledger(current_app)


def when(value: datetime | str | None) -> str:
    """A time as people read it: 25 November 2026, 14:05 UTC."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%-d %B %Y, %H:%M UTC")
