"""An integrator's own FHIR tool against the real server: fhirclient (its R4 models and its
server class, as a case system would use them) reads the demo's consents and disclosures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fhirclient.models.auditevent import AuditEvent
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.consent import Consent
from fhirclient.server import FHIRServer, FHIRUnauthorizedException

from app.fhir import codes
from tests.server.conftest import Server

pytestmark = pytest.mark.server

NHS = "https://fhir.nhs.uk/Id/nhs-number"


@pytest.fixture
def server(demo_instance: Path) -> Iterator[Server]:
    srv = Server(demo_instance, workers=1)
    yield srv
    srv.stop()


def _token(instance: Path, organisation: str, role: str) -> str:
    tokens = json.loads((instance / "demo-tokens.json").read_text())
    (token,) = [
        t["token"] for t in tokens if (t["organisation"], t["role"]) == (organisation, role)
    ]
    return str(token)


def _fhir(server: Server, token: str | None) -> FHIRServer:
    fhir = FHIRServer(None, base_uri=f"{server.url}/fhir/r4/")
    if token:
        fhir.session.headers["Authorization"] = f"Bearer {token}"
    return fhir


def test_fhirclient_reads_the_demo(server: Server, demo_instance: Path) -> None:
    with pytest.raises(FHIRUnauthorizedException):
        _fhir(server, None).request_json("metadata")

    tt = _fhir(server, _token(demo_instance, "tt-leeds", "case_system"))
    capability = CapabilityStatement(tt.request_json("metadata"))
    assert capability.fhirVersion == "4.0.1"

    search = Consent.where(struct={"patient:identifier": f"{NHS}|9990000018"})
    found = list(search.perform_resources_iter(tt))
    assert found
    consent = Consent.read(found[0].id, tt)
    assert consent.status == "active"
    assert consent.patient.identifier.system == codes.SUBJECT_ID_SYSTEM
    assert [a.role.coding[0].code for a in consent.provision.actor] == ["IRCP"] * len(
        consent.provision.actor
    )

    ig = _fhir(server, _token(demo_instance, "tt-leeds", "ig_lead"))
    search = AuditEvent.where(struct={"patient:identifier": f"{NHS}|9990000026"})
    events = list(search.perform_resources_iter(ig))
    assert events
    assert {e.type.code for e in events} == {"110106"}
