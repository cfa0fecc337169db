"""README's "A first look" runs as written against a served demo, so the walk-through cannot
rot: every command of the section, in one shell, as a person would paste them at the top of the
repository."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.conftest import Server, readme_commands, run_as_pasted

pytestmark = pytest.mark.server

SECTION = "## A first look: the six flows"


@pytest.fixture
def server(demo_instance: Path) -> Iterator[Server]:
    srv = Server(demo_instance, workers=2)
    yield srv
    srv.stop()


def _answers(output: str) -> list[dict[str, object]]:
    """Each JSON document the commands printed (json.tool prints one per command)."""
    decoder = json.JSONDecoder()
    out, at = [], 0
    while (start := output.find("{", at)) != -1:
        try:
            value, at = decoder.raw_decode(output, start)
        except ValueError:
            at = start + 1
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


def test_the_readme_walk_through_works_as_pasted(server: Server, demo_instance: Path) -> None:
    ran = run_as_pasted(readme_commands(SECTION, min_blocks=7), server.url, demo_instance)
    assert ran.returncode == 0, ran.stderr + ran.stdout
    answers = _answers(ran.stdout)
    decisions = [a for a in answers if "decision" in a and "policy_version" in a]
    # Flow 2 permitted; 3 (clinical notes to an employment service), 5 (clinical content in a
    # text) and 6 (a health service to an employer) denied, each explained by rule.
    assert [d["decision"] for d in decisions] == ["permit", "deny", "deny", "deny"]
    assert all(d["reasons"] for d in decisions)
    history = next(a for a in answers if "consents" in a)
    assert history["consents"][0]["confirmed_by"] == "tt-leeds"  # G6
    feed = next(a for a in answers if "items" in a)
    assert [n["obligation"] for n in feed["items"]] == ["cease_processing_and_erase"]
    assert feed["items"][0]["acknowledgement"]["outcome"] == "erased"
    assert "localhost/consent-ledger\n" in ran.stdout  # the signed checkpoint
    assert any("hashes" in a and a.get("index") == 20 for a in answers)
