"""The demo (``consent-ledger demo``, run by ``make run``): the example organisations, a client
of every role for each, and the six flows of design.md ("The flows it serves"), made through
the same services the API calls, so a first look at the IG dashboard shows permits, denials,
disclosures, a withdrawal with its erase obligation and its acknowledgement, a G6 confirmation,
an objection and a patient link.

The people are NHS test numbers (the 999 range NHS England reserves for testing, never issued
to anyone). Everything is written once: a second run finds the tokens file and adds nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.services import organisations
from app.services.access import clients
from app.services.access.clients import Principal
from app.services.access.web_sessions import create_access_link
from app.services.consents import consents
from app.services.consents.subjects import SubjectIdentifier, normalise_nhs_number
from app.services.container import Ledger
from app.services.decisions import decisions
from app.services.notifications import obligations
from app.vocabulary import ROLES

Narrate = Callable[[str], None]


def nhs_test_numbers(count: int, start: int = 999_000_000) -> list[str]:
    """``count`` NHS numbers from the test range (999...), each with a valid check digit."""
    out: list[str] = []
    stem = start
    while len(out) < count:
        for digit in range(10):
            try:
                out.append(normalise_nhs_number(f"{stem}{digit}"))
                break
            except ValueError:
                continue
        stem += 1
    return out


# The demo's people, by the flow they are in (design.md, "The flows it serves").
PEOPLE = dict(
    zip(
        ("jobcentre", "therapy", "evaluation", "sms", "employer", "objection"),
        nhs_test_numbers(6),
        strict=True,
    )
)


@dataclass
class Demo:
    """What the demo made: its clients' tokens and, per flow, what happened."""

    tokens: list[dict[str, str]]
    flows: list[dict[str, Any]] = field(default_factory=list)


def create_clients(ledger: Ledger, orgs: list[str]) -> list[dict[str, str]]:
    """A client of every role for every organisation (each a log entry)."""
    tokens = []
    for org in orgs:
        for role in ROLES:
            created = clients.create_client(ledger, org, role, f"{org} {role} (demo)")
            tokens.append(
                {
                    "organisation": org,
                    "role": role,
                    "client_id": created.client_id,
                    "token": created.token,
                }
            )
    return tokens


def run_flows(ledger: Ledger, tokens: list[dict[str, str]], narrate: Narrate) -> None:
    """The six flows, through the services the API calls, as each organisation's clients."""
    principals: dict[tuple[str, str], Principal] = {
        (t["organisation"], t["role"]): clients.authenticate(ledger, f"Bearer {t['token']}")
        for t in tokens
    }

    def who(org: str, role: str = "case_system") -> Principal:
        return principals[org, role]

    def consent(
        by: str,
        person: str,
        purpose: str,
        recipients: tuple[str, ...],
        categories: tuple[str, ...],
        form: str = "verbal",
    ) -> dict[str, Any]:
        evidence = None
        if form != "verbal":  # a signed form: the hash of its scan
            evidence = hashlib.sha256(f"signed form {person} {purpose} {by}".encode()).hexdigest()
        inp = consents.ConsentInput(
            SubjectIdentifier.nhs_number(PEOPLE[person]),
            purpose,
            recipients,
            categories,
            form,
            evidence,
        )
        return consents.record_consent(ledger, who(by), inp, None).body

    def decide(
        person: str, frm: str, to: str, purpose: str, categories: tuple[str, ...]
    ) -> dict[str, Any]:
        inp = decisions.DecisionInput(
            SubjectIdentifier.nhs_number(PEOPLE[person]), frm, to, purpose, categories
        )
        answer = decisions.decide(ledger, who(frm), inp, None).body
        narrate(
            f"  decision {frm} -> {to} ({purpose}, {', '.join(categories)}): {answer['decision']}"
        )
        return answer

    def disclose(answer: dict[str, Any], frm: str, categories: tuple[str, ...]) -> None:
        decisions.record_disclosure(ledger, who(frm), answer["id"], categories, None)
        narrate(f"  disclosed {', '.join(categories)} to {answer['to']}")

    narrate("1. Jobcentre to therapy and employment support")
    referral = consent(
        "jcp-leeds-city",
        "jobcentre",
        "referral",
        ("tt-leeds", "ea-tt-leeds"),
        ("identity", "service_status", "employment_status"),
        form="written",
    )
    referred = ("identity", "service_status", "employment_status")
    for to in ("tt-leeds", "ea-tt-leeds"):
        answer = decide("jobcentre", "jcp-leeds-city", to, "referral", referred)
        disclose(answer, "jcp-leeds-city", referred)
    # G6: a consent taken by DWP is confirmed by the health service before it discloses.
    consents.confirm_consent(ledger, who("tt-leeds"), referral["id"], None)
    narrate("  tt-leeds confirmed the Jobcentre's consent (G6)")

    narrate("2. Therapy to employment adviser, and back")
    onward = ("identity", "work_needs")
    consent("tt-leeds", "therapy", "referral", ("ea-tt-leeds",), onward)
    disclose(decide("therapy", "tt-leeds", "ea-tt-leeds", "referral", onward), "tt-leeds", onward)
    back = ("identity", "service_status")
    consent("ea-tt-leeds", "therapy", "referral", ("tt-leeds",), back)
    disclose(decide("therapy", "ea-tt-leeds", "tt-leeds", "referral", back), "ea-tt-leeds", back)

    narrate("3. Case conferencing, only with signed consent")
    talk = ("identity", "work_needs", "outcome_measures")
    decide("therapy", "ea-tt-leeds", "tt-leeds", "case_conferencing", talk)  # deny: no consent
    consent("ea-tt-leeds", "therapy", "case_conferencing", ("tt-leeds",), talk, form="written")
    disclose(
        decide("therapy", "ea-tt-leeds", "tt-leeds", "case_conferencing", talk),
        "ea-tt-leeds",
        talk,
    )

    narrate("4. Evaluation, withdrawn: the evaluator must erase what it holds")
    measures = ("outcome_measures", "employment_status")
    evaluation = consent(
        "tt-leeds", "evaluation", "evaluation", ("eval-northern-uni",), measures, form="written"
    )
    decide("evaluation", "tt-leeds", "eval-northern-uni", "evaluation", ("identity",))  # never
    disclose(
        decide("evaluation", "tt-leeds", "eval-northern-uni", "evaluation", measures),
        "tt-leeds",
        measures,
    )
    consents.withdraw_consent(
        ledger, who("tt-leeds", "patient_portal"), evaluation["id"], "person_withdrew", None
    )
    narrate("  the person withdrew their evaluation consent through the patient portal")
    feed = obligations.feed(ledger, who("eval-northern-uni"), "open", None, 50)
    for notification in feed["items"]:
        evidence = hashlib.sha256(f"destruction record {notification['id']}".encode())
        obligations.acknowledge(
            ledger,
            who("eval-northern-uni"),
            notification["id"],
            "erased",
            evidence.hexdigest(),
            None,
        )
        narrate("  eval-northern-uni erased what it held and acknowledged, with evidence")

    narrate("5. SMS contact: reminders only, never clinical content")
    consent("tt-leeds", "sms", "sms_contact", ("tt-leeds",), ("contact_details",))
    decide("sms", "tt-leeds", "tt-leeds", "sms_contact", ("contact_details",))
    decide("sms", "tt-leeds", "tt-leeds", "sms_contact", ("contact_details", "condition"))

    narrate("6. Employer contact, naming the employer and what may be said")
    said = ("employment_status", "work_needs")
    consent(
        "ips-cmht-leeds", "employer", "employer_contact", ("employer-acme-logistics",), said,
        form="written",
    )  # fmt: skip
    disclose(
        decide("employer", "ips-cmht-leeds", "employer-acme-logistics", "employer_contact", said),
        "ips-cmht-leeds",
        said,
    )
    decide(  # a health service never discloses to an employer (P10)
        "employer", "tt-leeds", "employer-acme-logistics", "employer_contact", said
    )

    narrate("An objection, and a patient's link to their own page")
    consents.record_objection(
        ledger,
        who("cmht-leeds-west"),
        SubjectIdentifier.nhs_number(PEOPLE["objection"]),
        "direct_care",
        None,
    )
    decide("objection", "cmht-leeds-west", "tt-leeds", "referral", ("identity",))  # deny: G3
    create_access_link(
        ledger,
        who("tt-leeds", "patient_portal"),
        SubjectIdentifier.nhs_number(PEOPLE["evaluation"]),
        7,
    )
    narrate("  a patient portal link for the person in flow 4 (its token is not kept)")


def load(ledger: Ledger, organisation_file: Any) -> list[str]:
    """Register the example organisations (again: a registration already made is kept)."""
    data = organisations.read_organisation_file(organisation_file)
    organisations.import_organisations(ledger, data, str(organisation_file))
    return [str(o["id"]) for o in data]
