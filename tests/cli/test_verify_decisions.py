"""``consent-ledger verify`` proves every logged decision and disclosure from the log itself.

Each ``decision.made`` and ``disclosure.recorded`` entry is re-evaluated against the facts the
log states just before it, under the policy version the log had in force there; the projection
tables are compared with the log as ``rebuild --check`` does. The append-only triggers guard
only the log tables, so an edit to a projection row lets the service make an answer the log
does not support: verify must name that answer and the edited row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from flask.testing import FlaskCliRunner
from sqlalchemy import text

from app.errors import Conflict
from app.policy import LegalBasis, Policy, load_policy
from app.services.access import clients
from app.services.access.clients import Principal
from app.services.consents import consents
from app.services.consents.subjects import SubjectIdentifier
from app.services.container import Ledger
from app.services.decisions import decisions, policies
from app.services.log.log_store import make_entry
from tests.helpers import BOTH, logged_entry
from tests.nhs import valid_nhs_numbers

NHS = valid_nhs_numbers(6, start=943_477_300)
REFERRAL = ("identity", "service_status")


@dataclass
class Flows:
    """The service's use cases, called as the case systems and IG lead would."""

    ledger: Ledger
    principals: dict[str, Principal]

    def consent(
        self, nhs: str, by: str = "tt", recipients: tuple[str, ...] = ("ea-tt-leeds",)
    ) -> str:
        result = consents.record_consent(
            self.ledger,
            self.principals[by],
            consents.ConsentInput(
                SubjectIdentifier.nhs_number(nhs), "referral", recipients, REFERRAL, "verbal"
            ),
            None,
        )
        return str(result.body["id"])

    def withdraw(self, consent_id: str, by: str = "tt") -> None:
        consents.withdraw_consent(self.ledger, self.principals[by], consent_id, None, None)

    def confirm(self, consent_id: str) -> None:
        consents.confirm_consent(self.ledger, self.principals["tt"], consent_id, None)

    def object(self, nhs: str, scope: str = "direct_care") -> str:
        result = consents.record_objection(
            self.ledger, self.principals["tt"], SubjectIdentifier.nhs_number(nhs), scope, None
        )
        return str(result.body["id"])

    def withdraw_objection(self, objection_id: str) -> None:
        consents.withdraw_objection(self.ledger, self.principals["tt"], objection_id, None)

    def decide(
        self,
        nhs: str,
        frm: str = "tt-leeds",
        to: str = "ea-tt-leeds",
        by: str = "tt",
        purpose: str = "referral",
        categories: tuple[str, ...] = REFERRAL,
        legal_basis: LegalBasis | None = None,
    ) -> dict[str, Any]:
        inp = decisions.DecisionInput(
            SubjectIdentifier.nhs_number(nhs), frm, to, purpose, categories, legal_basis
        )
        return decisions.decide(self.ledger, self.principals[by], inp, None).body

    def disclose(
        self, decision: dict[str, Any], by: str = "tt", categories: tuple[str, ...] = REFERRAL
    ) -> dict[str, Any]:
        return decisions.record_disclosure(
            self.ledger, self.principals[by], decision["id"], categories, None
        ).body

    def edit_projection(self, sql: str, **params: Any) -> None:
        """Edit a projection row with SQL, as a hostile DBA could: no trigger guards these."""
        with self.ledger.db.write_engine.begin() as conn:
            conn.execute(text(sql), params)


@pytest.fixture
def flows(ledger: Ledger, policy: Policy, make_token: Callable[..., str]) -> Flows:
    roles = {
        "tt": ("tt-leeds", "case_system"),
        "tt_ig": ("tt-leeds", "ig_lead"),
        "jcp": ("jcp-leeds-city", "case_system"),
    }
    return Flows(
        ledger,
        {
            name: clients.authenticate(ledger, f"Bearer {make_token(org, role)}")
            for name, (org, role) in roles.items()
        },
    )


def _variant_policy(description: str) -> Policy:
    """The shipped policy with another description: a new version that decides alike."""
    document = yaml.safe_load(policies.DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))
    document["description"] = description
    return load_policy(document, "variant")


@dataclass(frozen=True)
class Expected:
    bad: list[dict[str, Any]]  # the decisions and disclosures verify must name, first first
    projection: str  # the projection difference it must name


def unwithdrawn_consent_then_decision(f: Flows) -> Expected:
    consent_id = f.consent(NHS[0])
    f.withdraw(consent_id)
    f.edit_projection(
        "UPDATE consents SET status = 'active', withdrawn_at = NULL WHERE id = :id", id=consent_id
    )
    decision = f.decide(NHS[0])
    assert decision["decision"] == "permit"  # the table, not the log, was believed
    disclosure = f.disclose(decision)
    return Expected(
        [decision, disclosure],
        f"consents {consent_id}: status is 'active' in the table but 'withdrawn' in the log",
    )


def unwithdrawn_consent_then_disclosure(f: Flows) -> Expected:
    consent_id = f.consent(NHS[0])
    decision = f.decide(NHS[0])  # permitted, rightly
    f.withdraw(consent_id)
    f.edit_projection(
        "UPDATE consents SET status = 'active', withdrawn_at = NULL WHERE id = :id", id=consent_id
    )
    disclosure = f.disclose(decision)
    return Expected(
        [disclosure],
        f"consents {consent_id}: status is 'active' in the table but 'withdrawn' in the log",
    )


def organisation_kind_changed(f: Flows) -> Expected:
    # As a health organisation, ea-tt-leeds would receive referrals on implied consent (P1).
    f.edit_projection("UPDATE organisations SET kind = 'health' WHERE id = 'ea-tt-leeds'")
    decision = f.decide(NHS[1])
    assert decision["decision"] == "permit"
    disclosure = f.disclose(decision)
    return Expected(
        [decision, disclosure],
        "organisations ea-tt-leeds: kind is 'health' in the table but 'employment_nhs' in the log",
    )


def objection_deleted(f: Flows) -> Expected:
    objection_id = f.object(NHS[2])
    f.edit_projection("DELETE FROM objections WHERE id = :id", id=objection_id)
    decision = f.decide(NHS[2], to="cmht-leeds-west")
    assert decision["decision"] == "permit"
    return Expected([decision], f"objections {objection_id}: in the log but missing")


def policy_in_force_rolled_back(f: Flows) -> Expected:
    newer = _variant_policy("the shipped policy, republished")
    policies.publish(f.ledger, newer)
    f.edit_projection("DELETE FROM policy_versions WHERE version = :v", v=newer.version)
    decision = f.decide(NHS[3], to="cmht-leeds-west")  # made under the older version
    assert decision["policy_version"] != newer.version
    return Expected([decision], f"policy_versions {newer.version}: in the log but missing")


@pytest.mark.parametrize("backend", BOTH, indirect=True)
@pytest.mark.parametrize(
    "edit",
    [
        unwithdrawn_consent_then_decision,
        unwithdrawn_consent_then_disclosure,
        organisation_kind_changed,
        objection_deleted,
        policy_in_force_rolled_back,
    ],
)
def test_verify_names_answers_the_log_does_not_support(
    runner: FlaskCliRunner, flows: Flows, edit: Callable[[Flows], Expected]
) -> None:
    expected = edit(flows)
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 1, result.output
    first = expected.bad[0]
    assert f"log verification FAILED: entry {first['ledger']['index']} " in result.output
    for answer in expected.bad:
        assert f"entry {answer['ledger']['index']} " in result.output
        assert answer["id"] in result.output
    assert f"entries that do not follow from the log: {len(expected.bad)}" in result.output
    assert expected.projection in result.output


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_verify_passes_a_log_of_many_flows(
    runner: FlaskCliRunner, flows: Flows, ledger: Ledger
) -> None:
    made: list[dict[str, Any]] = []
    disclosed: list[dict[str, Any]] = []
    # Consent, permit, disclosure; withdrawal; the same question denied; the share refused.
    consent_id = flows.consent(NHS[0])
    made.append(flows.decide(NHS[0]))
    disclosed.append(flows.disclose(made[-1]))
    flows.withdraw(consent_id)
    made.append(flows.decide(NHS[0]))
    assert made[-1]["decision"] == "deny"
    with pytest.raises(Conflict):
        flows.disclose(made[-2])
    # A consent taken by DWP needs a health organisation's confirmation (G6).
    dwp_consent = flows.consent(NHS[1], by="jcp", recipients=("tt-leeds",))
    made.append(flows.decide(NHS[1], frm="jcp-leeds-city", to="tt-leeds", by="jcp"))
    flows.confirm(dwp_consent)
    made.append(flows.decide(NHS[1], frm="jcp-leeds-city", to="tt-leeds", by="jcp"))
    disclosed.append(flows.disclose(made[-1], by="jcp"))
    # Implied consent for direct care, an objection, its withdrawal.
    made.append(flows.decide(NHS[2], to="cmht-leeds-west"))
    objection_id = flows.object(NHS[2])
    made.append(flows.decide(NHS[2], to="cmht-leeds-west"))
    assert made[-1]["decision"] == "deny"
    flows.withdraw_objection(objection_id)
    made.append(flows.decide(NHS[2], to="cmht-leeds-west"))
    disclosed.append(flows.disclose(made[-1]))
    # A legal basis asserted by an IG lead.
    made.append(
        flows.decide(
            NHS[3],
            to="eval-northern-uni",
            by="tt_ig",
            purpose="evaluation",
            categories=("outcome_measures",),
            legal_basis=LegalBasis("s251_approval", "CAG 21/CAG/0001"),
        )
    )
    # A new policy version, then the first one re-published: each binds the next decision.
    newer = _variant_policy("the shipped policy, republished")
    policies.publish(ledger, newer)
    made.append(flows.decide(NHS[4], to="cmht-leeds-west"))
    policies.publish(ledger, policies.parse_policy_file(policies.DEFAULT_POLICY_FILE))
    made.append(flows.decide(NHS[4], to="cmht-leeds-west"))
    disclosed.append(flows.disclose(made[-1]))
    assert made[-2]["policy_version"] == newer.version != made[-1]["policy_version"]
    assert {d["decision"] for d in made} == {"permit", "deny"}

    result = runner.invoke(args=["verify"])
    assert result.exit_code == 0, result.output
    assert (
        f"{len(made)} decisions and {len(disclosed)} disclosures re-evaluated from the log"
        in result.output
    )
    assert "projections match the log" in result.output


def _logged(ledger: Ledger, index: int) -> dict[str, Any]:
    return logged_entry(ledger, index)


@pytest.mark.parametrize(
    ("entry_type", "change", "named"),
    [
        (
            "consent.withdrawn",
            lambda d: {**d, "consent_id": "cns_nowhere"},
            "refers to consent cns_nowhere, which the log does not hold",
        ),
        (
            "decision.made",
            lambda d: {**d, "decision_id": "dec_forged", "to": "org-nowhere"},
            "names organisation org-nowhere, which the log had not registered",
        ),
        (
            "disclosure.recorded",
            lambda d: {**d, "disclosure_id": "dis_forged", "decision_id": "dec_nowhere"},
            "names decision dec_nowhere, which the log does not hold before it",
        ),
        (
            # Any decision's permitted categories may be disclosed (a deny's too), no others.
            "disclosure.recorded",
            lambda d: {**d, "disclosure_id": "dis_forged", "data_categories": ["condition"]},
            "discloses condition, which decision dec_",
        ),
        # Payloads the service never writes, though nothing replayed reads the field: each is
        # read against its entry type's declared fields (app/ledger/events.py).
        (
            "consent.withdrawn",
            lambda d: {k: v for k, v in d.items() if k != "notify"},
            "is not a well-formed entry: consent.withdrawn data.notify is missing",
        ),
        (
            "consent.granted",
            lambda d: {**d, "consent_id": "cns_forged", "name": "Ann Example"},
            "is not a well-formed entry: consent.granted data.name is not a field of this entry",
        ),
        (
            "decision.made",
            lambda d: {**d, "decision_id": "dec_forged", "obligations": "none"},
            "is not a well-formed entry: decision.made data.obligations must be an array",
        ),
    ],
)
def test_verify_names_a_signed_entry_the_log_before_it_does_not_support(
    runner: FlaskCliRunner,
    flows: Flows,
    ledger: Ledger,
    entry_type: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    named: str,
) -> None:
    # A well-formed, signed entry the service would never write: verify says which, and why,
    # instead of stopping at the first missing key.
    consent_id = flows.consent(NHS[5])
    decision = flows.decide(NHS[5])
    disclosure = flows.disclose(decision)
    flows.withdraw(consent_id)
    model = next(
        _logged(ledger, i)["data"]
        for i in range(disclosure["ledger"]["index"] + 2)
        if _logged(ledger, i)["type"] == entry_type
    )
    with ledger.db.write() as session:
        ledger.log_store.lock_head(session)
        (receipt,) = ledger.log_store.append(
            session, [make_entry(entry_type, ledger.clock(), change(model))], ledger.clock()
        )
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 1, result.output
    assert f"log verification FAILED: entry {receipt.index} ({entry_type.split('.')[0]}" in (
        result.output
    )
    assert named in result.output
