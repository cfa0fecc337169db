"""README's "CDS Hooks" examples run as written against a served demo, in one shell, as a person
would paste them at the top of the repository; what they print is held to the CDS Hooks JSON
Schemas of tests/support/cds_hooks/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.conftest import Server, readme_commands, run_as_pasted
from tests.server.test_readme_walkthrough import _answers
from tests.support.cds_check import check

pytestmark = pytest.mark.server

SECTION = "### CDS Hooks: patient-consent-consult"


@pytest.fixture
def server(demo_instance: Path) -> Iterator[Server]:
    srv = Server(demo_instance, workers=1)
    yield srv
    srv.stop()


def test_the_readme_cds_hooks_examples_work_as_pasted(server: Server, demo_instance: Path) -> None:
    ran = run_as_pasted(readme_commands(SECTION), server.url, demo_instance)
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
