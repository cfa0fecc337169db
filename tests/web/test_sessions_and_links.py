"""Sessions, CSRF and access links without a browser: the rules behind the pages."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.models import AccessLink, LogEntry, WebSession
from app.policy import Policy
from app.services.access.web_sessions import IDLE_TIMEOUT
from app.services.container import Ledger
from tests.helpers import BOTH, bearer, form_token, ig_sign_in
from tests.nhs import valid_nhs_numbers

NHS = valid_nhs_numbers(1, start=943_477_000)[0]


def _referral_consent(client: FlaskClient, token: str, nhs: str) -> Any:
    """A verbal referral consent to ea-tt-leeds, recorded by the token's organisation."""
    return client.post(
        "/v1/consents",
        headers=bearer(token),
        json={
            "subject": {"nhs_number": nhs},
            "purpose": "referral",
            "recipients": ["ea-tt-leeds"],
            "data_categories": ["identity"],
            "form": "verbal",
        },
    )


_login = ig_sign_in


@pytest.mark.parametrize(
    ("role", "ok"),
    [("ig_lead", True), ("auditor", True), ("case_system", False), ("patient_portal", False)],
)
def test_only_ig_leads_and_auditors_sign_in(
    client: FlaskClient, make_token: Callable[..., str], role: str, ok: bool
) -> None:
    resp = _login(client, make_token("tt-leeds", role))
    if ok:
        assert resp.status_code == 302
        assert resp.headers["Location"].endswith("/ig/dashboard")
        cookie = resp.headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Path=/ig" in cookie
    else:
        assert resp.status_code == 401
        assert "not accepted" in resp.text


def test_sign_in_needs_the_form_token(client: FlaskClient, make_token: Callable[..., str]) -> None:
    resp = client.post("/ig/sign-in", data={"token": make_token("tt-leeds", "ig_lead")})
    assert resp.status_code == 400
    assert "expired" in resp.text


def test_the_session_token_is_stored_only_as_a_hash(
    client: FlaskClient, ledger: Ledger, make_token: Callable[..., str]
) -> None:
    resp = _login(client, make_token("tt-leeds", "ig_lead"))
    value = resp.headers["Set-Cookie"].split("cl_session=", 1)[1].split(";", 1)[0]
    with ledger.db.read() as session:
        rows = session.execute(select(WebSession)).scalars().all()
    assert len(rows) == 1
    assert value.encode() not in rows[0].token_hash


def test_an_idle_session_ends(
    client: FlaskClient, ledger: Ledger, make_token: Callable[..., str]
) -> None:
    _login(client, make_token("tt-leeds", "ig_lead"))
    assert client.get("/ig/dashboard").status_code == 200
    real = ledger.clock
    ledger.clock = lambda: real() + IDLE_TIMEOUT + timedelta(seconds=1)
    try:
        resp = client.get("/ig/dashboard")
    finally:
        ledger.clock = real
    assert resp.status_code == 302
    assert "expired=1" in resp.headers["Location"]
    assert client.get("/ig/dashboard").status_code == 302  # and it stays ended


def test_every_signed_in_form_needs_its_csrf_token(
    client: FlaskClient, make_token: Callable[..., str]
) -> None:
    _login(client, make_token("tt-leeds", "ig_lead"))
    assert client.post("/ig/sign-out").status_code == 400
    assert client.get("/ig/dashboard").status_code == 200  # still signed in


@pytest.mark.parametrize(
    "query",
    [
        "page=abc",
        "page=-4",
        "since=not-a-date",
        "nhs_number=123",
        "purpose=%00",
        "nhs_number=" + "9" * 500,
        "organisation=%F0%9F%98%80",
    ],
)
def test_odd_history_searches_are_answered_not_500(
    client: FlaskClient, make_token: Callable[..., str], query: str
) -> None:
    _login(client, make_token("tt-leeds", "ig_lead"))
    csrf = form_token(client.get("/ig/disclosures").text)
    form = {"csrf_token": csrf, **dict(parse_qsl(query))}
    resp = client.post("/ig/disclosures", data=form, follow_redirects=True)
    assert resp.status_code == 200
    assert "Traceback" not in resp.text


@pytest.mark.parametrize("backend", BOTH, indirect=True)
@pytest.mark.parametrize(
    ("query", "field"),
    [
        # as_of only ever comes from a link the page made: a bad one is a broken link (400 page).
        ("as_of=%C2%B2", None),  # superscript two: str.isdigit() says yes, int() says no
        ("as_of=%D9%A7", None),  # Arabic-Indic seven, which int() reads as 7
        ("as_of=" + "9" * 5000, None),  # past Python's int-from-string limit
        ("as_of=" + "9" * 30, None),  # past any database's integer
        ("as_of=-1", None),
        ("as_of=10000-01-01", None),
        # A date someone typed is named on the page, beside the field.
        ("since=10000-01-01", "since"),
        ("until=99999-12-31", "until"),
        ("since=%C2%B2%C2%B2%C2%B2%C2%B2-01-01", "since"),
    ],
)
def test_a_bad_history_argument_is_a_clear_page_and_refused_for_the_csv(
    client: FlaskClient, make_token: Callable[..., str], query: str, field: str | None
) -> None:
    _login(client, make_token("tt-leeds", "ig_lead"))
    page = client.get(f"/ig/disclosures?{query}")
    assert page.mimetype == "text/html"
    if field is None:
        assert page.status_code == 400
        assert "Please try again" in page.text
    else:
        assert page.status_code == 200
        assert f'href="#{field}"' in page.text  # the error summary links to the field at fault
    csv = client.get(f"/ig/disclosures.csv?{query}")
    assert csv.status_code == 400
    assert csv.mimetype == "text/html"
    assert "Traceback" not in page.text + csv.text


def test_a_pinned_history_view_keeps_its_position_in_the_log(
    client: FlaskClient, make_token: Callable[..., str]
) -> None:
    _login(client, make_token("tt-leeds", "ig_lead"))
    assert client.get("/ig/disclosures?as_of=0").status_code == 200
    assert client.get("/ig/disclosures.csv?as_of=3").status_code == 200


@pytest.mark.parametrize(
    ("role", "status"),
    [("case_system", 201), ("patient_portal", 201), ("ig_lead", 403), ("auditor", 403)],
)
def test_access_links_are_issued_by_case_systems_and_portals(
    client: FlaskClient,
    policy: Policy,
    make_token: Callable[..., str],
    ledger: Ledger,
    role: str,
    status: int,
) -> None:
    # The person is one of tt-leeds's: it recorded their consent.
    _referral_consent(client, make_token("tt-leeds", "case_system"), NHS)
    resp = client.post(
        "/v1/subjects/access-links",
        headers=bearer(make_token("tt-leeds", role)),
        json={"subject": {"nhs_number": NHS}},
    )
    assert resp.status_code == status
    if status != 201:
        return
    body = resp.get_json()
    token = body["url"].rsplit("/p/", 1)[1]
    assert len(token) >= 43  # 256 random bits
    with ledger.db.read() as session:
        link = session.get(AccessLink, body["id"])
        entry = session.get(LogEntry, body["ledger_index"])
    assert link is not None
    assert token.encode() not in link.token_hash
    assert link.expires_at - link.created_at == timedelta(days=7)
    assert entry is not None
    assert entry.entry_type == "access_link.created"
    assert token.encode() not in entry.leaf
    assert NHS.encode() not in entry.leaf
    page = client.get(f"/p/{token}")
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


def test_a_link_cannot_act_on_someone_elses_consent(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    tt = make_token("tt-leeds", "case_system")
    other = valid_nhs_numbers(2, start=943_477_100)[1]
    theirs = _referral_consent(client, tt, other).get_json()
    portal = make_token("tt-leeds", "patient_portal")
    url = client.post(
        "/v1/subjects/access-links", headers=bearer(portal), json={"subject": {"nhs_number": NHS}}
    ).get_json()["url"]
    token = url.rsplit("/p/", 1)[1]
    home = client.get(f"/p/{token}")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"/p/{token}/object").text)
    assert csrf
    resp = client.post(
        f"/p/{token}/consents/{theirs['id']}/withdraw", data={"csrf_token": csrf.group(1)}
    )
    assert resp.status_code == 404
    assert "This link does not work" in resp.text
    assert theirs["id"] not in home.text
    status = client.get(f"/v1/consents?nhs_number={other}", headers=bearer(tt)).get_json()
    assert status["consents"][0]["status"] == "active"


def test_a_case_system_cannot_issue_a_link_for_a_stranger(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    """An organisation with no consent or objection of theirs cannot give itself a link (it
    would show nothing, but would plant a link and a log entry for anyone whose NHS number it
    knows); the refusal is the same for a person the service knows and one it does not."""
    tt = make_token("tt-leeds", "case_system")
    _referral_consent(client, tt, NHS)
    stranger = make_token("cmht-leeds-west", "case_system")
    for nhs in (NHS, valid_nhs_numbers(1, start=943_477_200)[0]):
        resp = client.post(
            "/v1/subjects/access-links",
            headers=bearer(stranger),
            json={"subject": {"nhs_number": nhs}},
        )
        assert resp.status_code == 403
        assert resp.get_json()["type"] == "/problems/forbidden"
    named = make_token("ea-tt-leeds", "case_system")  # named in the consent
    assert (
        client.post(
            "/v1/subjects/access-links",
            headers=bearer(named),
            json={"subject": {"nhs_number": NHS}},
        ).status_code
        == 201
    )


def test_pages_answer_errors_with_pages(
    client: FlaskClient, ledger: Ledger, make_token: Callable[..., str]
) -> None:
    for path in ("/ig/nothing-here", "/p/not-a-link", "/p/not-a-link/anything"):
        resp = client.get(path)
        assert resp.status_code == 404
        assert resp.mimetype == "text/html"
    ledger.refuse_service("test: the log failed its check")
    for path in ("/ig/", "/ig/dashboard"):
        resp = client.get(path)
        assert resp.status_code == 503
        assert resp.mimetype == "text/html"
        assert "Service unavailable" in resp.text
        assert "test:" not in resp.text


def test_revoking_a_client_ends_its_browser_sessions(
    client: FlaskClient, ledger: Ledger, make_token: Callable[..., str]
) -> None:
    from app.services.access.clients import revoke_client

    token = make_token("tt-leeds", "ig_lead")
    _login(client, token)
    assert client.get("/ig/dashboard").status_code == 200
    revoke_client(ledger, token.split(".", 1)[0])
    resp = client.get("/ig/dashboard")
    assert resp.status_code == 302
    assert "/ig/" in resp.headers["Location"]


def test_a_link_can_be_revoked_before_it_expires(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    portal = make_token("tt-leeds", "patient_portal")
    made = client.post(
        "/v1/subjects/access-links", headers=bearer(portal), json={"subject": {"nhs_number": NHS}}
    ).get_json()
    token = made["url"].rsplit("/p/", 1)[1]
    assert client.get(f"/p/{token}").status_code == 200
    other = make_token("cmht-leeds-west", "case_system")
    denied = client.post(f"/v1/subjects/access-links/{made['id']}/revoke", headers=bearer(other))
    assert denied.status_code == 403
    done = client.post(f"/v1/subjects/access-links/{made['id']}/revoke", headers=bearer(portal))
    assert done.status_code == 200
    assert done.get_json()["revoked"] is True
    gone = client.get(f"/p/{token}")
    assert gone.status_code == 404
    assert "This link does not work" in gone.text
    again = client.post(f"/v1/subjects/access-links/{made['id']}/revoke", headers=bearer(portal))
    assert again.status_code == 409


def test_secure_cookies_can_be_forced_behind_a_tls_proxy(
    instance_path: Any, database_url: str, make_token: Callable[..., str]
) -> None:
    from app import create_app

    app = create_app(
        {
            "TESTING": True,
            "INSTANCE_PATH": str(instance_path),
            "DATABASE_URL": database_url,
            "SECURE_COOKIES": "1",
        }
    )
    resp = _login(app.test_client(), make_token("tt-leeds", "ig_lead"))
    assert resp.status_code == 302
    assert "Secure" in resp.headers["Set-Cookie"]


def test_a_patient_sees_plain_words_not_system_messages(
    client: FlaskClient, policy: Policy, make_token: Callable[..., str]
) -> None:
    tt = make_token("tt-leeds", "case_system")
    given = _referral_consent(client, tt, NHS).get_json()
    url = client.post(
        "/v1/subjects/access-links", headers=bearer(tt), json={"subject": {"nhs_number": NHS}}
    ).get_json()["url"]
    token = url.rsplit("/p/", 1)[1]
    page = client.get(f"/p/{token}/consents/{given['id']}/withdraw").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    first = client.post(
        f"/p/{token}/consents/{given['id']}/withdraw", data={"csrf_token": csrf.group(1)}
    )
    assert "You have withdrawn your agreement" in first.text
    again = client.post(
        f"/p/{token}/consents/{given['id']}/withdraw", data={"csrf_token": csrf.group(1)}
    )
    assert again.status_code == 409
    assert "You had already withdrawn this agreement" in again.text
    assert given["id"] not in again.text


def test_the_subject_access_report_looks_up_a_stranger_like_a_known_person(
    client: FlaskClient, policy: Policy, ledger: Ledger, make_token: Callable[..., str]
) -> None:
    """Another organisation's IG lead gets the same empty report, by the same statements, for
    a person the service knows through tt-leeds as for one it has never seen (issue 12)."""
    from tests.helpers import recorded_statements

    _referral_consent(client, make_token("tt-leeds", "case_system"), NHS)
    stranger = valid_nhs_numbers(1, start=943_477_300)[0]
    _login(client, make_token("cmht-leeds-west", "ig_lead"))
    statements: dict[str, list[str]] = {}
    csrf = form_token(client.get("/ig/report").text)
    for _ in range(2):  # the first round warms caches; the second is compared
        for who, nhs in (("known", NHS), ("stranger", stranger)):
            with recorded_statements(ledger) as seen:
                page = client.post("/ig/report", data={"csrf_token": csrf, "nhs_number": nhs})
            assert page.status_code == 200
            statements[who] = seen
    assert statements["known"] == statements["stranger"]
