"""Errors of the policy package."""

from __future__ import annotations

from collections.abc import Sequence


class PolicyError(Exception):
    """A policy document is not valid. ``problems`` names each place: ``path: reason``."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(f"{source}: " + "; ".join(self.problems))
