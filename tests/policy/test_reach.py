"""What a consent can never carry (issue 15 item 5), against the shipped policy: a table of
consents with what the analysis must say, and a property test that what it calls impossible
is never permitted by the engine."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.policy import ConsentFact, Facts, LegalBasis, ObjectionFact, Party, Request, evaluate
from app.policy.reach import reach, routine_legal_bases
from app.services.decisions.policies import DEFAULT_POLICY_FILE, parse_policy_file

SHIPPED = parse_policy_file(DEFAULT_POLICY_FILE)

TT = Party("tt-leeds", "health")
CMHT = Party("cmht-leeds-west", "health")
EA = Party("ea-tt-leeds", "employment_nhs")
WHP = Party("whp-leeds", "employment_dwp")
JCP = Party("jcp-leeds-city", "dwp")
ASC = Party("asc-leeds", "social_care")
EVAL = Party("eval-northern-uni", "evaluator")
ACME = Party("employer-acme-logistics", "employer")
PARTIES = (TT, CMHT, EA, WHP, JCP, ASC, EVAL, ACME)
ALL = tuple(SHIPPED.categories)

# (purpose, recorder, recipients, categories) -> blocked as (recipient, category, rule)
CASES = [
    pytest.param(
        "evaluation",
        EA,
        [EVAL],
        ["identity", "service_status", "outcome_measures"],
        {(EVAL.id, "identity", "G7")},
        id="identity-to-an-evaluator",
    ),
    pytest.param(
        "employer_contact",
        EA,
        [ACME],
        ["identity", "employment_status", "clinical_notes", "condition"],
        {(ACME.id, "clinical_notes", "G7")},
        id="clinical-notes-to-an-employer",
    ),
    pytest.param(
        "employer_contact",
        TT,
        [ACME],
        ["identity", "employment_status"],
        {(ACME.id, None, "P10")},
        id="employer-contact-by-a-health-organisation",
    ),
    pytest.param(
        "referral",
        TT,
        [EA],
        ["identity", "service_status", "employment_status", "outcome_measures"],
        set(),
        id="health-to-nhs-employment-all-fine",
    ),
    pytest.param(
        "referral",
        WHP,
        [JCP],
        ["identity", "service_status", "work_needs", "condition"],
        {(JCP.id, "work_needs", "G7"), (JCP.id, "condition", "G7")},
        id="dwp-never-gets-t2-or-t3",
    ),
    pytest.param(
        "evaluation",
        TT,
        [EVAL],
        ["contact_details", "clinical_notes", "service_status"],
        {(EVAL.id, "contact_details", "G7"), (EVAL.id, "clinical_notes", "G7")},
        id="evaluator-ceiling",
    ),
    pytest.param(
        "sms_contact",
        TT,
        [TT, EA],
        ["contact_details", "clinical_notes"],
        {(TT.id, "clinical_notes", "G7"), (EA.id, "clinical_notes", "G7")},
        id="sms-only-contact-details",
    ),
    pytest.param(
        "referral",
        TT,
        [EVAL],
        ["service_status"],
        {(EVAL.id, None, "G0")},
        id="referral-to-an-evaluator-no-rule",
    ),
    pytest.param(
        "case_conferencing",
        TT,
        [CMHT, ASC],
        list(ALL),
        set(),
        id="direct-care-everything",
    ),
    pytest.param(
        # The employer cannot receive from health (P10), but the consent also names an NHS
        # employment service, which may contact it (P8): the route is open.
        "employer_contact",
        TT,
        [EA, ACME],
        ["identity", "work_needs", "outcome_measures"],
        # (The employment service hears from the employer, P9: T0-T2 only.)
        {(ACME.id, "outcome_measures", "G7"), (EA.id, "outcome_measures", "G7")},
        id="employer-reached-through-a-named-employment-service",
    ),
]


@pytest.mark.parametrize(("purpose", "recorder", "recipients", "categories", "blocked"), CASES)
def test_what_a_consent_can_never_carry(
    purpose: str,
    recorder: Party,
    recipients: list[Party],
    categories: list[str],
    blocked: set[tuple[str, str | None, str]],
) -> None:
    result = reach(SHIPPED, purpose, recorder, recipients, categories)
    assert {(b.recipient, b.category, b.rule) for b in result.blocked} == blocked
    for b in result.blocked:
        # An IG lead reads which share, to whom, and the rule with its legal source.
        assert b.recipient in b.message
        assert (b.category or "Nothing") in b.message
        assert f"{b.rule}:" in b.message
    # What can flow is the rest of the listing, per recipient, in the consent's order.
    for recipient in recipients:
        whole = any(b.category is None for b in result.blocked_for(recipient.id))
        never = {b.category for b in result.blocked_for(recipient.id)}
        expected = () if whole else tuple(c for c in categories if c not in never)
        assert dict(result.can)[recipient.id] == expected


def test_a_court_order_is_not_what_the_analysis_is_about() -> None:
    """G1 permits anything to anyone without consent; the analysis is of what a consent can
    authorise, so the bases G1 and G2 take are left out and s251 support is kept."""
    assert routine_legal_bases(SHIPPED) == (None, "s251_approval")


def test_the_messages_name_the_ceiling() -> None:
    (b,) = reach(SHIPPED, "evaluation", EA, [EVAL], ["identity"]).blocked
    assert "service_status, employment_status, outcome_measures" in b.message
    assert "P11" in b.message


# -- never permitted means never permitted ----------------------------------------------------

NOW = datetime.fromisoformat("2026-11-25T12:00:00+00:00")
times = st.integers(min_value=-400, max_value=400).map(lambda d: NOW + timedelta(days=d))
party_ids = [p.id for p in PARTIES]


@st.composite
def consent_facts(draw: st.DrawFn, n: int) -> ConsentFact:
    recorded = draw(times)
    return ConsentFact(
        id=f"c{n}",
        purpose=draw(st.sampled_from(SHIPPED.purposes)),
        recipients=frozenset(draw(st.lists(st.sampled_from(party_ids), min_size=1, max_size=4))),
        categories=frozenset(draw(st.lists(st.sampled_from(ALL), min_size=1))),
        form=draw(st.sampled_from(tuple(SHIPPED.consent_forms))),
        status=draw(st.sampled_from(("active", "active", "withdrawn"))),
        recorded_at=recorded,
        recorded_by_kind=draw(st.sampled_from(SHIPPED.organisation_kinds)),
        confirmed=draw(st.booleans()),
        expires_at=draw(st.none() | st.just(recorded + timedelta(days=365))),
        recorded_by=draw(st.none() | st.sampled_from(party_ids)),
        sequence=n,
    )


@st.composite
def objection_facts(draw: st.DrawFn, n: int) -> ObjectionFact:
    return ObjectionFact(
        id=f"o{n}",
        scope=draw(st.sampled_from(SHIPPED.objection_scopes)),
        status=draw(st.sampled_from(("active", "withdrawn"))),
        recorded_at=draw(times),
        sequence=100 + n,
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[Request, Facts, datetime, set[tuple[str, str]]]:
    """A consent being captured, what the analysis says it can never carry, and a request
    between its parties with any facts at all (this consent among them, or not)."""
    purpose = draw(st.sampled_from(SHIPPED.purposes))
    recorder = draw(st.sampled_from(PARTIES))
    recipients = draw(st.lists(st.sampled_from(PARTIES), min_size=1, max_size=3, unique=True))
    listed = draw(st.lists(st.sampled_from(ALL), min_size=1, unique=True))
    result = reach(SHIPPED, purpose, recorder, recipients, listed)
    never = {
        (b.recipient, c)
        for b in result.blocked
        for c in ((b.category,) if b.category is not None else ALL)
    }
    sender = draw(st.sampled_from([recorder, *recipients]))
    recipient = draw(st.sampled_from(recipients))
    basis = draw(st.sampled_from(routine_legal_bases(SHIPPED)))
    request = Request(
        sender,
        recipient,
        purpose,
        tuple(draw(st.lists(st.sampled_from(ALL), min_size=1, unique=True))),
        None if basis is None else LegalBasis(basis, "CAG 1-01-2026"),
    )
    own = ConsentFact(
        id="captured",
        purpose=purpose,
        recipients=frozenset(r.id for r in recipients),
        categories=frozenset(listed),
        form=draw(st.sampled_from(tuple(SHIPPED.consent_forms))),
        status="active",
        recorded_at=NOW - timedelta(days=1),
        recorded_by_kind=recorder.kind,
        confirmed=draw(st.booleans()),
        recorded_by=recorder.id,
        sequence=0,
    )
    others = [draw(consent_facts(n)) for n in range(1, draw(st.integers(0, 3)) + 1)]
    objections = [draw(objection_facts(n)) for n in range(draw(st.integers(0, 2)))]
    facts = Facts(tuple([own, *others] if draw(st.booleans()) else others), tuple(objections))
    return request, facts, draw(times), never


@settings(max_examples=600, deadline=None)
@given(cases())
def test_what_can_never_flow_is_never_permitted(
    case: tuple[Request, Facts, datetime, set[tuple[str, str]]],
) -> None:
    request, facts, now, never = case
    decision = evaluate(SHIPPED, request, facts, now)
    leaked = [c for c in decision.permitted_categories if (request.recipient.id, c) in never]
    assert not leaked, (request, decision)
