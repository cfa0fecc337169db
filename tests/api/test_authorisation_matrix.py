"""Authorisation matrix: every route x every client role x a caller from the organisation that
owns the record / from another organisation, and every route without a usable token.

The cells are generated from :data:`EXPECTED`, and two tests hold that table to the application's
route table (``app.url_map``) in both directions, so a new endpoint cannot be left out and a
removed one cannot linger. Roles come from ``app.vocabulary.ROLES``; a role a route does not
list is expected to be refused (403) on it, so a new role is denied until the table says
otherwise.

"Own" means a client of the organisation that recorded the record the request is about (the
consent, objection, decision, access link), or, for a request with no record in its path, of
the organisation the request is on behalf of (``from`` of a decision). "Other" means a client
of an organisation named in none of those records. The browser pages (``/ig``, ``/p``) are
tested elsewhere; here they are only checked to give nothing away without a session or a
working link.

Reads never leak another organisation's records, not even as counts: every cell of another
organisation's client that does not see everything by design (a patient portal and an auditor
do) must not mention any of the owning organisation's records, and the read endpoints are
checked to answer exactly as they would for a person the service has never seen.

One world is built per module (SQLite) so the few hundred cells run in seconds; a cell that
changes a record (withdraw, confirm, revoke) makes a fresh one first, so cells do not depend on
each other's order.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import create_app, get_ledger, vocabulary
from app.services import organisations
from app.services.access import clients
from app.services.container import Ledger
from app.services.decisions import policies
from app.services.log import keys
from tests.conftest import ORGS_FILE
from tests.helpers import bearer
from tests.nhs import with_check_digit
from tests.support.fhir_check import check_resource

Route = tuple[str, str]  # (method, rule as in app.url_map)
Pair = tuple[int, int]  # (status for a caller from the owning organisation, from another one)

OWNER = "tt-leeds"  # health: records the consent, decision, disclosure, link and objection
RECIPIENT = "ea-tt-leeds"  # employment_nhs: named in the owner's consent, receives its share
DWP_OWNER = "whp-leeds"  # employment_dwp: records the consent a health org must confirm (G6)
OTHER = "cmht-leeds-west"  # health, named in no record: the "other organisation"

ROLES: tuple[str, ...] = vocabulary.ROLES
OWN, OTHER_ORG = "own-org", "other-org"
RELATIONS = (OWN, OTHER_ORG)
# Who sees all of a person's record by design (README "Visibility"): the person's own portal and
# auditors. Every other role sees only what its organisation recorded or is named in.
SEES_ALL = ("patient_portal", "auditor")
CREDENTIALS = ("no token", "bad token", "forged token", "revoked token")
# Browser pages: checked by PAGES below, not by the API matrix.
PAGE_PREFIXES = ("/ig/", "/p/")
IGNORED_PREFIXES = ("/static/",)


# -- the world -----------------------------------------------------------------------------------


def _nhs_numbers(start: int) -> Iterator[str]:
    n = start
    while True:
        number = with_check_digit(str(n))
        if number:
            yield number
        n += 1


def consent_body(nhs_number: str, recipients: list[str] | None = None) -> dict[str, Any]:
    return {
        "subject": {"nhs_number": nhs_number},
        "purpose": "referral",
        "recipients": recipients or [RECIPIENT],
        "data_categories": ["identity", "service_status"],
        "form": "verbal",
    }


def fhir_consent_body(nhs_number: str) -> dict[str, Any]:
    """``consent_body`` as a FHIR Consent (POST /fhir/r4/Consent)."""
    system = "https://consent-ledger.example/fhir"
    return {
        "resourceType": "Consent",
        "status": "active",
        "category": [
            {"coding": [{"system": f"{system}/CodeSystem/consent-form", "code": "verbal"}]}
        ],
        "patient": {"identifier": {"system": NHS_SYSTEM, "value": nhs_number}},
        "provision": {
            "actor": [
                {
                    "role": {"coding": [{"system": IRCP_SYSTEM, "code": "IRCP"}]},
                    "reference": {
                        "identifier": {"system": f"{system}/Id/organisation", "value": RECIPIENT}
                    },
                }
            ],
            "purpose": [{"system": f"{system}/CodeSystem/purpose", "code": "referral"}],
            "class": [
                {"system": f"{system}/CodeSystem/data-category", "code": c}
                for c in ("identity", "service_status")
            ],
        },
    }


@dataclass(frozen=True)
class Call:
    """What one cell sends: the path with its parameters filled in, a query, a JSON or form body."""

    path: str
    query: dict[str, Any] | None = None
    body: Any = None
    form: dict[str, str] | None = None


@dataclass
class World:
    app: Flask
    client: FlaskClient
    ledger: Ledger
    tokens: dict[tuple[str, str], str]
    nhs: Iterator[str]
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    # the owner's records about one person, which no other organisation's client may see
    person: str = ""
    subject_ref: str = ""
    consent_id: str = ""
    decision_id: str = ""
    disclosure_id: str = ""
    link_id: str = ""
    # log index of each of the owner's entries, by entry type
    entries: dict[str, int] = field(default_factory=dict)
    # an objection the owner recorded for a second person
    objection_person: str = ""
    objection_id: str = ""
    # a permit the owner holds for a third person, for the cells that record disclosures
    share_person: str = ""
    share_decision_id: str = ""
    revoked_link_token: str = ""

    def auth(self, org: str, role: str) -> dict[str, str]:
        return bearer(self.tokens[org, role])

    def fresh_person(self) -> str:
        """An NHS number no request has used yet: a stranger to the service."""
        return next(self.nhs)

    def log_size(self) -> int:
        with self.ledger.db.read() as session:
            return self.ledger.log_store.size(session)

    def send(
        self,
        method: str,
        call: Call,
        headers: dict[str, str],
        client: FlaskClient | None = None,
    ) -> TestResponse:
        kwargs: dict[str, Any] = {"method": method, "headers": headers}
        if call.query is not None:
            kwargs["query_string"] = call.query
        if call.body is not None:
            kwargs["json"] = call.body
        if call.form is not None:
            kwargs["data"] = call.form
        return (client or self.client).open(call.path, **kwargs)

    def write(self, path: str, org: str, body: Any = None, role: str = "case_system") -> Any:
        resp = self.send("POST", Call(path, body=body), self.auth(org, role))
        assert resp.status_code in (200, 201), resp.text
        return resp.get_json()

    def new_consent(self, recorder: str = OWNER) -> str:
        recipients = [OWNER] if recorder == DWP_OWNER else [RECIPIENT]
        body = consent_body(self.fresh_person(), recipients)
        return str(self.write("/v1/consents", recorder, body)["id"])

    def new_notification(self) -> str:
        """A notification for the owner: a person withdrew its consent through another
        organisation's portal, so the owner must note the withdrawal."""
        consent_id = self.new_consent()
        body = {"reason": "person_withdrew"}
        self.write(f"/v1/consents/{consent_id}/withdraw", OTHER, body, role="patient_portal")
        feed = self.send(
            "GET", Call("/v1/notifications", query={"state": "open"}), self.auth(OWNER, "ig_lead")
        ).get_json()
        return str(feed["items"][-1]["id"])

    def new_person_with_consent(self) -> str:
        """A person only the owner has recorded anything about (their NHS number)."""
        person = self.fresh_person()
        self.write("/v1/consents", OWNER, consent_body(person, [RECIPIENT]))
        return person

    def new_objection(self) -> str:
        body = {"subject": {"nhs_number": self.fresh_person()}, "scope": "direct_care"}
        return str(self.write("/v1/objections", OWNER, body)["id"])

    def new_link(self) -> str:
        body = {"subject": {"nhs_number": self.person}}
        return str(self.write("/v1/subjects/access-links", OWNER, body)["id"])

    def owner_secrets(self) -> dict[str, str]:
        """What only the owner's clients (and portals and auditors) may learn."""
        return {
            "NHS number": self.person,
            "subject_ref": self.subject_ref,
            "consent id": self.consent_id,
            "decision id": self.decision_id,
            "disclosure id": self.disclosure_id,
            "access link id": self.link_id,
            "objection id": self.objection_id,
            "objecting person's NHS number": self.objection_person,
            "share decision id": self.share_decision_id,
        }


def _make_app(instance: Path, database: Path) -> Flask:
    # Built once per module, before the per-test environment isolation runs: do it here.
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("CONSENT_LEDGER_") and name != "CONSENT_LEDGER_TEST_PG_BIN":
                mp.delenv(name)
        return create_app(
            {
                "TESTING": True,
                "INSTANCE_PATH": str(instance),
                "DATABASE_URL": f"sqlite:///{database}",
            }
        )


@pytest.fixture(scope="module")
def world(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    instance = tmp_path_factory.mktemp("authorisation") / "instance"
    instance.mkdir()
    database = instance / "consent-ledger.sqlite3"
    shutil.copyfile(sqlite_template, database)
    app = _make_app(instance, database)
    ledger = get_ledger(app)
    keys.ensure_keys(ledger.settings)
    organisations.import_organisations(
        ledger, organisations.read_organisation_file(ORGS_FILE), str(ORGS_FILE)
    )
    policies.publish(ledger, policies.parse_policy_file(policies.DEFAULT_POLICY_FILE))
    tokens = {
        (org, role): clients.create_client(ledger, org, role, None).token
        for org in (OWNER, DWP_OWNER, OTHER)
        for role in ROLES
    }
    w = World(app, app.test_client(), ledger, tokens, _nhs_numbers(999_100_000))

    # The owner's records about one person: a consent naming the recipient, a permit to share
    # with it, the share itself, and a link to the person's page.
    w.person = w.fresh_person()
    given = w.write("/v1/consents", OWNER, consent_body(w.person))
    w.consent_id, w.subject_ref = given["id"], given["subject_ref"]
    w.entries["consent.granted"] = given["ledger"]["index"]
    decision_body = {
        "subject": {"nhs_number": w.person},
        "from": OWNER,
        "to": RECIPIENT,
        "purpose": "referral",
        "data_categories": ["identity", "service_status"],
    }
    decided = w.write("/v1/decisions", OWNER, decision_body)
    assert decided["decision"] == "permit", decided
    w.decision_id = decided["id"]
    w.entries["decision.made"] = decided["ledger"]["index"]
    shared = w.write(
        "/v1/disclosures", OWNER, {"decision_id": w.decision_id, "data_categories": ["identity"]}
    )
    w.disclosure_id = shared["id"]
    w.entries["disclosure.recorded"] = shared["ledger"]["index"]
    link = w.write("/v1/subjects/access-links", OWNER, {"subject": {"nhs_number": w.person}})
    w.link_id = link["id"]
    w.entries["access_link.created"] = link["ledger_index"]

    # An objection the owner recorded for a second person.
    w.objection_person = w.fresh_person()
    objection = w.write(
        "/v1/objections",
        OWNER,
        {"subject": {"nhs_number": w.objection_person}, "scope": "direct_care"},
    )
    w.objection_id = objection["id"]
    w.entries["objection.recorded"] = objection["ledger"]["index"]

    # A permit for a third person, under which the disclosure cells record their shares (so
    # the first person's disclosure history stays exactly one share).
    w.share_person = w.fresh_person()
    w.write("/v1/consents", OWNER, consent_body(w.share_person))
    permit = w.write(
        "/v1/decisions", OWNER, {**decision_body, "subject": {"nhs_number": w.share_person}}
    )
    assert permit["decision"] == "permit", permit
    w.share_decision_id = permit["id"]

    # A link that worked once and was revoked, for the patient pages.
    revoked = w.write("/v1/subjects/access-links", OWNER, {"subject": {"nhs_number": w.person}})
    w.revoked_link_token = revoked["url"].rsplit("/p/", 1)[1]
    w.write(f"/v1/subjects/access-links/{revoked['id']}/revoke", OWNER)

    # Credentials that must open nothing.
    real = w.tokens[OWNER, "ig_lead"]
    gone = clients.create_client(ledger, OTHER, "auditor", None)
    clients.revoke_client(ledger, gone.client_id)
    w.credentials = {
        "no token": {},
        "bad token": {"Authorization": "Bearer not-a-token"},
        "forged token": bearer(real[:-1] + ("A" if real[-1] != "A" else "B")),
        "revoked token": bearer(gone.token),
    }
    yield w
    ledger.db.dispose()


# -- what a 200 from a read may contain ---------------------------------------------------------

ReadCheck = Callable[[World, str, str, TestResponse, dict[str, str]], None]


def consents_read(
    w: World, role: str, relation: str, resp: TestResponse, headers: dict[str, str]
) -> None:
    """The owner's clients and all-seeing roles get the consent; anyone else gets exactly what
    a person the service has never seen gets (so not even that the person is known)."""
    body = resp.get_json()
    listed = [c["id"] for c in body["consents"]]
    if role in SEES_ALL or relation == OWN:
        assert listed == [w.consent_id]
        assert ("subject_ref" in body) == (role in SEES_ALL)
        return
    stranger = w.client.get(
        "/v1/consents", query_string={"nhs_number": w.fresh_person()}, headers=headers
    )
    assert stranger.status_code == 200
    assert body == stranger.get_json() == {"consents": [], "objections": []}


def consult_body(nhs_number: str) -> dict[str, Any]:
    return {
        "hook": "patient-consent-consult",
        "hookInstance": "3f2a9c1e-7b4d-4e8a-9c0f-1d2e3f4a5b6c",
        "context": {
            "patientId": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs_number}],
            "actor": [
                {
                    "system": "https://consent-ledger.example/fhir/Id/organisation",
                    "value": RECIPIENT,
                }
            ],
            "purposeOfUse": "referral",
            "class": [
                {
                    "system": "https://consent-ledger.example/fhir/CodeSystem/data-category",
                    "code": "identity",
                }
            ],
        },
    }


def disclosures_read(
    w: World, role: str, relation: str, resp: TestResponse, headers: dict[str, str]
) -> None:
    """The owner's IG lead and any auditor see the one share; another organisation's IG lead
    sees no item and a total of nothing, as for a stranger."""
    body = resp.get_json()
    listed = [d["id"] for d in body["items"]]
    if role == "auditor" or relation == OWN:
        assert (listed, body["total"]) == ([w.disclosure_id], 1)
        return
    stranger = w.client.get(
        "/v1/disclosures", query_string={"nhs_number": w.fresh_person()}, headers=headers
    )
    assert stranger.status_code == 200
    assert (listed, body["total"]) == ([], 0)
    assert body == stranger.get_json()


NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
IRCP_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


def _fhir_ids(body: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in body.get("entry", [])]


def fhir_consents_read(
    w: World, role: str, relation: str, resp: TestResponse, headers: dict[str, str]
) -> None:
    """As consents_read, in FHIR: a searchset Bundle holding the owner's consent, or exactly
    what a stranger's search holds."""
    body = resp.get_json()
    if role in SEES_ALL or relation == OWN:
        assert _fhir_ids(body) == [w.consent_id.replace("_", "-")]
        return
    stranger = w.client.get(
        "/fhir/r4/Consent",
        query_string={"patient:identifier": f"{NHS_SYSTEM}|{w.fresh_person()}"},
        headers=headers,
    )
    assert stranger.status_code == 200
    assert body == stranger.get_json()
    assert (body["total"], _fhir_ids(body)) == (0, [])


def fhir_audit_events_read(
    w: World, role: str, relation: str, resp: TestResponse, headers: dict[str, str]
) -> None:
    """As disclosures_read, in FHIR: the owner's IG lead and any auditor see the one share as
    an AuditEvent; another organisation's IG lead no entry and a total of nothing."""
    body = resp.get_json()
    if role == "auditor" or relation == OWN:
        assert (_fhir_ids(body), body["total"]) == ([w.disclosure_id.replace("_", "-")], 1)
        return
    assert (_fhir_ids(body), body["total"]) == ([], 0)


def entry_read(
    w: World, role: str, relation: str, resp: TestResponse, headers: dict[str, str]
) -> None:
    body = resp.get_json()
    if role == "ig_lead" and relation != OWN:
        # The committed leaf, which holds nothing about the person; never its opening.
        assert (body["state"], body["entry"], body["opening"]) == ("withheld", None, None)
        assert set(json.loads(base64.b64decode(body["leaf"]))) == {"v", "type", "commitment"}
        return
    assert body["state"] == "opened"
    assert body["entry"]["type"] == "consent.granted"
    assert body["entry"]["data"]["consent_id"] == w.consent_id


# -- the expectation table ----------------------------------------------------------------------

DENIED: Pair = (403, 403)


def everyone(status: int) -> dict[str, Pair]:
    """Every role gets ``status``, whatever its organisation."""
    return {role: (status, status) for role in ROLES}


def only(**allowed: Pair) -> dict[str, Pair]:
    """These roles get these (own, other) statuses; every other role is refused with 403."""
    unknown = set(allowed) - set(ROLES)
    assert not unknown, f"not roles: {unknown}"
    return {role: allowed.get(role, DENIED) for role in ROLES}


def at(path: str, **query: Any) -> Callable[[World], Call]:
    return lambda _: Call(path, query=query or None)


@dataclass(frozen=True)
class Expect:
    call: Callable[[World], Call]  # makes the request (and any fresh record it acts on)
    roles: dict[str, Pair]
    anonymous: int = 401  # no token, a bad, forged or revoked one
    owner: str = OWNER  # whose clients are "own"
    reads: ReadCheck | None = None  # what a 200 may contain

    def status(self, role: str, relation: str) -> int:
        own, other = self.roles[role]
        return own if relation == OWN else other


CONSENT_WITHDRAW = "/v1/consents/<string:consent_id>/withdraw"
CONSENT_CONFIRM = "/v1/consents/<string:consent_id>/confirm"
OBJECTION_WITHDRAW = "/v1/objections/<string:objection_id>/withdraw"
LINK_REVOKE = "/v1/subjects/access-links/<string:link_id>/revoke"

# design.md "HTTP API (v1)", as refined by README's API table (which adds auditor to consent
# reads and ig_lead to confirmation, and keeps decisions to the caller's own organisation).
EXPECTED: dict[Route, Expect] = {
    # anyone, token or not: nothing here belongs to an organisation
    ("GET", "/healthz"): Expect(at("/healthz"), everyone(200), anonymous=200),
    ("GET", "/openapi.json"): Expect(at("/openapi.json"), everyone(200), anonymous=200),
    ("GET", "/problems/<slug>"): Expect(at("/problems/forbidden"), everyone(200), anonymous=200),
    ("GET", "/v1/log/checkpoint"): Expect(at("/v1/log/checkpoint"), everyone(200), anonymous=200),
    ("GET", "/v1/log/key"): Expect(at("/v1/log/key"), everyone(200), anonymous=200),
    # the public log, c2sp.org/tlog-tiles: hashes and commitments only
    ("GET", "/log/checkpoint"): Expect(at("/log/checkpoint"), everyone(200), anonymous=200),
    # every leaf so far, in one entry bundle: none may hold another organisation's secrets
    ("GET", "/log/tile/<path:path>"): Expect(
        lambda w: Call(f"/log/tile/entries/000.p/{min(w.log_size(), 255)}"),
        everyone(200),
        anonymous=200,
    ),
    # any client: registered organisations and hashes only
    ("GET", "/v1/organisations"): Expect(at("/v1/organisations"), everyone(200)),
    ("GET", "/v1/log/proof/inclusion"): Expect(
        lambda w: Call("/v1/log/proof/inclusion", query={"index": w.entries["consent.granted"]}),
        everyone(200),
    ),
    # an offline receipt (c2sp.org/tlog-proof): hashes and a signed checkpoint only
    ("GET", "/v1/log/proof/receipt"): Expect(
        lambda w: Call("/v1/log/proof/receipt", query={"index": w.entries["consent.granted"]}),
        everyone(200),
    ),
    ("GET", "/v1/log/proof/consistency"): Expect(
        at("/v1/log/proof/consistency", **{"from": 1}), everyone(200)
    ),
    # consents: recorded by a case system, always as its own organisation's
    ("POST", "/v1/consents"): Expect(
        lambda w: Call("/v1/consents", body=consent_body(w.fresh_person())),
        only(case_system=(201, 201)),
    ),
    ("GET", "/v1/consents"): Expect(
        lambda w: Call("/v1/consents", query={"nhs_number": w.person}),
        only(
            case_system=(200, 200),
            ig_lead=(200, 200),
            patient_portal=(200, 200),
            auditor=(200, 200),
        ),
        reads=consents_read,
    ),
    # the recording organisation's case system, IG lead or portal; any portal (the person)
    ("POST", CONSENT_WITHDRAW): Expect(
        lambda w: Call(
            f"/v1/consents/{w.new_consent()}/withdraw", body={"reason": "person_withdrew"}
        ),
        only(case_system=(200, 403), ig_lead=(200, 403), patient_portal=(200, 200)),
    ),
    # G6: a health organisation the DWP-side consent names confirms it; a health organisation
    # it does not name cannot (nor can its recorder, which is not a health organisation)
    ("POST", CONSENT_CONFIRM): Expect(
        lambda w: Call(f"/v1/consents/{w.new_consent(DWP_OWNER)}/confirm"),
        only(case_system=(200, 403), ig_lead=(200, 403)),
    ),
    ("POST", "/v1/objections"): Expect(
        lambda w: Call(
            "/v1/objections",
            body={"subject": {"nhs_number": w.fresh_person()}, "scope": "direct_care"},
        ),
        only(case_system=(201, 201), patient_portal=(201, 201)),
    ),
    ("POST", OBJECTION_WITHDRAW): Expect(
        lambda w: Call(f"/v1/objections/{w.new_objection()}/withdraw"),
        only(case_system=(200, 403), patient_portal=(200, 200)),
    ),
    # decisions about shares from the caller's own organisation only
    ("POST", "/v1/decisions"): Expect(
        lambda w: Call(
            "/v1/decisions",
            body={
                "subject": {"nhs_number": w.person},
                "from": OWNER,
                "to": RECIPIENT,
                "purpose": "referral",
                "data_categories": ["identity"],
            },
        ),
        only(case_system=(200, 403), ig_lead=(200, 403)),
    ),
    # CDS Hooks: the service list is public; a consult is a decision about a share from the
    # caller's own organisation (it names no sender), so every case system and IG lead may ask,
    # about a person of its own (like /v1/decisions, the answer names them by subject_ref)
    ("GET", "/cds-services"): Expect(at("/cds-services"), everyone(200), anonymous=200),
    ("POST", "/cds-services/patient-consent-consult"): Expect(
        lambda w: Call(
            "/cds-services/patient-consent-consult", body=consult_body(w.fresh_person())
        ),
        only(case_system=(200, 200), ig_lead=(200, 200)),
    ),
    # a disclosure is recorded by the organisation that made the share
    ("POST", "/v1/disclosures"): Expect(
        lambda w: Call(
            "/v1/disclosures",
            body={"decision_id": w.share_decision_id, "data_categories": ["identity"]},
        ),
        only(case_system=(201, 403)),
    ),
    # an IG lead sees its own organisation's shares (another's: an empty page), an auditor all
    ("GET", "/v1/disclosures"): Expect(
        lambda w: Call("/v1/disclosures", query={"nhs_number": w.person}),
        only(ig_lead=(200, 200), auditor=(200, 200)),
        reads=disclosures_read,
    ),
    # entries describe consents and shares: an auditor reads all, an IG lead must not read
    # another organisation's (else GET /v1/disclosures' scoping means nothing); a committed
    # leaf (log format 2) holds nothing personal, so it is served to any IG lead, its opening
    # only to the organisations the entry names
    ("GET", "/v1/log/entries/<int:index>"): Expect(
        lambda w: Call(f"/v1/log/entries/{w.entries['consent.granted']}"),
        only(ig_lead=(200, 200), auditor=(200, 200)),
        reads=entry_read,
    ),
    # an organisation reads and acknowledges its own notifications only
    ("GET", "/v1/notifications"): Expect(
        at("/v1/notifications", state="all"),
        only(case_system=(200, 200), ig_lead=(200, 200)),
    ),
    ("POST", "/v1/notifications/<string:notification_id>/acknowledge"): Expect(
        lambda w: Call(
            f"/v1/notifications/{w.new_notification()}/acknowledge", body={"outcome": "noted"}
        ),
        only(case_system=(200, 404), ig_lead=(200, 404)),
    ),
    # an IG lead erases a person its organisation recorded something about (for another
    # organisation's IG lead the person does not exist); an auditor anyone
    ("POST", "/v1/subjects/erasures"): Expect(
        lambda w: Call(
            "/v1/subjects/erasures",
            body={
                "subject": {"nhs_number": w.new_person_with_consent()},
                "reason": "recorded_in_error",
                "reference": "IG-2026-001",
            },
        ),
        only(ig_lead=(201, 404), auditor=(201, 201)),
    ),
    # a case system may give a link only to a person its organisation has a record with
    ("POST", "/v1/subjects/access-links"): Expect(
        lambda w: Call("/v1/subjects/access-links", body={"subject": {"nhs_number": w.person}}),
        only(case_system=(201, 403), patient_portal=(201, 201)),
    ),
    ("POST", LINK_REVOKE): Expect(
        lambda w: Call(f"/v1/subjects/access-links/{w.new_link()}/revoke"),
        only(case_system=(200, 403), patient_portal=(200, 200)),
    ),
    # The FHIR R4 face: the same roles and visibility as the v1 reads it mirrors.
    ("GET", "/fhir/r4/metadata"): Expect(at("/fhir/r4/metadata"), everyone(200)),
    ("GET", "/fhir/r4/CodeSystem/<resource_id>"): Expect(
        at("/fhir/r4/CodeSystem/purpose"), everyone(200)
    ),
    ("GET", "/fhir/r4/Consent"): Expect(
        lambda w: Call(
            "/fhir/r4/Consent", query={"patient:identifier": f"{NHS_SYSTEM}|{w.person}"}
        ),
        only(
            case_system=(200, 200),
            ig_lead=(200, 200),
            patient_portal=(200, 200),
            auditor=(200, 200),
        ),
        reads=fhir_consents_read,
    ),
    # a consent another organisation's client could not list is not found, as none would be
    ("GET", "/fhir/r4/Consent/<resource_id>"): Expect(
        lambda w: Call(f"/fhir/r4/Consent/{w.consent_id.replace('_', '-')}"),
        only(
            case_system=(200, 404),
            ig_lead=(200, 404),
            patient_portal=(200, 200),
            auditor=(200, 200),
        ),
    ),
    ("GET", "/fhir/r4/Consent/<resource_id>/_history"): Expect(
        lambda w: Call(f"/fhir/r4/Consent/{w.consent_id.replace('_', '-')}/_history"),
        only(
            case_system=(200, 404),
            ig_lead=(200, 404),
            patient_portal=(200, 200),
            auditor=(200, 200),
        ),
    ),
    ("GET", "/fhir/r4/Consent/<resource_id>/_history/<version_id>"): Expect(
        lambda w: Call(
            f"/fhir/r4/Consent/{w.consent_id.replace('_', '-')}/_history/"
            f"{w.entries['consent.granted']}"
        ),
        only(
            case_system=(200, 404),
            ig_lead=(200, 404),
            patient_portal=(200, 200),
            auditor=(200, 200),
        ),
    ),
    ("POST", "/fhir/r4/Consent"): Expect(
        lambda w: Call("/fhir/r4/Consent", body=fhir_consent_body(w.fresh_person())),
        only(case_system=(201, 201)),
    ),
    ("POST", "/fhir/r4"): Expect(
        lambda w: Call(
            "/fhir/r4",
            body={
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "resource": fhir_consent_body(w.fresh_person()),
                        "request": {"method": "POST", "url": "Consent"},
                    }
                ],
            },
        ),
        only(case_system=(200, 200)),
    ),
    # the same searches with the NHS number in a form body rather than the URL
    ("POST", "/fhir/r4/Consent/_search"): Expect(
        lambda w: Call(
            "/fhir/r4/Consent/_search", form={"patient:identifier": f"{NHS_SYSTEM}|{w.person}"}
        ),
        only(
            case_system=(200, 200),
            ig_lead=(200, 200),
            patient_portal=(200, 200),
            auditor=(200, 200),
        ),
        reads=fhir_consents_read,
    ),
    ("POST", "/fhir/r4/AuditEvent/_search"): Expect(
        lambda w: Call(
            "/fhir/r4/AuditEvent/_search",
            form={"patient:identifier": f"{NHS_SYSTEM}|{w.person}"},
        ),
        only(ig_lead=(200, 200), auditor=(200, 200)),
        reads=fhir_audit_events_read,
    ),
    ("GET", "/fhir/r4/AuditEvent"): Expect(
        lambda w: Call(
            "/fhir/r4/AuditEvent", query={"patient:identifier": f"{NHS_SYSTEM}|{w.person}"}
        ),
        only(ig_lead=(200, 200), auditor=(200, 200)),
        reads=fhir_audit_events_read,
    ),
}

PROBLEM_TYPES = {
    401: "/problems/unauthenticated",
    403: "/problems/forbidden",
    404: "/problems/not-found",
}
FHIR_ISSUE_CODES = {401: "login", 403: "forbidden", 404: "not-found"}


def _served_routes(app: Flask) -> set[Route]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(IGNORED_PREFIXES):
            continue
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            routes.add((method, rule.rule))
    return routes


def _label(route: Route) -> str:
    return f"{route[0]} {route[1]}"


def _explain(resp: TestResponse) -> str:
    return f"got {resp.status_code}: {resp.get_data(as_text=True)[:400]}"


def _check_refusal_and_writes(
    method: str, resp: TestResponse, before: int, w: World, path: str = ""
) -> None:
    """A refusal is a problem+json of the right type (under /fhir/, an OperationOutcome of
    the right issue code) that changed nothing; an allowed write appended exactly one entry; a
    read appended none."""
    status = resp.status_code
    if status >= 400 and path.startswith("/fhir/"):
        assert resp.mimetype == "application/fhir+json", _explain(resp)
        (issue,) = check_resource(resp.get_json())["issue"]
        assert issue["code"] == FHIR_ISSUE_CODES.get(status), _explain(resp)
        if status == 401:
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    elif status >= 400:
        assert resp.mimetype == "application/problem+json", _explain(resp)
        assert resp.get_json()["type"] == PROBLEM_TYPES.get(status), _explain(resp)
        if status == 401:
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    # a POST search reads
    wrote = 1 if method == "POST" and status < 300 and not path.endswith("/_search") else 0
    assert w.log_size() == before + wrote


def _assert_no_owner_secrets(w: World, resp: TestResponse) -> None:
    data = resp.get_data()  # bytes: a tile or an entry bundle is binary
    leaked = [what for what, value in w.owner_secrets().items() if value and value.encode() in data]
    assert leaked == [], f"another organisation's client was shown the owner's {leaked}"


# -- the route table and the expectation table agree --------------------------------------------


def test_every_api_route_has_an_expectation_and_every_expectation_a_route(world: World) -> None:
    served = {r for r in _served_routes(world.app) if not r[1].startswith(PAGE_PREFIXES)}
    assert sorted(served - set(EXPECTED)) == [], "routes missing from EXPECTED: add a row"
    assert sorted(set(EXPECTED) - served) == [], "EXPECTED lists routes that are not served"


def test_every_page_route_has_an_expectation_and_every_expectation_a_route(world: World) -> None:
    served = {r for r in _served_routes(world.app) if r[1].startswith(PAGE_PREFIXES)}
    assert sorted(served - set(PAGES)) == [], "page routes missing from PAGES: add a row"
    assert sorted(set(PAGES) - served) == [], "PAGES lists routes that are not served"


def test_the_matrix_covers_every_role() -> None:
    assert set(ROLES) >= {"case_system", "ig_lead", "patient_portal", "auditor", "admin"}
    for route, expect in EXPECTED.items():
        assert tuple(expect.roles) == ROLES, _label(route)


# -- the matrix ----------------------------------------------------------------------------------

ROLE_CELLS = [
    pytest.param(route, role, relation, id=f"{_label(route)} | {role} | {relation}")
    for route in EXPECTED
    for role in ROLES
    for relation in RELATIONS
]
TOKEN_CELLS = [
    pytest.param(route, credential, id=f"{_label(route)} | {credential}")
    for route in EXPECTED
    for credential in CREDENTIALS
]


@pytest.mark.parametrize(("route", "role", "relation"), ROLE_CELLS)
def test_role_and_organisation(world: World, route: Route, role: str, relation: str) -> None:
    expect = EXPECTED[route]
    call = expect.call(world)  # any fresh record is made before the log is measured
    org = expect.owner if relation == OWN else OTHER
    headers = world.auth(org, role)
    before = world.log_size()
    resp = world.send(route[0], call, headers)
    assert resp.status_code == expect.status(role, relation), _explain(resp)
    _check_refusal_and_writes(route[0], resp, before, world, route[1])
    if relation == OTHER_ORG and role not in SEES_ALL:
        _assert_no_owner_secrets(world, resp)
    if expect.reads is not None and resp.status_code == 200:
        expect.reads(world, role, relation, resp, headers)


@pytest.mark.parametrize(("route", "credential"), TOKEN_CELLS)
def test_without_a_usable_token(world: World, route: Route, credential: str) -> None:
    expect = EXPECTED[route]
    call = expect.call(world)
    before = world.log_size()
    resp = world.send(route[0], call, world.credentials[credential])
    assert resp.status_code == expect.anonymous, _explain(resp)
    _check_refusal_and_writes(route[0], resp, before, world, route[1])
    _assert_no_owner_secrets(world, resp)
    if resp.status_code == 401 and route[1].startswith("/fhir/"):
        assert resp.get_json()["issue"][0]["diagnostics"] == "a valid bearer token is required"
    elif resp.status_code == 401:
        assert resp.get_json()["detail"] == "a valid bearer token is required"


# -- reads tell another organisation nothing, not even counts -----------------------------------

DISCLOSURE_FILTERS: dict[str, dict[str, Any]] = {
    "unfiltered": {},
    "by person": {"nhs_number": "PERSON"},
    "from the owner": {"from_org": OWNER},
    "to the recipient": {"to_org": RECIPIENT},
    "by purpose": {"purpose": "referral"},
    "second page": {"page": 2, "page_size": 1},
}


@pytest.mark.parametrize("as_csv", [False, True], ids=["json", "csv"])
@pytest.mark.parametrize("name", list(DISCLOSURE_FILTERS))
def test_disclosure_history_gives_another_organisation_no_rows_and_no_total(
    world: World, name: str, as_csv: bool
) -> None:
    query = {k: (world.person if v == "PERSON" else v) for k, v in DISCLOSURE_FILTERS[name].items()}
    headers = {"Accept": "text/csv"} if as_csv else {"Accept": "application/json"}

    def fetch(org: str) -> tuple[int, list[list[str]] | list[dict[str, Any]]]:
        resp = world.client.get(
            "/v1/disclosures", query_string=query, headers={**headers, **world.auth(org, "ig_lead")}
        )
        assert resp.status_code == 200, _explain(resp)
        if as_csv:
            assert resp.mimetype == "text/csv"
            rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True))))
            return int(resp.headers["X-Total-Count"]), rows[1:]
        body = resp.get_json()
        return int(body["total"]), list(body["items"])

    owner_total, _ = fetch(OWNER)
    assert owner_total >= 1  # the filter does find the owner's share
    total, rows = fetch(OTHER)
    assert (total, rows) == (0, [])


@pytest.mark.parametrize(
    "entry_type",
    [
        "consent.granted",
        "decision.made",
        "disclosure.recorded",
        "access_link.created",
        "objection.recorded",
    ],
)
def test_log_entries_about_another_organisation_are_withheld_from_its_ig_lead(
    world: World, entry_type: str
) -> None:
    path = f"/v1/log/entries/{world.entries[entry_type]}"
    for org, role in ((OWNER, "ig_lead"), (OWNER, "auditor"), (OTHER, "auditor")):
        own = world.client.get(path, headers=world.auth(org, role))
        assert own.status_code == 200, (org, role)
        assert own.get_json()["entry"]["type"] == entry_type
    resp = world.client.get(path, headers=world.auth(OTHER, "ig_lead"))
    assert resp.status_code == 200, _explain(resp)
    body = resp.get_json()
    assert (body["state"], body["entry"], body["opening"]) == ("withheld", None, None)
    _assert_no_owner_secrets(world, resp)


@pytest.mark.parametrize("role", ["case_system", "ig_lead"])
def test_an_objection_is_shown_to_another_organisation_without_its_recorder(
    world: World, role: str
) -> None:
    """Every client deciding about a share must know of an objection (G3), but only the
    recording organisation, portals and auditors learn who recorded it."""
    resp = world.client.get(
        "/v1/consents",
        query_string={"nhs_number": world.objection_person},
        headers=world.auth(OTHER, role),
    )
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["consents"] == []
    (objection,) = body["objections"]
    assert (objection["id"], objection["scope"]) == (world.objection_id, "direct_care")
    assert objection["recorded_by"] is None
    assert objection["subject_ref"] is None
    assert [e["organisation"] for e in objection["history"]] == [None]
    assert OWNER not in resp.get_data(as_text=True)


@pytest.mark.parametrize("to", [RECIPIENT, OWNER])
def test_a_decision_about_the_owners_person_says_no_more_than_about_a_stranger(
    world: World, to: str
) -> None:
    """Another organisation asking about its own share learns nothing of the owner's consent:
    the answer is the one it would get for a person the service has never seen."""

    def answer(nhs_number: str) -> dict[str, Any]:
        resp = world.client.post(
            "/v1/decisions",
            headers=world.auth(OTHER, "case_system"),
            json={
                "subject": {"nhs_number": nhs_number},
                "from": OTHER,
                "to": to,
                "purpose": "referral",
                "data_categories": ["identity", "service_status"],
            },
        )
        assert resp.status_code == 200, _explain(resp)
        body = resp.get_json()
        for varying in ("id", "subject_ref", "made_at", "ledger"):
            body.pop(varying)
        return dict(body)

    known = answer(world.person)
    assert known == answer(world.fresh_person())
    assert known["consents"] == []  # the owner's consent does not cover the other's shares (G4)
    assert world.consent_id not in str(known)


def test_a_link_refused_for_the_owners_person_is_refused_as_for_a_stranger(
    world: World,
) -> None:
    def refusal(nhs_number: str) -> Any:
        resp = world.client.post(
            "/v1/subjects/access-links",
            headers=world.auth(OTHER, "case_system"),
            json={"subject": {"nhs_number": nhs_number}},
        )
        assert resp.status_code == 403, _explain(resp)
        return resp.get_json()

    assert refusal(world.person) == refusal(world.fresh_person())


# -- browser pages: nothing without a session or a working link ---------------------------------


@dataclass(frozen=True)
class Page:
    path: str  # {link} and {consent} are filled in
    status: int
    query: dict[str, str] | None = None
    form: dict[str, str] | None = None

    def call(self, w: World, variant: str) -> Call:
        link = w.revoked_link_token if variant == "revoked link" else "x" * 43
        query = {k: (w.person if v == "PERSON" else v) for k, v in (self.query or {}).items()}
        form = {k: (w.person if v == "PERSON" else v) for k, v in (self.form or {}).items()}
        return Call(
            self.path.format(link=link, consent=w.consent_id),
            query=query or None,
            form=form or None,
        )


GUESSED = {"csrf_token": "guessed"}
PAGES: dict[Route, Page] = {
    ("GET", "/ig/"): Page("/ig/", 200),  # the sign-in form, with no data in it
    ("POST", "/ig/sign-in"): Page("/ig/sign-in", 400, form={**GUESSED, "token": "TOKEN"}),
    ("POST", "/ig/sign-out"): Page("/ig/sign-out", 302, form=GUESSED),
    ("GET", "/ig/dashboard"): Page("/ig/dashboard", 302),
    ("GET", "/ig/disclosures"): Page("/ig/disclosures", 302, query={"nhs_number": "PERSON"}),
    ("GET", "/ig/disclosures.csv"): Page("/ig/disclosures.csv", 302),
    ("GET", "/ig/report"): Page("/ig/report", 302, query={"nhs_number": "PERSON"}),
    ("POST", "/ig/disclosures"): Page(
        "/ig/disclosures", 302, form={**GUESSED, "nhs_number": "PERSON"}
    ),
    ("POST", "/ig/disclosures.csv"): Page(
        "/ig/disclosures.csv", 302, form={**GUESSED, "nhs_number": "PERSON"}
    ),
    ("POST", "/ig/report"): Page("/ig/report", 302, form={**GUESSED, "nhs_number": "PERSON"}),
    ("GET", "/p/<token>"): Page("/p/{link}", 404),
    ("GET", "/p/<token>/consents/<consent_id>/withdraw"): Page(
        "/p/{link}/consents/{consent}/withdraw", 404
    ),
    ("POST", "/p/<token>/consents/<consent_id>/withdraw"): Page(
        "/p/{link}/consents/{consent}/withdraw", 404, form=GUESSED
    ),
    ("GET", "/p/<token>/receipts/<int:index>.tlog-proof"): Page(
        "/p/{link}/receipts/0.tlog-proof", 404
    ),
    ("GET", "/p/<token>/object"): Page("/p/{link}/object", 404),
    ("POST", "/p/<token>/object"): Page("/p/{link}/object", 404, form=GUESSED),
    ("GET", "/p/<token>/objections/<objection_id>/withdraw"): Page(
        "/p/{link}/objections/obj_0123456789abcdef0123456789abcdef/withdraw", 404
    ),
    ("POST", "/p/<token>/objections/<objection_id>/withdraw"): Page(
        "/p/{link}/objections/obj_0123456789abcdef0123456789abcdef/withdraw", 404, form=GUESSED
    ),
}


def _page_variants(route: Route) -> tuple[str, ...]:
    if route[1].startswith("/ig/"):
        return ("no session", "API token instead of a session")
    return ("made-up link", "revoked link")


PAGE_CELLS = [
    pytest.param(route, variant, id=f"{_label(route)} | {variant}")
    for route in PAGES
    for variant in _page_variants(route)
]


@pytest.mark.parametrize(("route", "variant"), PAGE_CELLS)
def test_pages_without_a_session_or_link_show_nothing(
    world: World, route: Route, variant: str
) -> None:
    page = PAGES[route]
    call = page.call(world, variant)
    if call.form and call.form.get("token") == "TOKEN":  # a real IG lead token, without CSRF
        call = Call(call.path, form={**call.form, "token": world.tokens[OWNER, "ig_lead"]})
    headers = world.auth(OWNER, "ig_lead") if variant.startswith("API token") else {}
    before = world.log_size()
    resp = world.send(route[0], call, headers, client=world.app.test_client())
    assert resp.status_code == page.status, _explain(resp)
    if page.status == 302:
        assert resp.headers["Location"].split("?")[0] in ("/ig/", "http://localhost/ig/")
    assert "cl_session" not in resp.headers.get("Set-Cookie", "")
    _assert_no_owner_secrets(world, resp)
    assert world.log_size() == before
