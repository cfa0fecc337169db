"""Helpers shared by the page blueprints."""

from __future__ import annotations

from flask import current_app

from app import get_ledger
from app.services.container import Ledger


def ledger() -> Ledger:
    return get_ledger(current_app)
