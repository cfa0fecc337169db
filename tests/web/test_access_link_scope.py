"""What a patient access link shows and may do depends on who issued it (issue 12, item 1).

A case system's link shows the person what that organisation may already see through the API
(consents it recorded or is named in, objections, shares from or to it) and withdraws only
those consents; the whole record needs a link issued by a patient portal. A link ends when the
client that issued it is revoked or rotated.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient

from app.errors import Unauthenticated
from app.policy import Policy
from app.services.access import clients
from app.services.access.web_sessions import create_access_link
from app.services.consents.subjects import SubjectIdentifier
from app.services.container import Ledger
from tests.helpers import BOTH, bearer
from tests.nhs import valid_nhs_numbers

PERSON = valid_nhs_numbers(1, start=943_478_000)[0]
OWNER = "tt-leeds"  # records the consent and the share
RECIPIENT = "ea-tt-leeds"  # named in the consent, receives the share
STRANGER = "cmht-leeds-west"  # only records an objection, to make a "relationship"
NAMES = {
    OWNER: "Leeds NHS Talking Therapies (example)",
    RECIPIENT: "Employment Advisers in Leeds Talking Therapies (example)",
    STRANGER: "Leeds West Community Mental Health Team (example)",
}


@dataclass
class Record:
    consent_id: str


def _post(client: FlaskClient, token: str, path: str, body: dict[str, Any]) -> Any:
    resp = client.post(path, headers=bearer(token), json=body)
    assert resp.status_code in (200, 201), resp.text
    return resp.get_json()


def _record(client: FlaskClient, make_token: Callable[..., str]) -> Record:
    """The owner's consent naming the recipient and a share under it; then a stranger
    organisation records an objection, which today is all it takes to issue a link."""
    owner = make_token(OWNER, "case_system")
    consent = _post(
        client,
        owner,
        "/v1/consents",
        {
            "subject": {"nhs_number": PERSON},
            "purpose": "referral",
            "recipients": [RECIPIENT],
            "data_categories": ["identity"],
            "form": "verbal",
        },
    )
    decided = _post(
        client,
        owner,
        "/v1/decisions",
        {
            "subject": {"nhs_number": PERSON},
            "from": OWNER,
            "to": RECIPIENT,
            "purpose": "referral",
            "data_categories": ["identity"],
        },
    )
    _post(
        client,
        owner,
        "/v1/disclosures",
        {"decision_id": decided["id"], "data_categories": ["identity"]},
    )
    _post(
        client,
        make_token(STRANGER, "case_system"),
        "/v1/objections",
        {"subject": {"nhs_number": PERSON}, "scope": "direct_care"},
    )
    return Record(consent["id"])


def _link(client: FlaskClient, token: str) -> str:
    made = _post(client, token, "/v1/subjects/access-links", {"subject": {"nhs_number": PERSON}})
    return str(made["url"].rsplit("/p/", 1)[1])


def _csrf(client: FlaskClient, link: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"/p/{link}/object").text)
    assert found
    return found.group(1)


def _status(client: FlaskClient, token: str, consent_id: str) -> str:
    body = client.get(f"/v1/consents?nhs_number={PERSON}", headers=bearer(token)).get_json()
    (consent,) = [c for c in body["consents"] if c["id"] == consent_id]
    return str(consent["status"])


# issuer organisation, issuer role -> sees the owner's consent and the share, may withdraw it
# (only as the issuer may through the API: the organisation holds the link it issues), words
# that say which view the page is
CASES = [
    pytest.param(STRANGER, "case_system", False, False, "only what", id="stranger-case-system"),
    pytest.param(RECIPIENT, "case_system", True, False, "only what", id="named-case-system"),
    pytest.param(OWNER, "case_system", True, True, "only what", id="recording-case-system"),
    pytest.param(STRANGER, "patient_portal", True, True, "whole record", id="portal"),
]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
@pytest.mark.parametrize(("issuer", "role", "sees", "withdraws", "view"), CASES)
def test_a_link_shows_and_acts_on_what_its_issuer_may_see(
    client: FlaskClient,
    policy: Policy,
    make_token: Callable[..., str],
    issuer: str,
    role: str,
    sees: bool,
    withdraws: bool,
    view: str,
) -> None:
    record = _record(client, make_token)
    link = _link(client, make_token(issuer, role))
    page = client.get(f"/p/{link}")
    assert page.status_code == 200
    # The page says who gave the person the link, and which view it is.
    assert f"given to you by {NAMES[issuer]}" in page.text
    assert view in page.text
    # The owner's consent and the share to the recipient; the withdraw button (the only place
    # the consent's id appears) only where the link may withdraw it.
    assert (NAMES[RECIPIENT] in page.text) == sees
    assert (record.consent_id in page.text) == withdraws
    # Every link shows the person's objections (every organisation must know of them, G3).
    assert "You have objected" in page.text

    withdrawn = client.post(
        f"/p/{link}/consents/{record.consent_id}/withdraw", data={"csrf_token": _csrf(client, link)}
    )
    owner_view = make_token(OWNER, "case_system")
    withdraw_page = f"/p/{link}/consents/{record.consent_id}/withdraw"
    if withdraws:
        assert withdraw_page in page.text
        assert withdrawn.status_code == 200
        assert "You have withdrawn your agreement" in withdrawn.text
        assert _status(client, owner_view, record.consent_id) == "withdrawn"
    elif sees:
        # Shown, but not offered: the page says whom to ask; the service refuses it too.
        assert withdraw_page not in page.text
        assert f"To withdraw this agreement, ask {NAMES[OWNER]}" in page.text
        assert withdrawn.status_code == 403
        assert "cannot withdraw this agreement" in withdrawn.text
        assert client.get(withdraw_page).status_code == 403
        assert _status(client, owner_view, record.consent_id) == "active"
    else:
        assert withdrawn.status_code == 404
        assert _status(client, owner_view, record.consent_id) == "active"
        assert client.get(f"/p/{link}/consents/{record.consent_id}/withdraw").status_code == 404


def test_a_withdrawal_through_a_link_is_traceable_to_the_issuing_client(
    client: FlaskClient, policy: Policy, ledger: Ledger, make_token: Callable[..., str]
) -> None:
    record = _record(client, make_token)
    issuer = make_token(OWNER, "case_system")
    made = _post(client, issuer, "/v1/subjects/access-links", {"subject": {"nhs_number": PERSON}})
    link, link_index = made["url"].rsplit("/p/", 1)[1], made["ledger_index"]
    client.post(
        f"/p/{link}/consents/{record.consent_id}/withdraw", data={"csrf_token": _csrf(client, link)}
    )
    body = client.get(
        f"/v1/consents?nhs_number={PERSON}", headers=bearer(make_token(OWNER, "auditor"))
    ).get_json()
    (consent,) = body["consents"]
    withdrawal = consent["history"][-1]
    assert withdrawal["event"] == "withdrawn"
    assert withdrawal["organisation"] == OWNER
    auditor = bearer(make_token(OWNER, "auditor"))

    def entry(index: int) -> dict[str, Any]:
        return dict(client.get(f"/v1/log/entries/{index}", headers=auditor).get_json()["entry"])

    issued = entry(link_index)
    assert issued["type"] == "access_link.created"
    assert issued["data"]["client_id"] == issuer.split(".", 1)[0]
    acted = entry(withdrawal["ledger_index"])
    assert acted["type"] == "consent.withdrawn"
    assert acted["data"]["client_id"] == issued["data"]["link_id"]


@pytest.mark.parametrize("role", ["case_system", "patient_portal"])
@pytest.mark.parametrize("action", ["revoke", "rotate"])
def test_revoking_or_rotating_the_issuer_ends_its_links(
    client: FlaskClient,
    policy: Policy,
    ledger: Ledger,
    make_token: Callable[..., str],
    role: str,
    action: str,
) -> None:
    _record(client, make_token)
    issuer = make_token(OWNER, role)
    colleague = make_token(OWNER, role)  # another client of the same organisation
    ended, kept = _link(client, issuer), _link(client, colleague)
    assert client.get(f"/p/{ended}").status_code == 200
    client_id = issuer.split(".", 1)[0]
    if action == "revoke":
        clients.revoke_client(ledger, client_id)
    else:
        new_token = clients.rotate_token(ledger, client_id).token
    gone = client.get(f"/p/{ended}")
    assert gone.status_code == 404
    assert "This link does not work" in gone.text
    assert client.get(f"/p/{ended}/object").status_code == 404
    assert client.get(f"/p/{kept}").status_code == 200
    if action == "rotate":
        # The client's new token issues links that work.
        assert client.get(f"/p/{_link(client, new_token)}").status_code == 200


def test_a_recipient_cannot_withdraw_through_a_link_what_the_api_refuses_it(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    """A recipient holds the link it issues: through it, it may not withdraw a consent that
    another organisation recorded and others received data under (which would end their
    shares with nobody told), any more than through the API."""
    owner = make_token(OWNER, "case_system")
    recipients = [RECIPIENT, STRANGER]
    consent = _post(
        client,
        owner,
        "/v1/consents",
        {
            "subject": {"nhs_number": PERSON},
            "purpose": "referral",
            "recipients": recipients,
            "data_categories": ["identity"],
            "form": "verbal",
        },
    )
    for to in recipients:
        decided = _post(
            client,
            owner,
            "/v1/decisions",
            {
                "subject": {"nhs_number": PERSON},
                "from": OWNER,
                "to": to,
                "purpose": "referral",
                "data_categories": ["identity"],
            },
        )
        body = {"decision_id": decided["id"], "data_categories": ["identity"]}
        _post(client, owner, "/v1/disclosures", body)
    recipient = make_token(RECIPIENT, "case_system")
    through_api = client.post(
        f"/v1/consents/{consent['id']}/withdraw",
        headers=bearer(recipient),
        json={"reason": "person_withdrew"},
    )
    assert through_api.status_code == 403
    link = _link(client, recipient)
    through_link = client.post(
        f"/p/{link}/consents/{consent['id']}/withdraw", data={"csrf_token": _csrf(client, link)}
    )
    assert through_link.status_code == 403
    assert _status(client, owner, consent["id"]) == "active"


@pytest.mark.parametrize("backend", BOTH, indirect=True)
@pytest.mark.parametrize("action", ["revoke", "rotate"])
def test_a_link_asked_for_with_a_token_revoked_or_rotated_meanwhile_is_refused(
    client: FlaskClient, policy: Policy, ledger: Ledger, make_token: Callable[..., str], action: str
) -> None:
    """The request authenticated, then the token was rotated or revoked before the link was
    written: the link must not be issued, since it would outlive the token."""
    _record(client, make_token)
    token = make_token(OWNER, "case_system")
    principal = clients.authenticate(ledger, f"Bearer {token}")
    client_id = token.split(".", 1)[0]
    if action == "rotate":
        clients.rotate_token(ledger, client_id)
    else:
        clients.revoke_client(ledger, client_id)
    with pytest.raises(Unauthenticated):
        create_access_link(ledger, principal, SubjectIdentifier.nhs_number(PERSON), 7)
