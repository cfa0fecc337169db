"""README's "CDS Hooks" examples run as written against a served demo, in one shell, as a person
would paste them at the top of the repository; what they print is held to the CDS Hooks JSON
Schemas of tests/support/cds_hooks/."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.conftest import Server
from tests.server.test_readme_walkthrough import _answers
from tests.support.cds_check import check

pytestmark = pytest.mark.server

REPO = Path(__file__).resolve().parents[2]
SECTION = "### CDS Hooks: patient-consent-consult"


def _commands() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split(SECTION, 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert blocks, "the section's commands went missing"
    return "\n".join(blocks)


@pytest.fixture
def server(demo_instance: Path) -> Iterator[Server]:
    srv = Server(demo_instance, workers=1)
    yield srv
    srv.stop()


def test_the_readme_cds_hooks_examples_work_as_pasted(server: Server, demo_instance: Path) -> None:
    env = {**os.environ, "URL": server.url, "CONSENT_LEDGER_INSTANCE_PATH": str(demo_instance)}
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _commands()],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr + ran.stdout
    discovery, answer = _answers(ran.stdout)
    (service,) = check("discovery", discovery)["services"]
    assert service["id"] == "patient-consent-consult"
    (card,) = check("response", answer)["cards"]
    assert card["summary"] == "CONSENT_PERMIT"
    redact, ours = card["extension"]["obligations"]
    assert redact["id"]["code"] == "REDACT"
    assert [c["code"] for c in redact["parameters"]["codes"]] == ["condition"]
    assert ours["id"]["code"] == "no_clinical_content_in_message"
    assert "9990000042" not in ran.stdout  # the person is named by their subject_ref only
