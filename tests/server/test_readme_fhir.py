"""README's "FHIR R4" commands run as written against a served demo, and every resource they
print is valid R4 (schema and fhirclient), so an integrator's first calls cannot rot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.conftest import Server, readme_commands, run_as_pasted
from tests.server.test_readme_walkthrough import _answers
from tests.support.fhir_check import check_balp_disclosure, check_resource, check_uk_core_consent

pytestmark = pytest.mark.server

SECTION = "### FHIR R4"


@pytest.fixture
def server(demo_instance: Path) -> Iterator[Server]:
    srv = Server(demo_instance, workers=1)
    yield srv
    srv.stop()


def test_the_readme_fhir_calls_work_as_pasted(server: Server, demo_instance: Path) -> None:
    ran = run_as_pasted(readme_commands(SECTION), server.url, demo_instance)
    assert ran.returncode == 0, ran.stderr + ran.stdout
    assert "9990000018" not in ran.stdout
    assert "9990000026" not in ran.stdout
    answers = [a for a in _answers(ran.stdout) if "resourceType" in a]
    for answer in answers:
        check_resource(answer)
    kinds = [(a["resourceType"], a.get("type")) for a in answers]
    assert kinds == [
        ("CapabilityStatement", None),
        ("Bundle", "searchset"),
        ("Consent", None),
        ("Bundle", "history"),
        ("Bundle", "searchset"),
        ("Bundle", "searchset"),
        ("CodeSystem", None),
        ("Consent", None),
        ("Bundle", "transaction-response"),
    ]
    _, search, read, history, audit, posted, _, created, imported = answers
    assert posted == audit  # the POST search answers as the GET
    # Flow 1: the Jobcentre's signed consent, confirmed by Talking Therapies (G6).
    assert search["total"] >= 1
    check_uk_core_consent(read)
    assert read == search["entry"][0]["resource"]
    assert history["entry"][0]["resource"] == read
    assert history["total"] >= 2
    # Flow 2: Talking Therapies' disclosures to its Employment Advisers, as its IG lead sees.
    assert audit["total"] >= 1
    for entry in audit["entry"]:
        check_balp_disclosure(entry["resource"])
    # Issue 17 item 2: a consent recorded now, and one given on paper in 2024 and since expired.
    check_uk_core_consent(created)
    (entry,) = imported["entry"]
    assert entry["response"]["status"] == "201 Created"
    assert entry["resource"]["dateTime"] == "2024-03-01T00:00:00.000000Z"
    assert entry["resource"]["provision"]["period"]["end"] == "2025-03-01T00:00:00.000000Z"
