"""Odd CDS Hooks request bodies (wrong types, huge or strange strings, duplicate and extra keys,
limits): never a 500, never an NHS number or an access token echoed."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.policy import Policy
from tests.api.test_cds_hooks import URL, consult_body
from tests.helpers import bearer
from tests.nhs import valid_nhs_numbers

NHS = valid_nhs_numbers(1, start=943_476_950)[0]
SPACED = f"{NHS[:3]} {NHS[3:6]} {NHS[6:]}"
ORG = "https://consent-ledger.example/fhir/Id/organisation"
CAT = "https://consent-ledger.example/fhir/CodeSystem/data-category"
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"


def base() -> dict[str, Any]:
    return copy.deepcopy(consult_body(NHS, "ea-tt-leeds", "referral", ["identity"]))


def ctx(**kw: Any) -> dict[str, Any]:
    b = base()
    b["context"].update(kw)
    return b


def top(**kw: Any) -> dict[str, Any]:
    b = base()
    b.update(kw)
    return b


CASES: dict[str, Any] = {
    "context array": top(context=[1, 2]),
    "context null": top(context=None),
    "context string": top(context=NHS),
    "hook list": top(hook=["patient-consent-consult"]),
    "hook NHS": top(hook=NHS),
    "hookInstance NHS": top(hookInstance=NHS),
    "hookInstance huge": top(hookInstance="x" * 100000),
    "fhirAuthorization list": top(fhirAuthorization=[1]),
    "fhirAuthorization token": top(
        fhirServer="https://x",
        fhirAuthorization={"access_token": "SECRET-TOKEN-123", "token_type": "Bearer"},
    ),
    "fhirServer NHS": top(fhirServer=NHS),
    "prefetch list": top(prefetch=[]),
    "extension NHS key": top(extension={NHS: 1}),
    "unknown top NHS key": top(**{NHS: 1}),
    "unknown top key": top(foo=1),
    "patientId object": ctx(patientId={"system": NHS_SYSTEM, "value": NHS}),
    "patientId list of strings": ctx(patientId=[NHS]),
    "patientId list of lists": ctx(patientId=[[NHS]]),
    "patientId nulls": ctx(patientId=[None]),
    "patientId value int": ctx(patientId=[{"system": NHS_SYSTEM, "value": int(NHS)}]),
    "patientId value NHS no system": ctx(patientId=[{"value": NHS}]),
    "patientId extra key": ctx(patientId=[{"system": NHS_SYSTEM, "value": NHS, "use": "official"}]),
    "patientId NHS key": ctx(patientId=[{"system": NHS_SYSTEM, "value": NHS, NHS: NHS}]),
    "patientId 11 ids": ctx(patientId=[{"system": NHS_SYSTEM, "value": NHS}] * 11),
    "patientId spaced": ctx(patientId=[{"system": NHS_SYSTEM, "value": SPACED}]),
    "patientId fullwidth": ctx(
        patientId=[{"system": NHS_SYSTEM, "value": "".join(chr(0xFF10 + int(d)) for d in NHS)}]
    ),
    "patientId nbsp": ctx(
        patientId=[{"system": NHS_SYSTEM, "value": NHS[:3] + "\u00a0" + NHS[3:]}]
    ),
    "patientId tab": ctx(patientId=[{"system": NHS_SYSTEM, "value": NHS[:3] + "\t" + NHS[3:]}]),
    "patientId hyphen": ctx(
        patientId=[{"system": NHS_SYSTEM, "value": NHS[:3] + "-" + NHS[3:6] + "-" + NHS[6:]}]
    ),
    "patientId spaces only": ctx(patientId=[{"system": NHS_SYSTEM, "value": "   "}]),
    "patientId two NHS": ctx(
        patientId=[
            {"system": NHS_SYSTEM, "value": NHS},
            {"system": NHS_SYSTEM, "value": valid_nhs_numbers(2, start=943_476_960)[1]},
        ]
    ),
    "patientId NHS bad check": ctx(
        patientId=[{"system": NHS_SYSTEM, "value": NHS[:9] + str((int(NHS[9]) + 1) % 10)}]
    ),
    "patientId NHS 11 digits": ctx(patientId=[{"system": NHS_SYSTEM, "value": NHS + "1"}]),
    "patientId lone surrogate": ctx(patientId=[{"system": NHS_SYSTEM, "value": "\ud800"}]),
    "patientId subject NHS": ctx(
        patientId=[{"system": "https://consent-ledger.example/fhir/Id/subject", "value": NHS}]
    ),
    "actor NHS": ctx(actor=[{"system": ORG, "value": NHS}]),
    "actor object": ctx(actor={"system": ORG, "value": "ea-tt-leeds"}),
    "actor empty": ctx(actor=[]),
    "actor dup same": ctx(actor=[{"system": ORG, "value": "ea-tt-leeds"}] * 2),
    "actor huge": ctx(actor=[{"system": ORG, "value": "a" * 10000}]),
    "actor self": ctx(actor=[{"system": ORG, "value": "tt-leeds"}]),
    "purpose int": ctx(purposeOfUse=7),
    "purpose dict": ctx(purposeOfUse={"code": "referral"}),
    "purpose null": ctx(purposeOfUse=None),
    "purpose list null": ctx(purposeOfUse=[None]),
    "purpose empty list": ctx(purposeOfUse=[]),
    "purpose empty string": ctx(purposeOfUse=""),
    "purpose spaced NHS": ctx(purposeOfUse=[SPACED]),
    "purpose NHS in text": ctx(purposeOfUse=[f"x{NHS}y"]),
    "purpose NHS hyphen": ctx(purposeOfUse=[NHS[:3] + "-" + NHS[3:6] + "-" + NHS[6:]]),
    "purpose 21": ctx(purposeOfUse=["referral"] * 21),
    "purpose dup": ctx(purposeOfUse=["referral", "referral"]),
    "purpose COC and referral": ctx(purposeOfUse=["COC", "referral"]),
    "purpose referral and COC": ctx(purposeOfUse=["referral", "COC"]),
    "purpose HOUTCOMS and evaluation": ctx(purposeOfUse=["HOUTCOMS", "evaluation"]),
    "purpose lower v3": ctx(purposeOfUse=["houtcoms"]),
    "purpose unicode": ctx(purposeOfUse=["r\u00e9f\u00e9rral"]),
    "purpose bidi": ctx(purposeOfUse=["ref\u202eerral"]),
    "class object": ctx(**{"class": {"system": CAT, "code": "identity"}}),
    "class strings": ctx(**{"class": ["identity"]}),
    "class code NHS": ctx(**{"class": [{"system": CAT, "code": NHS}]}),
    "class code spaced NHS": ctx(**{"class": [{"system": CAT, "code": SPACED}]}),
    "class system NHS": ctx(**{"class": [{"system": NHS, "code": "identity"}]}),
    "class extra key": ctx(**{"class": [{"system": CAT, "code": "identity", "version": "1"}]}),
    "class 21": ctx(**{"class": [{"system": CAT, "code": "identity"}] * 21}),
    "class empty": ctx(**{"class": []}),
    "class null items": ctx(**{"class": [None]}),
    "category empty": ctx(category=[]),
    "category null": ctx(category=None),
    "category code NHS": ctx(category=[{"system": "x", "code": NHS}]),
    "content null": ctx(content=None),
    "content list": ctx(content=[]),
    "unknown ctx NHS key": ctx(**{NHS: 1}),
    "unknown ctx spaced NHS key": ctx(**{SPACED: 1}),
    "deep nesting": top(
        extension={
            "a": [
                [
                    [
                        [
                            [
                                [
                                    [
                                        [
                                            [
                                                [
                                                    [
                                                        [
                                                            [
                                                                [
                                                                    [
                                                                        [
                                                                            [
                                                                                [
                                                                                    [
                                                                                        [
                                                                                            [
                                                                                                [
                                                                                                    [
                                                                                                        [
                                                                                                            [
                                                                                                                [
                                                                                                                    [
                                                                                                                        [
                                                                                                                            [
                                                                                                                                [
                                                                                                                                    [
                                                                                                                                        [
                                                                                                                                            [
                                                                                                                                                [
                                                                                                                                                    [
                                                                                                                                                        [
                                                                                                                                                            [
                                                                                                                                                                [
                                                                                                                                                                    [
                                                                                                                                                                        [
                                                                                                                                                                            [
                                                                                                                                                                                [
                                                                                                                                                                                    [
                                                                                                                                                                                        [
                                                                                                                                                                                            [
                                                                                                                                                                                                [
                                                                                                                                                                                                    [
                                                                                                                                                                                                        [
                                                                                                                                                                                                            [
                                                                                                                                                                                                                [
                                                                                                                                                                                                                    1
                                                                                                                                                                                                                ]
                                                                                                                                                                                                            ]
                                                                                                                                                                                                        ]
                                                                                                                                                                                                    ]
                                                                                                                                                                                                ]
                                                                                                                                                                                            ]
                                                                                                                                                                                        ]
                                                                                                                                                                                    ]
                                                                                                                                                                                ]
                                                                                                                                                                            ]
                                                                                                                                                                        ]
                                                                                                                                                                    ]
                                                                                                                                                                ]
                                                                                                                                                            ]
                                                                                                                                                        ]
                                                                                                                                                    ]
                                                                                                                                                ]
                                                                                                                                            ]
                                                                                                                                        ]
                                                                                                                                    ]
                                                                                                                                ]
                                                                                                                            ]
                                                                                                                        ]
                                                                                                                    ]
                                                                                                                ]
                                                                                                            ]
                                                                                                        ]
                                                                                                    ]
                                                                                                ]
                                                                                            ]
                                                                                        ]
                                                                                    ]
                                                                                ]
                                                                            ]
                                                                        ]
                                                                    ]
                                                                ]
                                                            ]
                                                        ]
                                                    ]
                                                ]
                                            ]
                                        ]
                                    ]
                                ]
                            ]
                        ]
                    ]
                ]
            ]
        }
    ),
}


@pytest.mark.parametrize("body", CASES.values(), ids=list(CASES))
def test_an_odd_body_is_never_a_500_nor_echoes_a_number_or_token(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str], body: Any
) -> None:
    r = client.post(URL, json=body, headers=bearer(make_token("tt-leeds", "case_system")))
    text = r.get_data(as_text=True)
    assert r.status_code < 500
    assert NHS not in text
    assert SPACED not in text
    assert "SECRET-TOKEN" not in text
