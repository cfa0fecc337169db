"""Our decisions in LEAP-CDS's three words: a permit of anything is CONSENT_PERMIT (what was
refused is redacted); nothing permitted is NO_CONSENT only when a usable consent would change
the answer, and CONSENT_DENY when something else refused it."""

from __future__ import annotations

from typing import Any

import pytest

from app.fhir import cds
from app.fhir.codes import OBLIGATION_SYSTEM
from tests.support.cds_check import check

CATEGORY = "https://consent-ledger.example/fhir/CodeSystem/data-category"


def decision(permitted: list[str], refused: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """A decision as POST /v1/decisions answers it; ``refused``: category -> (reason, rule)."""
    return {
        "id": "dec_0f1e2d3c4b5a6978a796a5b4c3d2e1f0",
        "decision": "deny" if refused else "permit",
        "permitted_categories": permitted,
        "denied_categories": [
            {"category": c, "reason": reason, "rule": rule} for c, (reason, rule) in refused.items()
        ],
        "reasons": [{"code": "explicit_consent", "rule": "P2", "message": "Consent (Art 6(1)(a))"}],
        "consents": ["cns_0f1e2d3c4b5a6978a796a5b4c3d2e1f0"] if permitted else [],
        "obligations": ["notify_recipient"] if permitted else [],
        "policy_version": "ab" * 32,
        "basis": "consent" if permitted else None,
        "from": "tt-leeds",
        "to": "ea-tt-leeds",
        "purpose": "referral",
        "data_categories": [*permitted, *refused],
        "subject_ref": "sub_0f1e2d3c4b5a6978a796a5b4c3d2e1f0",
        "made_at": "2026-12-03T18:00:00Z",
        "ledger": {"index": 57, "leaf_hash": "cd" * 32},
    }


# (permitted, refused, LEAP's word)
CASES = {
    "all permitted": (["identity"], {}, "CONSENT_PERMIT"),
    "some refused (G7)": (["identity"], {"condition": ("above_ceiling", "G7")}, "CONSENT_PERMIT"),
    "no consent at all": ([], {"identity": ("no_consent", "P2")}, "NO_CONSENT"),
    "withdrawn": ([], {"identity": ("consent_withdrawn", "P2")}, "CONSENT_DENY"),
    "expired": ([], {"identity": ("consent_expired", "P2")}, "NO_CONSENT"),
    "not yet valid": ([], {"identity": ("consent_not_yet_valid", "P2")}, "NO_CONSENT"),
    "verbal where signed is needed": ([], {"identity": ("consent_not_signed", "P3")}, "NO_CONSENT"),
    "unconfirmed (G6)": ([], {"identity": ("consent_needs_confirmation", "G6")}, "NO_CONSENT"),
    "not in the consent": ([], {"identity": ("category_not_in_consent", "P2")}, "NO_CONSENT"),
    "objection (G3)": ([], {"identity": ("objection_direct_care", "G3")}, "CONSENT_DENY"),
    "opt-out": ([], {"identity": ("national_data_opt_out", "P6")}, "CONSENT_DENY"),
    "above the ceiling": ([], {"clinical_notes": ("above_ceiling", "G7")}, "CONSENT_DENY"),
    "a forbidden route (P10)": (
        [], {"identity": ("route_via_person_or_employment_service", "P10")}, "CONSENT_DENY",
    ),
    "no rule covers it (G0)": ([], {"identity": ("no_applicable_rule", "G0")}, "CONSENT_DENY"),
    "no consent and a refusal": (
        [],
        {"identity": ("no_consent", "P2"), "clinical_notes": ("above_ceiling", "G7")},
        "CONSENT_DENY",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("permitted", "refused", "leap"), CASES.values(), ids=list(CASES))
def test_each_outcome_maps_to_leaps_word(
    permitted: list[str], refused: dict[str, tuple[str, str]], leap: str
) -> None:
    body = decision(permitted, refused)
    (card,) = check("response", cds.response(body, "https://ledger.example.org/"))["cards"]
    assert card["summary"] == card["extension"]["decision"] == leap
    obligations = card["extension"]["obligations"]
    if leap != "CONSENT_PERMIT":
        assert obligations == []
        assert "basedOn" not in card["extension"]
        return
    assert card["extension"]["basedOn"] == "Consent/cns-0f1e2d3c4b5a6978a796a5b4c3d2e1f0"
    ours = [{"id": {"system": OBLIGATION_SYSTEM, "code": "notify_recipient"}}]
    if refused:
        codes = [{"system": CATEGORY, "code": c} for c in refused]
        assert obligations == [{"id": cds.REDACT, "parameters": {"codes": codes}}, *ours]
    else:
        assert obligations == ours


def test_no_consent_is_said_not_to_be_a_permit() -> None:
    card = cds.response(decision([], {"identity": ("no_consent", "P2")}), "https://x.example/")
    assert "not a permit" in card["cards"][0]["detail"]


def test_no_consent_is_every_consent_failure_of_the_engine_but_an_objection_or_withdrawal() -> None:
    # A reason renamed in the engine would read as CONSENT_DENY (the safe side): this says so.
    # A withdrawal is a deny: the engine names it before an objection in force, so as "no
    # consent" an objection could read as "apply your default policy".
    from app.policy.engine import _CONSENT_FAILURES, _best_failure

    assert _best_failure([], {}, "identity") == "no_consent"
    wanting = {*_CONSENT_FAILURES, "no_consent", "category_not_in_consent"}
    assert wanting - {"objection_direct_care", "consent_withdrawn"} == cds.NO_CONSENT_REASONS


def test_a_partial_permit_says_only_the_listed_categories_may_be_shared() -> None:
    # A client that drops REDACT codes of a system it does not know must still not share the
    # refused categories: the card says what is permitted, and that nothing else is.
    card = cds.response(
        decision(["identity"], {"work_needs": ("category_not_in_consent", "P2")}),
        "https://x.example/",
    )["cards"][0]
    assert card["summary"] == "CONSENT_PERMIT"
    assert "only the categories listed as permitted" in card["detail"]
    assert "- Permitted: `identity`" in card["detail"]
