"""Outside checks of every FHIR resource the tests see (issue 17): the HL7 R4 JSON schema
(required-binding enums, unknown elements, formats) and fhirclient's R4 4.0.1 models (missing
required elements, which the schema does not catch), plus the profile rules neither knows: UK
Core Consent's must-support elements and IHE BALP PrivacyDisclosure's Source rules."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from fhirclient.models.fhirelementfactory import FHIRElementFactory
from jsonschema import Draft6Validator

SCHEMA = Path(__file__).parent / "fhir" / "fhir.schema.json"
SCHEMA_SHA256 = "574dea8798a92e6b77f66243d052b40152636d4b6aa0873a0224da1cef9c4809"

UK_CORE_CONSENT = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Consent"
BALP_SOURCE = (
    "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PrivacyDisclosure.Source"
)
DCM = "http://dicom.nema.org/resources/ontology/DCM"


@functools.cache
def _definitions() -> dict[str, Any]:
    raw = SCHEMA.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == SCHEMA_SHA256, "the vendored schema was changed"
    return json.loads(raw)  # type: ignore[no-any-return]


@functools.cache
def _validator(resource_type: str) -> Draft6Validator:
    schema = _definitions()
    assert resource_type in schema["definitions"], f"not an R4 resource: {resource_type}"
    # The document's root is a oneOf over every resource; validating against the one type's
    # definition gives errors that name the element at fault.
    return Draft6Validator(
        {"definitions": schema["definitions"], "$ref": f"#/definitions/{resource_type}"}
    )


def check_resource(resource: dict[str, Any]) -> dict[str, Any]:
    """Fail unless ``resource`` is valid R4 for both checkers; returns it for chaining."""
    resource_type = resource.get("resourceType")
    assert isinstance(resource_type, str), f"no resourceType: {resource!r}"
    errors = sorted(_validator(resource_type).iter_errors(resource), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}"[:400] for e in errors[:10])
    # strict: unknown keys, missing required elements and bad formats raise.
    FHIRElementFactory.instantiate(resource_type, resource)
    if resource_type == "Bundle":
        for entry in resource.get("entry", []):
            check_resource(entry["resource"])
    return resource


def check_uk_core_consent(consent: dict[str, Any]) -> None:
    """UK Core Consent (2.4.0 draft; 2.3.0 in STU2): the profile claimed, its mandatory and
    must-support elements that we hold, ppc-1, and an actor's role and reference."""
    check_resource(consent)
    assert UK_CORE_CONSENT in consent["meta"]["profile"]
    for element in ("status", "scope", "category", "patient", "dateTime", "performer"):
        assert consent.get(element), f"UK Core Consent must-support {element} is missing"
    assert consent.get("organization"), "UK Core Consent must-support organization is missing"
    assert consent.get("policy") or consent.get("policyRule"), "ppc-1"
    assert consent["scope"]["coding"][0]["code"] == "patient-privacy"
    for actor in consent.get("provision", {}).get("actor", []):
        assert actor.get("role")
        assert actor.get("reference")


def check_balp_disclosure(audit: dict[str, Any]) -> None:
    """IHE BALP PrivacyDisclosure, Source (recorded where the data left), at 1.1.4."""
    check_resource(audit)
    assert BALP_SOURCE in audit["meta"]["profile"]
    assert audit["type"] == {"system": DCM, "code": "110106", "display": "Export"}
    lifecycle = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
    assert (lifecycle, "disclose") in {(c["system"], c["code"]) for c in audit["subtype"]}
    assert audit["action"] == "R"
    assert audit["outcome"] == "0"
    by_type = {a["type"]["coding"][0]["code"]: a for a in audit["agent"]}
    assert set(by_type) >= {"110153", "110152"}
    for agent in by_type.values():
        assert agent["who"]
        assert agent["network"]
    assert audit["source"]["observer"] == by_type["110153"]["who"], "val-audit-source"
    patients = [e for e in audit["entity"] if e.get("role", {}).get("code") == "1"]
    assert len(patients) == 1
    assert patients[0]["what"]["type"] == "Patient"
    assert len(audit["entity"]) >= 2
    assert not audit.get("modifierExtension")
